// patchTokens (book ch. 10, the tail of patchEmbed): a patchified image [D, h, w] per example becomes the token
// sequence [1 + P, D], P = h w:
//   y[0, c]     = cls[c] + pos[0, c]                  (the learned CLS token)
//   y[1 + p, c] = x[c, p] + pos[1 + p, c]             (patch p = i w + j, row-major)
//   VJP   dx[c, p] = dy[1 + p, c],  dcls[c] = sum_n dy[n, 0, c],  dpos[t, c] = sum_n dy[n, t, c]
//                                                                   patchTokens_has_vjp_correct
// A reindex (a transpose with one row prepended) and two additive parameters: linear, no atoms, no decisions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct PatchTokensShape {
  size_t N = 1, D = 1, P = 1;  // examples, width (channels), patches
  size_t tokens() const { return P + 1; }
  size_t in_count() const { return N * D * P; }
  size_t out_count() const { return N * (P + 1) * D; }
  std::string str() const { return "N=" + std::to_string(N) + " D=" + std::to_string(D) + " P=" + std::to_string(P); }
};

template <class T>
void patch_tokens_forward(const PatchTokensShape& s, const T* x, const T* cls, const T* pos, T* y) {
  const size_t D = s.D, P = s.P;
  for (size_t n = 0; n < s.N; ++n) {
    T* yn = y + n * (P + 1) * D;
    const T* xn = x + n * D * P;
    for (size_t c = 0; c < D; ++c) yn[c] = cls[c] + pos[c];
    for (size_t p = 0; p < P; ++p)
      for (size_t c = 0; c < D; ++c) yn[(1 + p) * D + c] = xn[c * P + p] + pos[(1 + p) * D + c];
  }
}

// Overwrites dx, dcls, dpos; each may be nullptr when not wanted.
template <class T>
void patch_tokens_backward(const PatchTokensShape& s, const T* dy, T* dx, T* dcls, T* dpos) {
  const size_t D = s.D, P = s.P, TD = (P + 1) * D;
  if (dx)
    for (size_t n = 0; n < s.N; ++n)
      for (size_t c = 0; c < D; ++c)
        for (size_t p = 0; p < P; ++p) dx[n * D * P + c * P + p] = dy[n * TD + (1 + p) * D + c];
  if (dcls)
    for (size_t c = 0; c < D; ++c) {
      T acc = T(0);
      for (size_t n = 0; n < s.N; ++n) acc += dy[n * TD + c];
      dcls[c] = acc;
    }
  if (dpos)
    for (size_t e = 0; e < TD; ++e) {
      T acc = T(0);
      for (size_t n = 0; n < s.N; ++n) acc += dy[n * TD + e];
      dpos[e] = acc;
    }
}

// The record form: inputs {x, cls, pos}, output y.
struct PatchTokensOp {
  PatchTokensShape s;
  std::vector<std::string> in_names() const { return {"x", "cls", "pos"}; }
  std::vector<size_t> in_sizes() const { return {s.in_count(), s.D, s.tokens() * s.D}; }
  size_t out_size() const { return s.out_count(); }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.out_count());
    patch_tokens_forward(s, in[0].data(), in[1].data(), in[2].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.in_count()), Vec<T>(s.D), Vec<T>(s.tokens() * s.D)};
    patch_tokens_backward(s, dy.data(), g[0].data(), g[1].data(), g[2].data());
    return g;
  }
};

}  // namespace veridl::ops
