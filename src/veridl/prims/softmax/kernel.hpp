// Fast float32 row softmax (the matrix kit): p = exp(z - max) / sum over the last axis of every row, and its
// backward dz = p (dy - <p, dy>) from the saved output. Rows are split over the OpenMP team at large sizes; each
// row is computed by one thread, so results do not depend on the thread count. Tested against the reference
// (prims/softmaxCE/reference.hpp, softmax_forward / softmax_backward) through the primitive table.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(softmax_rows_forward, void(size_t rows, size_t K, const float* z, float* p));
// One row in place: p = exp(p - max) / sum over its K entries; returns the row's max and 1 / sum (attention's
// saved statistics, prims/sdpa/kernel.cpp).
struct SoftmaxRowStats {
  float max, inv_sum;
};
VERIDL_KERNEL(softmax_row_inplace, SoftmaxRowStats(float* p, size_t K));
VERIDL_KERNEL(softmax_rows_backward, void(size_t rows, size_t K, const float* p, const float* dy, float* dz));

}  // namespace veridl::kernels

