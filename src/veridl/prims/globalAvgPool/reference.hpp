// global average pool, flat (book ch. 6, the book's globalAvgPoolFlat in CNN.lean): the mean of every
// channel over H x W, giving a flat [C] per example (the original's [B, C]).
//
//   y[b,c]      = inv * sum_{h,w} x[b,c,h,w],     inv = 1 / (H W)
//   dx[b,c,h,w] = inv * dy[b,c]                                   globalAvgPoolFlat_has_vjp_correct
//
// No decisions: linear. inv is T(1) / T(H W) (exact in the field), computed once; the forward sums each
// plane in row-major order from T(0), then multiplies by inv (the fast kernels do the same in float, so
// they are bit-identical to this reference at T = float).
//
// Written once over the scalar type: the reference the float kernels (prims/globalAvgPool/kernel.hpp) are
// tested against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct GlobalAvgPoolShape {
  size_t B = 1, C = 1, H = 1, W = 1;
  size_t planes() const { return B * C; }  // = the output size
  size_t plane() const { return H * W; }   // the divisor
  size_t x_size() const { return B * C * H * W; }
  std::string str() const {
    return "B=" + std::to_string(B) + " C=" + std::to_string(C) + " H=" + std::to_string(H) + " W=" + std::to_string(W);
  }
  void validate() const {
    if (B == 0 || C == 0 || H == 0 || W == 0) throw std::invalid_argument("globalavgpool: zero size in shape " + str());
  }
};

// y [B, C]. Overwrites y.
template <class T>
void global_avgpool_forward(const GlobalAvgPoolShape& s, const T* x, T* y) {
  s.validate();
  const size_t K = s.plane();
  const T inv = T(1) / T(static_cast<int64_t>(K));
  for (size_t r = 0; r < s.planes(); ++r) {
    T acc = T(0);
    for (size_t k = 0; k < K; ++k) acc += x[r * K + k];
    y[r] = acc * inv;
  }
}

// dx [B, C, H, W] = dy[b, c] / (H W) broadcast over the plane. Overwrites dx.
template <class T>
void global_avgpool_backward(const GlobalAvgPoolShape& s, const T* dy, T* dx) {
  s.validate();
  const size_t K = s.plane();
  const T inv = T(1) / T(static_cast<int64_t>(K));
  for (size_t r = 0; r < s.planes(); ++r) {
    const T g = dy[r] * inv;
    for (size_t k = 0; k < K; ++k) dx[r * K + k] = g;
  }
}

// The record form: input {x}, output y. No decisions.
struct GlobalAvgPoolOp {
  GlobalAvgPoolShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const {
    s.validate();
    return {s.x_size()};
  }
  size_t out_size() const { return s.planes(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(out_size());
    global_avgpool_forward(s, in[0].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.x_size())};
    global_avgpool_backward(s, dy.data(), g[0].data());
    return g;
  }
};

}  // namespace veridl::ops
