// Fast float32 attention: see kernel.hpp for the contracts, the memory bound and the determinism argument.
// One task = one (example, head). The head's rows of q, k, v are read in place (d contiguous floats, stride D);
// the inner loops run over d (dot products and axpys the compiler vectorizes).
#include "veridl/prims/sdpa/kernel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "veridl/kernels/parallel.hpp"

namespace veridl::kernels {
namespace {

float* scratch(int slot, size_t n) {
  thread_local std::vector<float> buf[2];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

inline float dot(const float* a, const float* b, size_t d) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (size_t x = 0; x < d; ++x) acc += a[x] * b[x];
  return acc;
}

inline void axpy(float a, const float* x, float* y, size_t d) {
#pragma omp simd
  for (size_t i = 0; i < d; ++i) y[i] += a * x[i];
}

// Scores and probabilities of head (n, h) into P [T, T] (row i: its keys(i) entries); returns nothing else.
// With m_out/inv_out the row statistics are computed and stored; without, they are read from m/inv (backward).
void head_probs(const ops::SdpaShape& s, const float* q, const float* k, size_t n, size_t h, float c, float* P,
                float* m_out, float* inv_out, const float* m_in, const float* inv_in) {
  const size_t D = s.D, d = s.d(), T = s.T;
  for (size_t i = 0; i < T; ++i) {
    const size_t K = s.keys(i), r = (n * s.heads + h) * T + i;
    const float* qi = q + (n * T + i) * D + h * d;
    float* pr = P + i * T;
    for (size_t j = 0; j < K; ++j) pr[j] = dot(qi, k + (n * T + j) * D + h * d, d) * c;
    float mi, iv;
    if (m_in) {
      mi = m_in[r];
      iv = inv_in[r];
      for (size_t j = 0; j < K; ++j) pr[j] = std::exp(pr[j] - mi) * iv;
    } else {
      mi = pr[0];
      for (size_t j = 1; j < K; ++j) mi = std::max(mi, pr[j]);
      float sum = 0.0f;
      for (size_t j = 0; j < K; ++j) {
        pr[j] = std::exp(pr[j] - mi);
        sum += pr[j];
      }
      iv = 1.0f / sum;
      for (size_t j = 0; j < K; ++j) pr[j] *= iv;
      if (m_out) m_out[r] = mi;
      if (inv_out) inv_out[r] = iv;
    }
  }
}

size_t work(const ops::SdpaShape& s) { return s.N * s.heads * s.T * s.T * s.d(); }

}  // namespace

void sdpa_forward(const ops::SdpaShape& s, const float* q, const float* k, const float* v, float* out, float* m,
                  float* inv) {
  const size_t D = s.D, d = s.d(), T = s.T;
  const float c = 1.0f / std::sqrt(static_cast<float>(d));
  for_chunks(s.N * s.heads, work(s), [&](size_t lo, size_t hi) {
    float* P = scratch(0, T * T);
    for (size_t t = lo; t < hi; ++t) {
      const size_t n = t / s.heads, h = t % s.heads;
      head_probs(s, q, k, n, h, c, P, m, inv, nullptr, nullptr);
      for (size_t i = 0; i < T; ++i) {
        float* oi = out + (n * T + i) * D + h * d;
        std::fill_n(oi, d, 0.0f);
        const float* pr = P + i * T;
        for (size_t j = 0; j < s.keys(i); ++j) axpy(pr[j], v + (n * T + j) * D + h * d, oi, d);
      }
    }
  });
}

void sdpa_backward(const ops::SdpaShape& s, const float* q, const float* k, const float* v, const float* m,
                   const float* inv, const float* dO, float* dq, float* dk, float* dv) {
  const size_t D = s.D, d = s.d(), T = s.T;
  const float c = 1.0f / std::sqrt(static_cast<float>(d));
  for_chunks(s.N * s.heads, 2 * work(s), [&](size_t lo, size_t hi) {
    float* P = scratch(0, T * T);
    float* dS = scratch(1, T * T);
    for (size_t t = lo; t < hi; ++t) {
      const size_t n = t / s.heads, h = t % s.heads;
      auto at = [&](size_t tok) { return (n * T + tok) * D + h * d; };
      head_probs(s, q, k, n, h, c, P, nullptr, nullptr, m, inv);
      // dS = P (dP - rowsum(P dP)) c, dP = dO v^T
      for (size_t i = 0; i < T; ++i) {
        const size_t K = s.keys(i);
        const float* pr = P + i * T;
        float* sr = dS + i * T;
        const float* doi = dO + at(i);
        float rs = 0.0f;
        for (size_t j = 0; j < K; ++j) {
          sr[j] = dot(doi, v + at(j), d);
          rs += pr[j] * sr[j];
        }
        for (size_t j = 0; j < K; ++j) sr[j] = pr[j] * (sr[j] - rs) * c;
      }
      if (dq)
        for (size_t i = 0; i < T; ++i) {
          float* gi = dq + at(i);
          std::fill_n(gi, d, 0.0f);
          const float* sr = dS + i * T;
          for (size_t j = 0; j < s.keys(i); ++j) axpy(sr[j], k + at(j), gi, d);
        }
      if (dk || dv) {
        for (size_t j = 0; j < T; ++j) {
          if (dk) std::fill_n(dk + at(j), d, 0.0f);
          if (dv) std::fill_n(dv + at(j), d, 0.0f);
        }
        for (size_t i = 0; i < T; ++i) {
          const float* sr = dS + i * T;
          const float* pr = P + i * T;
          const float* qi = q + at(i);
          const float* doi = dO + at(i);
          for (size_t j = 0; j < s.keys(i); ++j) {
            if (dk) axpy(sr[j], qi, dk + at(j), d);
            if (dv) axpy(pr[j], doi, dv + at(j), d);
          }
        }
      }
    }
  });
}

}  // namespace veridl::kernels
