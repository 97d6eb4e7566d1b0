// LayerNorm (book ch. 9, ConvNeXt): BatchNorm's algebra over another axis. Per example the value is seen as
// [P, C, inner]; at every position (p, i) the statistics run over the C values x[p, c, i], c < C, and the
// affine parameters gamma[C], beta[C] are per c:
//   axis "channels"  a C x H x W input, P = 1, inner = H W: ConvNeXt's channels-first LayerNorm2d, which
//                    normalises the C channels of each pixel
//   axis "last"      the last dimension: [T, D] tokens (P = T, C = D, inner = 1) or flat [D] features
//
//   forward   mu     = (1/C) sum_c x                  var = (1/C) sum_c (x - mu)^2     (biased)
//             r      = rsqrt(var + eps)               (the atom arsqrt; saved, one per position)
//             xhat   = (x - mu) r                     (saved)
//             y      = gamma_c xhat + beta_c
//   VJP       g      = gamma_c dy
//             dx     = (r/C) (C g - sum_c g - xhat sum_c(g xhat))         layerNorm_has_vjp_correct
//             dgamma = sum_{examples, positions} dy xhat,   dbeta = sum dy
//
// The same three-term form as BatchNorm's bn_input_grad_correct with the roles of the axes swapped (the
// sums run over c at a fixed position instead of over the positions at a fixed c), as the original proves
// layerNorm_has_vjp_correct by reusing the BN proof. Same atoms (verification.md, rule 2): the backward
// reuses the r and xhat the forward saved; it never recomputes rsqrt(var + eps) or (x - mu)/sqrt(...). The
// identity holds exactly in the field because sum_c (x - mu) = 0 and r^2 (x_i - mu)(x_j - mu) = xhat_i xhat_j
// are polynomial identities. eps enters as T(eps) (an exact dyadic embedding), 1/C as T(1)/T(C).
//
// No running state: Train and Eval compute the same thing (in Eval the saved buffers may be nullptr).
//
// Written once over the scalar type: the reference the float kernels (prims/layerNorm/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

inline constexpr double kLayerNormEps = 1e-5;  // PyTorch's nn.LayerNorm default (ConvNeXt passes 1e-6)

struct LayerNormShape {
  size_t N = 1;      // examples
  size_t P = 1;      // outer positions per example (tokens for axis "last" on [T, D]; 1 otherwise)
  size_t C = 1;      // the normalised axis (channels, or the last dimension)
  size_t inner = 1;  // positions after it (H W for axis "channels"; 1 for axis "last")
  size_t rows() const { return N * P; }
  size_t count() const { return N * P * C * inner; }  // elements of x / y
  size_t positions() const { return N * P * inner; }  // one statistic (and one r) each
  std::string str() const {
    return "N=" + std::to_string(N) + " P=" + std::to_string(P) + " C=" + std::to_string(C) +
           " inner=" + std::to_string(inner);
  }
};

// Element (o, c, i) of row o < rows() is x[(o C + c) inner + i]; position (o, i) is r[o inner + i].

// Forward: writes y, and when not nullptr r[positions] = rsqrt(var + eps) and xhat[count] (what the
// backward reuses).
template <class T>
void layernorm_forward(const LayerNormShape& s, double eps, const T* x, const T* gamma, const T* beta, T* y, T* r,
                       T* xhat) {
  const size_t C = s.C, K = s.inner;
  const T inv_c = T(1) / T(static_cast<int64_t>(C));
  const T teps = T(eps);
  for (size_t o = 0; o < s.rows(); ++o)
    for (size_t i = 0; i < K; ++i) {
      const size_t base = o * C * K + i;  // element c at base + c K
      T sum = T(0);
      for (size_t c = 0; c < C; ++c) sum += x[base + c * K];
      const T mu = sum * inv_c;
      T sq = T(0);
      for (size_t c = 0; c < C; ++c) {
        const T d = x[base + c * K] - mu;
        sq += d * d;
      }
      const T rv = arsqrt(sq * inv_c + teps);
      if (r) r[o * K + i] = rv;
      for (size_t c = 0; c < C; ++c) {
        const T xh = (x[base + c * K] - mu) * rv;
        if (xhat) xhat[base + c * K] = xh;
        y[base + c * K] = gamma[c] * xh + beta[c];
      }
    }
}

// Backward from the saved r and xhat. Writes dx, dgamma[C], dbeta[C] (overwrites); any of the three may be
// nullptr when that gradient is not wanted. dgamma and dbeta sum over rows, then positions, in order.
template <class T>
void layernorm_backward(const LayerNormShape& s, const T* gamma, const T* r, const T* xhat, const T* dy, T* dx,
                        T* dgamma, T* dbeta) {
  const size_t C = s.C, K = s.inner;
  if (dgamma || dbeta)
    for (size_t c = 0; c < C; ++c) {
      T sg = T(0), sb = T(0);
      for (size_t o = 0; o < s.rows(); ++o)
        for (size_t i = 0; i < K; ++i) {
          const size_t e = (o * C + c) * K + i;
          sg += dy[e] * xhat[e];
          sb += dy[e];
        }
      if (dgamma) dgamma[c] = sg;
      if (dbeta) dbeta[c] = sb;
    }
  if (!dx) return;
  const T n = T(static_cast<int64_t>(C));
  const T inv_n = T(1) / n;
  for (size_t o = 0; o < s.rows(); ++o)
    for (size_t i = 0; i < K; ++i) {
      const size_t base = o * C * K + i;
      T sum_g = T(0), sum_gx = T(0);
      for (size_t c = 0; c < C; ++c) {
        const T g = gamma[c] * dy[base + c * K];
        sum_g += g;
        sum_gx += g * xhat[base + c * K];
      }
      const T k = r[o * K + i] * inv_n;
      for (size_t c = 0; c < C; ++c) {
        const T g = gamma[c] * dy[base + c * K];
        dx[base + c * K] = k * (n * g - sum_g - xhat[base + c * K] * sum_gx);
      }
    }
}

// The record form: inputs {x, gamma, beta}, output y. Saved: r, xhat (in that order).
struct LayerNormOp {
  LayerNormShape s;
  double eps = kLayerNormEps;
  std::vector<std::string> in_names() const { return {"x", "gamma", "beta"}; }
  std::vector<size_t> in_sizes() const { return {s.count(), s.C, s.C}; }
  size_t out_size() const { return s.count(); }

  enum Saved : size_t { kR = 0, kXhat = 1 };

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.count());
    c.saved = {Vec<T>(s.positions()), Vec<T>(s.count())};
    layernorm_forward(s, eps, in[0].data(), in[1].data(), in[2].data(), c.out.data(), c.saved[kR].data(),
                      c.saved[kXhat].data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.C), Vec<T>(s.C)};
    layernorm_backward(s, in[1].data(), c.saved[kR].data(), c.saved[kXhat].data(), dy.data(), g[0].data(),
                       g[1].data(), g[2].data());
    return g;
  }
};

}  // namespace veridl::ops
