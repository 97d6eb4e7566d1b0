// Fast float32 max-pool kernels (the training path). Same contracts as the templated reference in
// prims/maxPool/reference.hpp, which they are differentially tested against (tests/test_conv_kernels.cpp):
//
//   maxpool_forward   y[b,c,i,j] = max of the window's in-range cells; idx[b,c,i,j] = the in-window
//                     index kh * KW + kw of the chosen cell (the first maximum in row-major window
//                     order: strict > while scanning, the convention of Decisions::argmax). Padded
//                     cells never win.                                               (overwrites y, idx)
//   maxpool_backward  dx = 0, then dx[chosen cell of o] += dy[o] for every output o  (overwrites dx)
//
// Both results are bit-identical to the reference run with T = float (same comparisons, same
// accumulation order). The backward throws std::out_of_range (naming the first offending output) for
// an index that is not an in-range cell of its window; dx is then unspecified. Shapes are validated first (std::invalid_argument).
// Determinism: planes (b, c) are independent and each is processed by one thread, so results do not
// depend on the number of OpenMP threads.
#pragma once

#include <cstdint>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/maxPool/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(maxpool_forward, void(const ops::MaxPoolShape& s, const float* x, float* y, uint32_t* idx));
VERIDL_KERNEL(maxpool_backward, void(const ops::MaxPoolShape& s, const uint32_t* idx, const float* dy, float* dx));

}  // namespace veridl::kernels
