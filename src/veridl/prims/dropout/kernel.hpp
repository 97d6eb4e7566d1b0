// Fast float32 dropout / drop-path kernels (the training path). Same contract as the templated reference in
// prims/dropout/reference.hpp, which they are differentially tested against (tests/test_prims.cpp walks the
// table; tests/test_dropout.cpp):
//
//   drop_forward    keep[d] = noise::keep(key, d, threshold(1 - rate)), y[i] = keep[d(i)] ? x[i] * (1/q) : 0
//   drop_backward   dx[i] = keep[d(i)] ? dy[i] * (1/q) : 0
//
// The decisions are bit-identical to the reference's live decisions (the same integer generator), for any
// thread count; the values differ from the double reference by float rounding of 1/q only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/dropout/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(drop_forward, void(const ops::DropShape& s, double rate, uint64_t key, const float* x, float* y, uint8_t* keep));
VERIDL_KERNEL(drop_backward, void(const ops::DropShape& s, double rate, const uint8_t* keep, const float* dy, float* dx));

}  // namespace veridl::kernels
