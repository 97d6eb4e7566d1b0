// softmax and softmax cross-entropy with label smoothing (book ch. 2).
//
// softmax (row-wise over K, stable: shifted by the row maximum, which is taken from the decision tape)
//   p_j = exp(z_j - m) / S,  S = sum_k exp(z_k - m)
//   VJP: dz_i = p_i (dy_i - <p, dy>)                                      softmax_has_vjp
//
// softmax cross-entropy, labels y_b, smoothing eps, K classes, batch mean:
//   t = (1 - eps) onehot(y) + eps/K;  L = (1/B) sum_b sum_k -t_k log p_k
//   log p_k = (z_k - m) - log S          (same atoms: the backward reuses p, never exp(log p))
//   VJP: dz[b,k] = dL (p[b,k] - t[b,k]) / B                              softmaxCE_grad
// Sum_k t_k = 1 and Sum_k p_k = 1 hold exactly in the field, so the max-shift needs no identity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct SoftmaxShape {
  size_t B = 1, K = 2;
  // The loss (softmaxCE) averages over this many examples, 0: over B. A data-parallel rank runs B examples of a
  // global batch of mean_over (docs/distributed.md), so that its loss and gradient are its share of the global mean.
  size_t mean_over = 0;
  size_t mean_count() const { return mean_over ? mean_over : B; }
};

// One row: m = z[argmax] (from the tape), p = exp(z - m) / S. Returns S; m through `m`.
template <class T>
T softmax_row(size_t K, const T* zr, T* pr, T& m, Decisions& D) {
  const uint32_t am = D.argmax(static_cast<uint32_t>(K), [&](uint32_t k) { return zr[k]; });
  m = zr[am];
  T S = T(0);
  for (size_t k = 0; k < K; ++k) {
    pr[k] = aexp(zr[k] - m);
    S += pr[k];
  }
  const T inv = T(1) / S;
  for (size_t k = 0; k < K; ++k) pr[k] *= inv;
  return S;
}

template <class T>
void softmax_forward(const SoftmaxShape& s, const T* z, T* p, Decisions& D) {
  T m;
  for (size_t b = 0; b < s.B; ++b) softmax_row(s.K, z + b * s.K, p + b * s.K, m, D);
}

template <class T>
void softmax_backward(const SoftmaxShape& s, const T* p, const T* dy, T* dz) {
  for (size_t b = 0; b < s.B; ++b) {
    const T* pr = p + b * s.K;
    const T* dr = dy + b * s.K;
    T dot = T(0);
    for (size_t k = 0; k < s.K; ++k) dot += pr[k] * dr[k];
    for (size_t k = 0; k < s.K; ++k) dz[b * s.K + k] = pr[k] * (dr[k] - dot);
  }
}

// The smoothed target: on-label (1 - eps) + eps/K, off-label eps/K, built in T so that the two sum to
// exactly one in the field.
template <class T>
struct SmoothedTarget {
  T on, off;
  SmoothedTarget(double eps, size_t K) {
    off = T(eps) / T(static_cast<int64_t>(K));
    on = T(1) - T(eps) + off;
  }
};

inline void check_labels(const SoftmaxShape& s, const int32_t* labels) {
  for (size_t b = 0; b < s.B; ++b)
    if (labels[b] < 0 || static_cast<size_t>(labels[b]) >= s.K)
      throw std::out_of_range("softmax_ce: label " + std::to_string(labels[b]) + " at row " + std::to_string(b) +
                              " is outside [0, " + std::to_string(s.K) + ")");
}

// Forward: p (saved for the backward) and the mean loss.
template <class T>
T softmax_ce_forward(const SoftmaxShape& s, double eps, const int32_t* labels, const T* z, T* p, Decisions& D) {
  check_labels(s, labels);
  SmoothedTarget<T> t(eps, s.K);
  T total = T(0);
  for (size_t b = 0; b < s.B; ++b) {
    const T* zr = z + b * s.K;
    T m;
    const T logS = alog(softmax_row(s.K, zr, p + b * s.K, m, D));
    T row = T(0);
    for (size_t k = 0; k < s.K; ++k) {
      T tk = static_cast<size_t>(labels[b]) == k ? t.on : t.off;
      row += tk * ((zr[k] - m) - logS);
    }
    total -= row;
  }
  return total / T(static_cast<int64_t>(s.mean_count()));
}

// Backward: dz = dL (p - t) / B.
template <class T>
void softmax_ce_backward(const SoftmaxShape& s, double eps, const int32_t* labels, const T* p, T dL, T* dz) {
  SmoothedTarget<T> t(eps, s.K);
  T scale = dL / T(static_cast<int64_t>(s.mean_count()));
  for (size_t b = 0; b < s.B; ++b)
    for (size_t k = 0; k < s.K; ++k) {
      T tk = static_cast<size_t>(labels[b]) == k ? t.on : t.off;
      dz[b * s.K + k] = scale * (p[b * s.K + k] - tk);
    }
}

struct SoftmaxOp {
  SoftmaxShape s;
  std::vector<std::string> in_names() const { return {"z"}; }
  std::vector<size_t> in_sizes() const { return {s.B * s.K}; }
  size_t out_size() const { return s.B * s.K; }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(out_size());
    softmax_forward(s, in[0].data(), c.out.data(), D);
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(out_size())};
    softmax_backward(s, c.out.data(), dy.data(), g[0].data());
    return g;
  }
};

// Input: logits z [B, K]; output: the scalar mean loss. Labels and smoothing are configuration.
struct SoftmaxCEOp {
  SoftmaxShape s;
  double eps = 0.0;
  std::vector<int32_t> labels;
  std::vector<std::string> in_names() const { return {"z"}; }
  std::vector<size_t> in_sizes() const { return {s.B * s.K}; }
  size_t out_size() const { return 1; }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.saved.emplace_back(s.B * s.K);
    c.out = {softmax_ce_forward(s, eps, labels.data(), in[0].data(), c.saved[0].data(), D)};
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.B * s.K)};
    softmax_ce_backward(s, eps, labels.data(), c.saved[0].data(), dy[0], g[0].data());
    return g;
  }
};

}  // namespace veridl::ops
