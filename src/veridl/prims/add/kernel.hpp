// Fast float32 fan-in and fan-out accumulation kernels (the training path). Same contract as the templated
// reference in prims/add/reference.hpp, which they are differentially tested against
// (tests/test_elementwise.cpp):
//
//   add_forward    y[i] = a[i] + b[i]
//   add_backward   da[i] = dy[i], db[i] = dy[i]                 (either may be nullptr: not written)
//   add_into       dst[i] += src[i]                             (the executor accumulates fan-out
//                                                                gradients with it: prims/fanout/)
//
// add and add_into are one rounding per element, as the reference at T = float. Aliasing: y may alias a
// or b, da and db may alias dy; nothing else may overlap.
//
// Determinism: every output element is computed entirely by one thread, in an order that depends only
// on the shape, so results are bit-identical for any OMP_NUM_THREADS. Threads: the OpenMP team is used
// only from kParallelMinWork elements on; each thread takes one contiguous chunk.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/add/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(add_forward, void(const ops::AddShape& s, const float* a, const float* b, float* y));
VERIDL_KERNEL(add_backward, void(const ops::AddShape& s, const float* dy, float* da, float* db));
VERIDL_KERNEL(add_into, void(size_t n, const float* src, float* dst));

}  // namespace veridl::kernels
