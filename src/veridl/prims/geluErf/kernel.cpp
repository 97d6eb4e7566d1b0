// The erf-form GELU's float32 kernels: prims/activation/kernel_impl.hpp on GeluErfFn, compiled once per ISA variant
// (kernels/isa.hpp); kernels::elementwise_forward<GeluErfFn> and elementwise_backward<GeluErfFn> dispatch to them.
#include "veridl/prims/geluErf/primitive.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/prims/activation/kernel_impl.hpp"

VERIDL_ELEMENTWISE_KERNELS(veridl::prims::GeluErfFn)

#include "veridl/kernels/target_end.hpp"
