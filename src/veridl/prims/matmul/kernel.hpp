// Fast float32 batched matmul of two activations (the matrix kit): the same contract as
// prims/matmul/reference.hpp, which it is tested against through the primitive table. Groups (example x G) are
// split over the OpenMP team when the work is large enough (kernels/parallel.hpp); each output element is
// computed by one thread in a fixed order, so results do not depend on the thread count. The inner loops run
// along contiguous rows (axpy over P, or dot products over K with transposeB) for the compiler to vectorize.
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/matmul/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(matmul_forward, void(const ops::MatmulShape& s, const float* a, const float* b, float* y));
VERIDL_KERNEL(matmul_backward, void(const ops::MatmulShape& s, const float* a, const float* b, const float* dy, float* da, float* db));

}  // namespace veridl::kernels
