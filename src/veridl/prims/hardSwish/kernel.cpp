// The hard swish's float32 kernels: prims/activation/kernel_impl.hpp on HardSwishFn, compiled once per ISA variant
// (kernels/isa.hpp); kernels::elementwise_forward<HardSwishFn> and elementwise_backward<HardSwishFn> dispatch to them.
#include "veridl/prims/hardSwish/primitive.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/prims/activation/kernel_impl.hpp"

VERIDL_ELEMENTWISE_KERNELS(veridl::prims::HardSwishFn)

#include "veridl/kernels/target_end.hpp"
