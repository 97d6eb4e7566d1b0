// Fast float32 attention: see kernel.hpp for the contracts, the memory bound and the determinism argument.
// One task = one (example, head): the head's columns of q, k, v (and dO) are gathered into contiguous [T, d]
// matrices, and every product is one of the dense layer's blocked GEMM kernels (prims/dense/kernel.hpp) on
// them: S = q k^T and dP = dO v^T as dense_backward_input (x W^T), O = P v and dq = dS k as dense_forward, dk =
// dS^T q and dv = P^T dO as dense_backward_weight. Called inside this kernel's own parallel region, those kernels
// run on the calling thread (OpenMP does not nest by default).
#include "veridl/prims/sdpa/kernel.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "veridl/kernels/parallel.hpp"
#include "veridl/kernels/scratch.hpp"
#include "veridl/prims/dense/kernel.hpp"
#include "veridl/prims/softmax/kernel.hpp"
#include "veridl/kernels/vmath.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

enum Slot { kQ, kK, kV, kDO, kOut, kP, kDS, kZero, kSlots };

float* scratch(int slot, size_t n) {
  thread_local Scratch<float> buf[kSlots];
  return buf[slot].get(n);
}

// dst [T, d] <- the head's columns of src [T, D] (example n), and back.
void gather(const ops::SdpaShape& s, const float* src, size_t n, size_t h, float* dst) {
  const size_t d = s.d();
  for (size_t t = 0; t < s.T; ++t) std::copy_n(src + (n * s.T + t) * s.D + h * d, d, dst + t * d);
}
void scatter(const ops::SdpaShape& s, const float* src, size_t n, size_t h, float* dst) {
  const size_t d = s.d();
  for (size_t t = 0; t < s.T; ++t) std::copy_n(src + t * d, d, dst + (n * s.T + t) * s.D + h * d);
}

// P [T, T] from the raw products S = q k^T (in P): scaled by c, row-softmaxed over each row's keys (the others
// set to 0). With m_out / inv_out the row statistics are computed and stored; with m_in / inv_in (the backward)
// they are the forward's.
void probs(const ops::SdpaShape& s, size_t n, size_t h, float c, float* P, float* m_out, float* inv_out,
           const float* m_in, const float* inv_in) {
  const size_t T = s.T;
  for (size_t i = 0; i < T; ++i) {
    const size_t K = s.keys(i), r = (n * s.heads + h) * T + i;
    float* pr = P + i * T;
    for (size_t j = 0; j < K; ++j) pr[j] *= c;
    if (m_in) {
      const float mi = m_in[r], iv = inv_in[r];
      for (size_t j = 0; j < K; ++j) pr[j] = vmath::vexp(pr[j] - mi) * iv;  // softmax_row_inplace's exp
    } else {
      const SoftmaxRowStats st = softmax_row_inplace(pr, K);
      if (m_out) m_out[r] = st.max;
      if (inv_out) inv_out[r] = st.inv_sum;
    }
    std::fill(pr + K, pr + T, 0.0f);
  }
}

size_t work(const ops::SdpaShape& s) { return s.N * s.heads * s.T * s.T * s.d(); }

// A thread's scratch for one head: q, k, v columns gathered [T, d], the scores P [T, T], d zeros (a bias).
struct Head {
  float *Q, *K, *V, *P, *zero;
};
Head head_scratch(const ops::SdpaShape& s) {
  const size_t d = s.d(), T = s.T;
  Head hd{scratch(kQ, T * d), scratch(kK, T * d), scratch(kV, T * d), scratch(kP, T * T), scratch(kZero, d)};
  std::fill_n(hd.zero, d, 0.0f);
  return hd;
}
// Head (n, h): its q, k, v columns gathered, and P = q k^T (raw products, before probs()).
void head_scores(const ops::SdpaShape& s, const float* q, const float* k, const float* v, size_t n, size_t h,
                 const Head& hd) {
  gather(s, q, n, h, hd.Q);
  gather(s, k, n, h, hd.K);
  gather(s, v, n, h, hd.V);
  dense_backward_input(ops::DenseShape{s.T, s.T, s.d()}, hd.K, hd.Q, hd.P);
}

}  // namespace

void sdpa_forward(const ops::SdpaShape& s, const float* q, const float* k, const float* v, float* out, float* m,
                  float* inv) {
  const size_t d = s.d(), T = s.T;
  const float c = 1.0f / std::sqrt(static_cast<float>(d));
  const ops::DenseShape tt{T, T, d};  // [T, d] x [T, d]^T -> [T, T];  [T, T] x [T, d] -> [T, d]
  for_chunks(s.N * s.heads, work(s), [&](size_t lo, size_t hi) {
    const Head hd = head_scratch(s);
    float* O = scratch(kOut, T * d);
    for (size_t t = lo; t < hi; ++t) {
      const size_t n = t / s.heads, h = t % s.heads;
      head_scores(s, q, k, v, n, h, hd);  // P = Q K^T
      probs(s, n, h, c, hd.P, m, inv, nullptr, nullptr);
      dense_forward(tt, hd.P, hd.V, hd.zero, O);  // O = P V
      scatter(s, O, n, h, out);
    }
  });
}

void sdpa_backward(const ops::SdpaShape& s, const float* q, const float* k, const float* v, const float* m,
                   const float* inv, const float* dO, float* dq, float* dk, float* dv) {
  const size_t d = s.d(), T = s.T;
  const float c = 1.0f / std::sqrt(static_cast<float>(d));
  const ops::DenseShape tt{T, T, d};
  for_chunks(s.N * s.heads, 2 * work(s), [&](size_t lo, size_t hi) {
    const Head hd = head_scratch(s);
    float *const Q = hd.Q, *const K = hd.K, *const V = hd.V, *const P = hd.P, *const zero = hd.zero;
    float *G = scratch(kDO, T * d), *R = scratch(kOut, T * d), *dS = scratch(kDS, T * T);
    for (size_t t = lo; t < hi; ++t) {
      const size_t n = t / s.heads, h = t % s.heads;
      head_scores(s, q, k, v, n, h, hd);  // S = Q K^T, then P from the saved statistics
      gather(s, dO, n, h, G);
      probs(s, n, h, c, P, nullptr, nullptr, m, inv);
      dense_backward_input(tt, V, G, dS);  // dP = dO V^T
      for (size_t i = 0; i < T; ++i) {  // dS = P (dP - rowsum(P dP)) c (0 past a causal row's keys: P is 0)
        const float* pr = P + i * T;
        float* sr = dS + i * T;
        const float rs = vmath::lane_dot(pr, sr, T);
        for (size_t j = 0; j < T; ++j) sr[j] = pr[j] * (sr[j] - rs) * c;
      }
      if (dq) {
        dense_forward(tt, dS, K, zero, R);  // dq = dS K
        scatter(s, R, n, h, dq);
      }
      if (dk) {
        dense_backward_weight(tt, dS, Q, R);  // dk = dS^T Q
        scatter(s, R, n, h, dk);
      }
      if (dv) {
        dense_backward_weight(tt, P, G, R);  // dv = P^T dO
        scatter(s, R, n, h, dv);
      }
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
