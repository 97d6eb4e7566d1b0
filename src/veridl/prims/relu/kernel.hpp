// Fast float32 ReLU kernels (the training path). Same contract as the templated reference in
// prims/relu/reference.hpp, which they are differentially tested against (tests/test_relu_bn_kernels.cpp):
//
//   relu_forward    mask[i] = x[i] > 0 (strict: ReLU'(0) = 0; -0 and NaN give 0), y[i] = mask[i] ? x[i] : 0
//   relu_backward   dx[i] = mask[i] ? dy[i] : 0
//
// Both are exact (a select, no rounding), so they are bit-identical to ops:: with T = float, and to
// themselves for any thread count. y may alias x and dx may alias dy (elementwise, read before write).
// Threads: the OpenMP team is used only from kParallelMinElems elements on; each thread takes one
// contiguous chunk.
#pragma once

#include <cstddef>
#include <cstdint>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/relu/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(relu_forward, void(const ops::ReluShape& s, const float* x, float* y, uint8_t* mask));
VERIDL_KERNEL(relu_backward, void(const ops::ReluShape& s, const uint8_t* mask, const float* dy, float* dx));

}  // namespace veridl::kernels
