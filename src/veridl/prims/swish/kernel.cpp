// The swish's float32 kernels: prims/activation/kernel_impl.hpp on SwishFn, compiled once per ISA variant
// (kernels/isa.hpp); kernels::elementwise_forward<SwishFn> and elementwise_backward<SwishFn> dispatch to them.
#include "veridl/prims/swish/primitive.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/prims/activation/kernel_impl.hpp"

VERIDL_ELEMENTWISE_KERNELS(veridl::prims::SwishFn)

#include "veridl/kernels/target_end.hpp"
