// Fast float32 axis swap ([A, B, C] -> [B, A, C] per example): the transpose, splitHeads and mergeHeads kernels.
// Runs of C > 1 floats move with memcpy; C = 1 (a plain transpose) goes through 16 x 16 tiles. Single-threaded
// and memory-bound; tested against prims/transpose/reference.hpp through the primitive table.
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/transpose/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(swap_axes, void(const ops::SwapShape& s, const float* x, float* y));

}  // namespace veridl::kernels
