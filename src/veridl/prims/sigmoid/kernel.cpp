// The sigmoid's float32 kernels: prims/activation/kernel_impl.hpp on SigmoidFn, compiled once per ISA variant
// (kernels/isa.hpp); kernels::elementwise_forward<SigmoidFn> and elementwise_backward<SigmoidFn> dispatch to them.
#include "veridl/prims/sigmoid/primitive.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/prims/activation/kernel_impl.hpp"

VERIDL_ELEMENTWISE_KERNELS(veridl::prims::SigmoidFn)

#include "veridl/kernels/target_end.hpp"
