// Fast float32 elementwise-product kernels (the training path). Same contract as the templated reference
// in prims/mul/reference.hpp, which they are differentially tested against (tests/test_elementwise.cpp):
//
//   mul_forward    y[b,c,k] = a[b,c,k] s[b,c]                   a [B, C, inner], s [B, C]
//   mul_backward   da[b,c,k] = s[b,c] dy[b,c,k]                 (either may be nullptr: not written)
//                  ds[b,c] = sum_k a[b,c,k] dy[b,c,k]           summed in k order from 0, in float
//
// mul_forward is one rounding per element, as the reference at T = float; ds may differ from it by the
// rounding of a fused multiply-add. Aliasing: y may alias a, and in mul_backward da may alias a or dy
// (each row's ds is summed before its da is written); nothing else may overlap.
//
// Determinism: every output element is computed entirely by one thread, in an order that depends only
// on the shape, so results are bit-identical for any OMP_NUM_THREADS. Threads: the OpenMP team is used
// only from kParallelMinWork elements on; each thread takes one contiguous chunk of rows.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/mul/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(mul_forward, void(const ops::MulShape& m, const float* a, const float* s, float* y));
VERIDL_KERNEL(mul_backward, void(const ops::MulShape& m, const float* a, const float* s, const float* dy, float* da, float* ds));

}  // namespace veridl::kernels
