// ReLU (book ch. 3): y_i = x_i if x_i > 0 else 0, elementwise over a flat tensor of n elements.
//
//   forward   mask_i = D.gt(x_i)  (strict: the decision goes through the tape, so ReLU'(0) = 0 is the
//                                  convention of Decisions, in one place)
//             y_i = mask_i ? x_i : 0
//   VJP       dx_i = mask_i ? dy_i : 0                                   relu_has_vjp_correct
//
// The backward reads the mask the forward wrote and never re-decides: over the prime field the values
// carry no order, the tape decides. The identity check proves the backward for the branch pattern the
// tape selects; the convention at 0 (strict >) is invisible to it and has its own unit test.
//
// Written once over the scalar type: the reference the float kernels (prims/relu/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct ReluShape {
  size_t n = 1;  // number of elements (any layout: ReLU is elementwise)
};

// Writes y[n] and mask[n] (1 where the input was strictly positive, else 0); mask may be nullptr (an evaluation
// forward keeps none), and y may be x (in place: element i is read before it is written).
template <class T>
void relu_forward(const ReluShape& s, const T* x, T* y, uint8_t* mask, Decisions& D) {
  for (size_t i = 0; i < s.n; ++i) {
    const bool on = D.gt(x[i]);
    if (mask) mask[i] = on ? 1 : 0;
    y[i] = on ? x[i] : T(0);
  }
}

// dx = mask ? dy : 0 (overwrites dx).
template <class T>
void relu_backward(const ReluShape& s, const uint8_t* mask, const T* dy, T* dx) {
  for (size_t i = 0; i < s.n; ++i) dx[i] = mask[i] ? dy[i] : T(0);
}

// The record form: input {x}, output y; the mask is kept in Ctx::dec (one entry per element).
struct ReluOp {
  ReluShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.n}; }
  size_t out_size() const { return s.n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.n);
    std::vector<uint8_t> mask(s.n);
    relu_forward(s, in[0].data(), c.out.data(), mask.data(), D);
    c.dec.assign(mask.begin(), mask.end());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    const std::vector<uint8_t> mask = mask_of(c);
    Ins<T> g{Vec<T>(s.n)};
    relu_backward(s, mask.data(), dy.data(), g[0].data());
    return g;
  }
  template <class T>
  static std::vector<uint8_t> mask_of(const Ctx<T>& c) {
    return std::vector<uint8_t>(c.dec.begin(), c.dec.end());
  }
};

}  // namespace veridl::ops
