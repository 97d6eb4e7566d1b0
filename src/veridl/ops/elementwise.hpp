// Elementwise fan-in, product and fan-out (book ch. 6 and 8): the joins and splits of a graph.
//
//   add       y_i = a_i + b_i                         (n elements)
//     VJP     da_i = dy_i,  db_i = dy_i                                          biPath_has_vjp (ch. 6)
//   mul       y[b,c,k] = a[b,c,k] s[b,c]              (a: B*C*inner, s: B*C; inner = 1 is a plain
//                                                      elementwise product, inner = H*W the channel
//                                                      broadcast of squeeze-excitation)
//     VJP     da[b,c,k] = s[b,c] dy[b,c,k],  ds[b,c] = sum_k a[b,c,k] dy[b,c,k]
//                                                                       elemwiseProduct_has_vjp (ch. 8)
//   fanout    x -> (x, x), one record whose output is the two copies concatenated (2n elements)
//     VJP     dx_i = dy_i + dy_{n+i}   (the two uses' gradients accumulate)       fanout_has_vjp (ch. 6)
//
// No decisions: these are polynomial, so the identity check covers them for every input. ds sums over k
// in k order from T(0) (the fast kernels use the same order in float).
//
// Written once over the scalar type: the reference the float kernels (kernels/elementwise.hpp) are
// tested against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct AddShape {
  size_t n = 1;  // number of elements of each operand and of the sum
};

struct MulShape {
  size_t B = 1, C = 1, inner = 1;  // a [B, C, inner], s [B, C]
  size_t count() const { return B * C * inner; }
  size_t scales() const { return B * C; }
};

struct FanoutShape {
  size_t n = 1;  // elements of x; the output holds 2n (the two copies)
};

// y = a + b.
template <class T>
void add_forward(const AddShape& s, const T* a, const T* b, T* y) {
  for (size_t i = 0; i < s.n; ++i) y[i] = a[i] + b[i];
}

// da = dy, db = dy (overwrites); either output may be nullptr (not wanted, not touched).
template <class T>
void add_backward(const AddShape& s, const T* dy, T* da, T* db) {
  if (da)
    for (size_t i = 0; i < s.n; ++i) da[i] = dy[i];
  if (db)
    for (size_t i = 0; i < s.n; ++i) db[i] = dy[i];
}

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

// y = (x, x): y[0:n] = x, y[n:2n] = x.
template <class T>
void fanout_forward(const FanoutShape& s, const T* x, T* y) {
  for (size_t i = 0; i < s.n; ++i) {
    y[i] = x[i];
    y[s.n + i] = x[i];
  }
}

// dx = dy[0:n] + dy[n:2n] (overwrites).
template <class T>
void fanout_backward(const FanoutShape& s, const T* dy, T* dx) {
  for (size_t i = 0; i < s.n; ++i) dx[i] = dy[i] + dy[s.n + i];
}

// The record forms.

// Inputs {a, b}, output a + b.
struct AddOp {
  AddShape s;
  std::vector<std::string> in_names() const { return {"a", "b"}; }
  std::vector<size_t> in_sizes() const { return {s.n, s.n}; }
  size_t out_size() const { return s.n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.n);
    add_forward(s, in[0].data(), in[1].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.n), Vec<T>(s.n)};
    add_backward(s, dy.data(), g[0].data(), g[1].data());
    return g;
  }
};

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

// Input {x}, output (x, x) concatenated (2n).
struct FanoutOp {
  FanoutShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.n}; }
  size_t out_size() const { return 2 * s.n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(2 * s.n);
    fanout_forward(s, in[0].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.n)};
    fanout_backward(s, dy.data(), g[0].data());
    return g;
  }
};

}  // namespace veridl::ops
