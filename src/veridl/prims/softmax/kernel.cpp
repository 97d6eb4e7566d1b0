#include "veridl/prims/softmax/kernel.hpp"

#include <algorithm>
#include <cmath>

#include "veridl/kernels/parallel.hpp"
#include "veridl/kernels/vmath.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {

SoftmaxRowStats softmax_row_inplace(float* p, size_t K) {
  // vexp and the lane reductions (kernels/vmath.hpp) vectorize where a libm call per element and an in-order sum do
  // not (attention's rows of scores), in the same order in every variant
  const float m = vmath::lane_max(p, K);
  for (size_t k = 0; k < K; ++k) p[k] = vmath::vexp(p[k] - m);
  const float sum = vmath::lane_sum(p, K);
  const float inv = 1.0f / sum;
  for (size_t k = 0; k < K; ++k) p[k] *= inv;
  return {m, inv};
}

void softmax_rows_forward(size_t rows, size_t K, const float* z, float* p) {
  for_chunks(rows, rows * K * 8, [&](size_t lo, size_t hi) {
    std::copy(z + lo * K, z + hi * K, p + lo * K);
    for (size_t r = lo; r < hi; ++r) softmax_row_inplace(p + r * K, K);
  });
}

void softmax_rows_backward(size_t rows, size_t K, const float* p, const float* dy, float* dz) {
  for_chunks(rows, rows * K * 2, [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; ++r) {
      const float* pr = p + r * K;
      const float* dr = dy + r * K;
      // lane_dot, not an in-order `dot += p dy`: GCC vectorizes that as an in-order reduction whose vector body
      // rounds each product and whose remainder contracts it into an FMA, and the body's length is the vector
      // width's multiple, so the AVX2 and AVX-512 variants rounded different terms (docs/kernels.md)
      const float dot = vmath::lane_dot(pr, dr, K);
      for (size_t k = 0; k < K; ++k) dz[r * K + k] = pr[k] * (dr[k] - dot);
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
