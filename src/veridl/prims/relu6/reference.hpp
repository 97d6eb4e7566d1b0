// ReLU6 (book ch. 7, MobileNetV2): y_i = min(max(x_i, 0), 6), elementwise over a flat tensor of n elements.
//
//   forward   region_i = Dead       if not D.gt(x_i, 0)          (x <= 0: the lower kink belongs to Dead)
//                        Linear     if D.gt(-x_i, -6)            (0 < x < 6, i.e. 6 > x strictly)
//                        Saturated  otherwise                     (x >= 6: the upper kink belongs to Saturated)
//             y_i = Dead: 0,  Linear: x_i,  Saturated: 6
//             mask_i = (region_i == Linear)
//   VJP       dx_i = mask_i ? dy_i : 0                                       relu6_has_vjp_at
//
// The convention at both kinks (the book's relu6_has_vjp_at): the gradient passes iff 0 < x < 6 strictly,
// so dx = 0 at x = 0 and at x = 6. Both decisions are Decisions::gt (strict), through the tape: the upper
// one asks -x > -6 (the field has no order, and the tape knows only "greater than"). The second decision is
// taken only when the first one is "on" (a real run never has x <= 0 and x >= 6), so a random tape draws
// Dead, Linear and Saturated with probabilities 1/2, 1/4, 1/4.
//
// The backward reads the mask the forward wrote and never re-decides. The identity check proves the
// backward for the region pattern the tape selects; the convention at each kink is invisible to it and
// has its own unit test (tests/test_pools_relu6.cpp).
//
// Written once over the scalar type: the reference the float kernels (prims/relu6/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct Relu6Shape {
  size_t n = 1;  // number of elements (any layout: ReLU6 is elementwise)
};

// Where an element sits relative to the two kinks (the record keeps it in Ctx::dec).
enum class Relu6Region : uint8_t { Dead = 0, Linear = 1, Saturated = 2 };

// The two decisions of one element, through the tape: x > 0, then (only if so) 6 > x.
template <class T>
Relu6Region relu6_region(const T& x, Decisions& D) {
  if (!D.gt(x, 0.0)) return Relu6Region::Dead;
  return D.gt(-x, -6.0) ? Relu6Region::Linear : Relu6Region::Saturated;
}

template <class T>
T relu6_value(const T& x, Relu6Region r) {
  switch (r) {
    case Relu6Region::Dead: return T(0);
    case Relu6Region::Linear: return x;
    case Relu6Region::Saturated: return T(6);
  }
  return T(0);
}

// Writes y[n] and mask[n] (1 where 0 < x < 6, else 0).
template <class T>
void relu6_forward(const Relu6Shape& s, const T* x, T* y, uint8_t* mask, Decisions& D) {
  for (size_t i = 0; i < s.n; ++i) {
    const Relu6Region r = relu6_region(x[i], D);
    mask[i] = r == Relu6Region::Linear ? 1 : 0;
    y[i] = relu6_value(x[i], r);
  }
}

// dx = mask ? dy : 0 (overwrites dx).
template <class T>
void relu6_backward(const Relu6Shape& s, const uint8_t* mask, const T* dy, T* dx) {
  for (size_t i = 0; i < s.n; ++i) dx[i] = mask[i] ? dy[i] : T(0);
}

// The record form: input {x}, output y; the region of every element is kept in Ctx::dec (0, 1, 2).
struct Relu6Op {
  Relu6Shape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.n}; }
  size_t out_size() const { return s.n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.n);
    c.dec.resize(s.n);
    for (size_t i = 0; i < s.n; ++i) {
      const Relu6Region r = relu6_region(in[0][i], D);
      c.dec[i] = static_cast<uint32_t>(r);
      c.out[i] = relu6_value(in[0][i], r);
    }
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    const std::vector<uint8_t> mask = mask_of(c);
    Ins<T> g{Vec<T>(s.n)};
    relu6_backward(s, mask.data(), dy.data(), g[0].data());
    return g;
  }
  template <class T>
  static std::vector<uint8_t> mask_of(const Ctx<T>& c) {
    std::vector<uint8_t> m(c.dec.size());
    for (size_t i = 0; i < m.size(); ++i) m[i] = c.dec[i] == static_cast<uint32_t>(Relu6Region::Linear) ? 1 : 0;
    return m;
  }
};

}  // namespace veridl::ops
