// Fast float32 global-average-pool kernels (the training path). Same contract as the templated reference
// in prims/globalAvgPool/reference.hpp, which they are differentially tested against
// (tests/test_pools_relu6.cpp, tests/test_prims.cpp):
//
//   global_avgpool_forward   y[b,c] = (sum_{h,w} x[b,c,h,w], row-major from 0) / (H W)      (overwrites y)
//   global_avgpool_backward  dx[b,c,h,w] = dy[b,c] / (H W)                                  (overwrites dx)
//
// The forward sums each plane in the reference's order and multiplies once by 1/(H W) as it does, so both
// kernels are bit-identical to ops:: with T = float. Determinism: every plane (b, c) is computed by one
// thread; threads take contiguous chunks of planes, from kParallelMinWork elements on.
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/globalAvgPool/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(global_avgpool_forward, void(const ops::GlobalAvgPoolShape& s, const float* x, float* y));
VERIDL_KERNEL(global_avgpool_backward, void(const ops::GlobalAvgPoolShape& s, const float* dy, float* dx));

}  // namespace veridl::kernels
