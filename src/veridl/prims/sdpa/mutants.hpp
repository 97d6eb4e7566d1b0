// Deliberately broken backwards of scaled dot-product attention (book ch. 10): the evidence that the checker
// bites. Each mutant is the real op with one realistic bug in its backward (forward untouched).
// `veridl verify --mutants` runs them; tests/test_attention.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/sdpa/reference.hpp"

namespace veridl::ops {

struct SdpaMutantOp : SdpaOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& ctx, const Vec<T>& dO) const {
    const bool scale_missing = kind == "scale_missing", scale_d = kind == "scale_one_over_d",
               no_rowsum = kind == "missing_rowsum", dk_from_k = kind == "dk_from_k",
               dv_untransposed = kind == "dv_not_transposed", dv_scaled = kind == "dv_scale_1.0001",
               mask_ignored = kind == "causal_mask_ignored", other_head = kind == "dq_next_heads_k",
               dp_from_dq = kind == "dp_reads_k_for_v";
    if (!(scale_missing || scale_d || no_rowsum || dk_from_k || dv_untransposed || dv_scaled || mask_ignored ||
          other_head || dp_from_dq))
      throw std::invalid_argument("unknown sdpa mutant '" + kind + "'");
    const Vec<T>& q = in[0];
    const Vec<T>& k = in[1];
    const Vec<T>& v = in[2];
    const Vec<T>& m = ctx.saved[kM];
    const Vec<T>& inv = ctx.saved[kInv];
    const size_t W = s.D, d = s.d(), H = s.heads;
    const T c = sdpa_scale<T>(s);
    T cb = c;                                                     // the scale the backward applies to dS
    if (scale_missing) cb = T(1);                                 // 1/sqrt(d) forgotten in the backward
    if (scale_d) cb = T(1) / T(static_cast<int64_t>(d));          // 1/d for 1/sqrt(d)
    Ins<T> g{Vec<T>(s.count(), T(0)), Vec<T>(s.count(), T(0)), Vec<T>(s.count(), T(0))};
    Vec<T> p(s.T), dp(s.T);
    for (size_t n = 0; n < s.N; ++n)
      for (size_t h = 0; h < H; ++h)
        for (size_t i = 0; i < s.T; ++i) {
          const size_t r = (n * H + h) * s.T + i;
          const size_t K = mask_ignored ? s.T : s.keys(i);  // the causal mask forgotten in the backward
          // scores over K keys (the forward's sdpa_scores stops at keys(i))
          const T* qi = q.data() + (n * s.T + i) * W + h * d;
          for (size_t j = 0; j < K; ++j) {
            const T* kj = k.data() + (n * s.T + j) * W + h * d;
            T acc = T(0);
            for (size_t x = 0; x < d; ++x) acc += qi[x] * kj[x];
            p[j] = aexp(acc * c - m[r]) * inv[r];
          }
          const T* doi = dO.data() + (n * s.T + i) * W + h * d;
          T dot = T(0);
          for (size_t j = 0; j < K; ++j) {
            const T* vj = (dp_from_dq ? k.data() : v.data()) + (n * s.T + j) * W + h * d;  // dP = dO k^T
            T acc = T(0);
            for (size_t x = 0; x < d; ++x) acc += doi[x] * vj[x];
            dp[j] = acc;
            dot += p[j] * acc;
          }
          for (size_t j = 0; j < K; ++j) {
            const T ds = p[j] * (no_rowsum ? dp[j] : dp[j] - dot) * cb;
            const size_t oj = (n * s.T + j) * W + h * d;
            const size_t ok = (n * s.T + j) * W + ((h + 1) % H) * d;  // the next head's columns
            for (size_t x = 0; x < d; ++x) {
              g[0][(n * s.T + i) * W + h * d + x] += ds * k[(other_head ? ok : oj) + x];
              g[1][oj + x] += ds * (dk_from_k ? k[oj + x] : qi[x]);
              if (dv_untransposed) g[2][(n * s.T + i) * W + h * d + x] += p[j] * dO[oj + x];  // P dO, not P^T dO
              else g[2][oj + x] += p[j] * doi[x] * (dv_scaled ? T(1.0001) : T(1));
            }
          }
        }
    return g;
  }
};

}  // namespace veridl::ops
