#include "veridl/prims/matmul/kernel.hpp"

#include <algorithm>

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {
inline float dot(const float* x, const float* y, size_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (size_t i = 0; i < n; ++i) acc += x[i] * y[i];
  return acc;
}
inline void axpy(float a, const float* x, float* y, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
size_t work(const ops::MatmulShape& s) { return s.groups() * s.M * s.K * s.P; }
}  // namespace

void matmul_forward(const ops::MatmulShape& s, const float* a, const float* b, float* y) {
  const size_t M = s.M, K = s.K, P = s.P;
  for_chunks(s.groups(), work(s), [&](size_t lo, size_t hi) {
    for (size_t q = lo; q < hi; ++q)
      for (size_t m = 0; m < M; ++m) {
        const float* am = a + (q * M + m) * K;
        float* ym = y + (q * M + m) * P;
        if (s.transpose_b) {
          for (size_t p = 0; p < P; ++p) ym[p] = dot(am, b + (q * P + p) * K, K);
        } else {
          std::fill_n(ym, P, 0.0f);
          for (size_t k = 0; k < K; ++k) axpy(am[k], b + (q * K + k) * P, ym, P);
        }
      }
  });
}

void matmul_backward(const ops::MatmulShape& s, const float* a, const float* b, const float* dy, float* da, float* db) {
  const size_t M = s.M, K = s.K, P = s.P;
  for_chunks(s.groups(), 2 * work(s), [&](size_t lo, size_t hi) {
    for (size_t q = lo; q < hi; ++q) {
      if (da)
        for (size_t m = 0; m < M; ++m) {
          const float* dym = dy + (q * M + m) * P;
          float* dam = da + (q * M + m) * K;
          if (s.transpose_b) {  // da = dy b: rows of b [P, K]
            std::fill_n(dam, K, 0.0f);
            for (size_t p = 0; p < P; ++p) axpy(dym[p], b + (q * P + p) * K, dam, K);
          } else {  // da = dy b^T: dot products with rows of b [K, P]
            for (size_t k = 0; k < K; ++k) dam[k] = dot(dym, b + (q * K + k) * P, P);
          }
        }
      if (db) {
        float* dbq = db + q * K * P;
        std::fill_n(dbq, K * P, 0.0f);
        for (size_t m = 0; m < M; ++m) {
          const float* am = a + (q * M + m) * K;
          const float* dym = dy + (q * M + m) * P;
          if (s.transpose_b)  // db [P, K] = dy^T a
            for (size_t p = 0; p < P; ++p) axpy(dym[p], am, dbq + p * K, K);
          else  // db [K, P] = a^T dy
            for (size_t k = 0; k < K; ++k) axpy(am[k], dym, dbq + k * P, P);
        }
      }
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
