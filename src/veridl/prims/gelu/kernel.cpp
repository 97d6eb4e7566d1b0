// The tanh-form GELU's float32 kernels: prims/activation/kernel_impl.hpp on GeluFn, compiled once per ISA variant
// (kernels/isa.hpp); kernels::elementwise_forward<GeluFn> and elementwise_backward<GeluFn> dispatch to them.
#include "veridl/prims/gelu/primitive.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/prims/activation/kernel_impl.hpp"

VERIDL_ELEMENTWISE_KERNELS(veridl::prims::GeluFn)

#include "veridl/kernels/target_end.hpp"
