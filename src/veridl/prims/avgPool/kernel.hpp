// Fast float32 avg-pool kernels (the training path). Same contract as the templated reference in
// prims/avgPool/reference.hpp, which they are differentially tested against (tests/test_pools_relu6.cpp,
// tests/test_prims.cpp):
//
//   avgpool_forward   y[b,c,i,j] = (sum of the window's in-range cells) / (KH KW)        (overwrites y)
//   avgpool_backward  dx[b,c,h,w] = (sum of dy over the windows containing (h, w)) / (KH KW)  (overwrites dx)
//
// The divisor is the full window even where it overlaps the padding (count_include_pad=True). Separable:
// the forward sums every input row over each window's columns (row sums), then the row sums over each
// window's rows; the backward sums dy over the covering columns, then over the covering rows. The additions
// happen in the reference's order, and the one multiply by 1/(KH KW) is the reference's, so both results are
// bit-identical to ops:: with T = float. Shapes are validated first (std::invalid_argument).
// Determinism: planes (b, c) are independent and each is processed by one thread, so results do not depend
// on the number of OpenMP threads. Scratch buffers are per thread and reused across calls (a train step
// allocates nothing once they have grown).
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/avgPool/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(avgpool_forward, void(const ops::AvgPoolShape& s, const float* x, float* y));
VERIDL_KERNEL(avgpool_backward, void(const ops::AvgPoolShape& s, const float* dy, float* dx));

}  // namespace veridl::kernels
