// Fast float32 ReLU6 kernels (the training path). Same contract as the templated reference in
// prims/relu6/reference.hpp, which they are differentially tested against (tests/test_pools_relu6.cpp,
// tests/test_prims.cpp):
//
//   relu6_forward    mask[i] = 0 < x[i] < 6 (both strict: the gradient is 0 at x = 0 and at x = 6; -0 and
//                    NaN give mask 0, y 0), y[i] = mask[i] ? x[i] : (x[i] > 0 ? 6 : 0)
//   relu6_backward   dx[i] = mask[i] ? dy[i] : 0
//
// Both are exact (selects, no rounding), so they are bit-identical to ops:: with T = float, and to
// themselves for any thread count. y may alias x and dx may alias dy (elementwise, read before write).
// Threads: the OpenMP team is used only from kParallelMinWork elements on; each thread takes one
// contiguous chunk.
#pragma once

#include <cstddef>
#include <cstdint>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/relu6/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(relu6_forward, void(const ops::Relu6Shape& s, const float* x, float* y, uint8_t* mask));
VERIDL_KERNEL(relu6_backward, void(const ops::Relu6Shape& s, const uint8_t* mask, const float* dy, float* dx));

}  // namespace veridl::kernels
