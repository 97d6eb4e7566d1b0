// mul, the elementwise product (book ch. 8): the multiplicative fan-in of a graph.
//
//   mul       y[b,c,k] = a[b,c,k] s[b,c]              (a: B*C*inner, s: B*C; inner = 1 is a plain
//                                                      elementwise product, inner = H*W the channel
//                                                      broadcast of squeeze-excitation)
//     VJP     da[b,c,k] = s[b,c] dy[b,c,k],  ds[b,c] = sum_k a[b,c,k] dy[b,c,k]
//                                                                       elemwiseProduct_has_vjp (ch. 8)
//
// No decisions: it is polynomial, so the identity check covers it for every input. ds sums over k
// in k order from T(0) (the fast kernels use the same order in float).
//
// Written once over the scalar type: the reference the float kernels (prims/mul/kernel.hpp) are
// tested against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct MulShape {
  size_t B = 1, C = 1, inner = 1;  // a [B, C, inner], s [B, C]
  size_t count() const { return B * C * inner; }
  size_t scales() const { return B * C; }
};

// y[b,c,k] = a[b,c,k] s[b,c].
template <class T>
void mul_forward(const MulShape& m, const T* a, const T* s, T* y) {
  for (size_t r = 0; r < m.scales(); ++r)
    for (size_t k = 0; k < m.inner; ++k) y[r * m.inner + k] = a[r * m.inner + k] * s[r];
}

// da = s (.) dy (broadcast over k), ds[b,c] = sum_k a[b,c,k] dy[b,c,k] (k order, from T(0)); overwrites.
// Either output may be nullptr.
template <class T>
void mul_backward(const MulShape& m, const T* a, const T* s, const T* dy, T* da, T* ds) {
  for (size_t r = 0; r < m.scales(); ++r) {
    if (ds) {
      T acc = T(0);
      for (size_t k = 0; k < m.inner; ++k) acc += a[r * m.inner + k] * dy[r * m.inner + k];
      ds[r] = acc;
    }
    if (da)
      for (size_t k = 0; k < m.inner; ++k) da[r * m.inner + k] = s[r] * dy[r * m.inner + k];
  }
}

// The record form.

// Inputs {a [B*C*inner], s [B*C]}, output a (.) s broadcast over inner.
struct MulOp {
  MulShape s;
  std::vector<std::string> in_names() const { return {"a", "s"}; }
  std::vector<size_t> in_sizes() const { return {s.count(), s.scales()}; }
  size_t out_size() const { return s.count(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.count());
    mul_forward(s, in[0].data(), in[1].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.scales())};
    mul_backward(s, in[0].data(), in[1].data(), dy.data(), g[0].data(), g[1].data());
    return g;
  }
};

}  // namespace veridl::ops
