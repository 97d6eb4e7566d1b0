// Scaled dot-product attention, multi-head (book ch. 10, Attention.lean): three token values q, k, v, each
// [T, D] per example; head h of H reads columns [h d, (h + 1) d), d = D / H:
//   S   = q_h k_h^T c,  c = rsqrt(d)          (the scale is the atom rsqrt of the exact constant d)
//   P   = rowSoftmax(S)                       (causal: row i sees keys j <= i only; the others are left out of
//                                              the row, P_ij = 0: a fixed mask, no data-dependent branch)
//   out_h = P v_h
// The softmax is stable: m_i = S[i, argmax] (the arg-max from the decision tape, first maximum),
// e_ij = exp(S_ij - m_i), P_ij = e_ij / sum_j e_ij.
//   VJP   dP = dO v_h^T,   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik),
//         dq_h = c dS k_h,   dk_h = c dS^T q_h,   dv_h = P^T dO          sdpa_back_Q/K/V_correct
// Same atoms (verification.md, rule 2): the forward saves m_i and inv_i = 1 / sum_j e_ij per row; the
// backward recomputes S exactly as the forward did and e_ij = exp(S_ij - m_i) on the same arguments (the same
// atom values), never exp(S - log sum) (a different atom). That is also what keeps the fast kernel's memory
// at one head's T x T score matrix per thread (kernel.hpp): nothing of size T x T is saved.
//
// Written once over the scalar type: the reference the float kernels (prims/sdpa/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct SdpaShape {
  size_t N = 1;      // examples
  size_t T = 1;      // tokens
  size_t D = 1;      // width (all heads)
  size_t heads = 1;  // D % heads == 0
  bool causal = false;
  size_t d() const { return D / heads; }
  size_t count() const { return N * T * D; }       // elements of q, k, v and out
  size_t rows() const { return N * heads * T; }    // softmax rows (one m and one inv each)
  // Keys row i attends to: all T, or i + 1 under the causal mask.
  size_t keys(size_t i) const { return causal ? i + 1 : T; }
  std::string str() const {
    return "N=" + std::to_string(N) + " T=" + std::to_string(T) + " D=" + std::to_string(D) +
           " heads=" + std::to_string(heads) + (causal ? " causal" : "");
  }
};

// Element (n, t, h, j) of q, k, v, out is at (n T + t) D + h d + j; row (n, h, i) of m, inv at (n H + h) T + i.

// S_i (row i of head h of example n) into s[0, keys(i)).
template <class T>
void sdpa_scores(const SdpaShape& s, const T* q, const T* k, size_t n, size_t h, size_t i, const T& c, T* srow) {
  const size_t D = s.D, d = s.d();
  const T* qi = q + (n * s.T + i) * D + h * d;
  for (size_t j = 0; j < s.keys(i); ++j) {
    const T* kj = k + (n * s.T + j) * D + h * d;
    T acc = T(0);
    for (size_t x = 0; x < d; ++x) acc += qi[x] * kj[x];
    srow[j] = acc * c;
  }
}

template <class T>
T sdpa_scale(const SdpaShape& s) {
  return arsqrt(T(static_cast<int64_t>(s.d())));
}

// Forward: out; when not nullptr, m[rows] and inv[rows] (what the backward reuses).
template <class T>
void sdpa_forward(const SdpaShape& s, const T* q, const T* k, const T* v, T* out, T* m, T* inv, Decisions& D) {
  const size_t W = s.D, d = s.d();
  const T c = sdpa_scale<T>(s);
  std::vector<T> srow(s.T), e(s.T);
  for (size_t n = 0; n < s.N; ++n)
    for (size_t h = 0; h < s.heads; ++h)
      for (size_t i = 0; i < s.T; ++i) {
        const size_t K = s.keys(i);
        sdpa_scores(s, q, k, n, h, i, c, srow.data());
        const uint32_t am = D.argmax(static_cast<uint32_t>(K), [&](uint32_t j) { return srow[j]; });
        const T mi = srow[am];
        T sum = T(0);
        for (size_t j = 0; j < K; ++j) {
          e[j] = aexp(srow[j] - mi);
          sum += e[j];
        }
        const T iv = T(1) / sum;
        T* oi = out + (n * s.T + i) * W + h * d;
        for (size_t x = 0; x < d; ++x) oi[x] = T(0);
        for (size_t j = 0; j < K; ++j) {
          const T p = e[j] * iv;
          const T* vj = v + (n * s.T + j) * W + h * d;
          for (size_t x = 0; x < d; ++x) oi[x] += p * vj[x];
        }
        const size_t r = (n * s.heads + h) * s.T + i;
        if (m) m[r] = mi;
        if (inv) inv[r] = iv;
      }
}

// Backward from the saved m and inv. Overwrites dq, dk, dv; each may be nullptr when not wanted.
template <class T>
void sdpa_backward(const SdpaShape& s, const T* q, const T* k, const T* v, const T* m, const T* inv, const T* dO,
                   T* dq, T* dk, T* dv) {
  const size_t W = s.D, d = s.d();
  const T c = sdpa_scale<T>(s);
  for (T* g : {dq, dk, dv})
    if (g)
      for (size_t e = 0; e < s.count(); ++e) g[e] = T(0);
  std::vector<T> p(s.T), dp(s.T);
  for (size_t n = 0; n < s.N; ++n)
    for (size_t h = 0; h < s.heads; ++h)
      for (size_t i = 0; i < s.T; ++i) {
        const size_t K = s.keys(i), r = (n * s.heads + h) * s.T + i;
        sdpa_scores(s, q, k, n, h, i, c, p.data());
        for (size_t j = 0; j < K; ++j) p[j] = aexp(p[j] - m[r]) * inv[r];
        const T* doi = dO + (n * s.T + i) * W + h * d;
        T dot = T(0);
        for (size_t j = 0; j < K; ++j) {
          const T* vj = v + (n * s.T + j) * W + h * d;
          T acc = T(0);
          for (size_t x = 0; x < d; ++x) acc += doi[x] * vj[x];
          dp[j] = acc;
          dot += p[j] * acc;
        }
        const T* qi = q + (n * s.T + i) * W + h * d;
        for (size_t j = 0; j < K; ++j) {
          const T ds = p[j] * (dp[j] - dot) * c;  // dS_ij c
          const size_t oj = (n * s.T + j) * W + h * d;
          if (dq)
            for (size_t x = 0; x < d; ++x) dq[(n * s.T + i) * W + h * d + x] += ds * k[oj + x];
          if (dk)
            for (size_t x = 0; x < d; ++x) dk[oj + x] += ds * qi[x];
          if (dv)
            for (size_t x = 0; x < d; ++x) dv[oj + x] += p[j] * doi[x];
        }
      }
}

// The record form: inputs {q, k, v}, output out. Saved: m, inv (in that order).
struct SdpaOp {
  SdpaShape s;
  std::vector<std::string> in_names() const { return {"q", "k", "v"}; }
  std::vector<size_t> in_sizes() const { return {s.count(), s.count(), s.count()}; }
  size_t out_size() const { return s.count(); }

  enum Saved : size_t { kM = 0, kInv = 1 };

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.count());
    c.saved = {Vec<T>(s.rows()), Vec<T>(s.rows())};
    sdpa_forward(s, in[0].data(), in[1].data(), in[2].data(), c.out.data(), c.saved[kM].data(), c.saved[kInv].data(), D);
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.count()), Vec<T>(s.count())};
    sdpa_backward(s, in[0].data(), in[1].data(), in[2].data(), c.saved[kM].data(), c.saved[kInv].data(), dy.data(),
                  g[0].data(), g[1].data(), g[2].data());
    return g;
  }
};

}  // namespace veridl::ops
