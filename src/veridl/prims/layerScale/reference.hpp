// LayerScale (book ch. 9; ConvNeXt, CaiT, DeiT-III): y = gamma (.) x with one learnt scale per channel.
// Per example the value is seen as [P, C, inner], element (p, c, i) scaled by gamma[c]:
//   a C x H x W input      the channel axis is the first (NCHW, ConvNeXt): P = 1, inner = H W
//   [D] or [T, D] inputs   the channel axis is the last (CaiT / DeiT-III tokens): P = T, inner = 1
//
//   forward   y[o,c,i]  = gamma[c] x[o,c,i]                 (o < rows = N P)
//   VJP       dx[o,c,i] = gamma[c] dy[o,c,i],   dgamma[c] = sum_{o,i} dy[o,c,i] x[o,c,i]
//                                                                   layerScale_has_vjp_correct (ch. 9)
//
// No decisions, no atoms: it is polynomial, so the identity check covers it for every input. dgamma sums
// over rows, then positions, in order from T(0).
//
// Written once over the scalar type: the reference the float kernels (prims/layerScale/kernel.hpp) are
// tested against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

inline constexpr double kLayerScaleInit = 1e-6;  // ConvNeXt's layer_scale_init_value

struct LayerScaleShape {
  size_t N = 1;      // examples
  size_t P = 1;      // outer positions per example (tokens on a [T, D] input; 1 otherwise)
  size_t C = 1;      // channels: one gamma each
  size_t inner = 1;  // positions after the channel axis (H W on a C x H x W input; 1 otherwise)
  size_t rows() const { return N * P; }
  size_t count() const { return N * P * C * inner; }
  std::string str() const {
    return "N=" + std::to_string(N) + " P=" + std::to_string(P) + " C=" + std::to_string(C) +
           " inner=" + std::to_string(inner);
  }
};

// y[o,c,i] = gamma[c] x[o,c,i]. Overwrites y.
template <class T>
void layerscale_forward(const LayerScaleShape& s, const T* x, const T* gamma, T* y) {
  const size_t C = s.C, K = s.inner;
  for (size_t o = 0; o < s.rows(); ++o)
    for (size_t c = 0; c < C; ++c) {
      const size_t off = (o * C + c) * K;
      for (size_t i = 0; i < K; ++i) y[off + i] = gamma[c] * x[off + i];
    }
}

// dx = gamma (.) dy, dgamma[c] = sum_{o,i} dy x (rows, then positions, from T(0)); overwrites. Either output
// may be nullptr.
template <class T>
void layerscale_backward(const LayerScaleShape& s, const T* x, const T* gamma, const T* dy, T* dx, T* dgamma) {
  const size_t C = s.C, K = s.inner;
  if (dgamma)
    for (size_t c = 0; c < C; ++c) {
      T acc = T(0);
      for (size_t o = 0; o < s.rows(); ++o) {
        const size_t off = (o * C + c) * K;
        for (size_t i = 0; i < K; ++i) acc += dy[off + i] * x[off + i];
      }
      dgamma[c] = acc;
    }
  if (dx)
    for (size_t o = 0; o < s.rows(); ++o)
      for (size_t c = 0; c < C; ++c) {
        const size_t off = (o * C + c) * K;
        for (size_t i = 0; i < K; ++i) dx[off + i] = gamma[c] * dy[off + i];
      }
}

// The record form: inputs {x, gamma}, output gamma (.) x.
struct LayerScaleOp {
  LayerScaleShape s;
  std::vector<std::string> in_names() const { return {"x", "gamma"}; }
  std::vector<size_t> in_sizes() const { return {s.count(), s.C}; }
  size_t out_size() const { return s.count(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.count());
    layerscale_forward(s, in[0].data(), in[1].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.C)};
    layerscale_backward(s, in[0].data(), in[1].data(), dy.data(), g[0].data(), g[1].data());
    return g;
  }
};

}  // namespace veridl::ops
