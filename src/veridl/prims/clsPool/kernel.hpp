// Fast float32 clsPool: row 0 of every example's tokens, and its scatter back (memcpy / zero fill). Tested
// against prims/clsPool/reference.hpp through the primitive table.
#pragma once

#include "veridl/prims/clsPool/reference.hpp"

namespace veridl::kernels {

void cls_pool_forward(const ops::ClsPoolShape& s, const float* x, float* y);
void cls_pool_backward(const ops::ClsPoolShape& s, const float* dy, float* dx);

}  // namespace veridl::kernels
