// Fast float32 clsPool: row 0 of every example's tokens, and its scatter back (memcpy / zero fill). Tested
// against prims/clsPool/reference.hpp through the primitive table.
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/clsPool/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(cls_pool_forward, void(const ops::ClsPoolShape& s, const float* x, float* y));
VERIDL_KERNEL(cls_pool_backward, void(const ops::ClsPoolShape& s, const float* dy, float* dx));

}  // namespace veridl::kernels
