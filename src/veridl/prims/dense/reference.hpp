// dense (book ch. 2): y = x W + b, x [B, I], W [I, O] (fanIn x fanOut, as the original), b [O].
//
//   forward        y[b,o] = sum_i x[b,i] W[i,o] + b[o]
//   input grad     dx[b,i] = sum_o W[i,o] dy[b,o]          dense_has_vjp (W . dy)
//   weight grad    dW[i,o] = sum_b x[b,i] dy[b,o]          dense_weight_grad_correct (x (x) dy)
//   bias grad      db[o]   = sum_b dy[b,o]                 dense_bias_grad_correct
//
// Written once over the scalar type: this is the reference the float kernels (prims/dense/kernel.hpp) are
// tested against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct DenseShape {
  size_t B = 1, I = 1, O = 1;
};

// The loops below fork OpenMP threads at large shapes (the exact backend checks whole networks at batch 128).
// Each output element is computed by one thread in the serial order, so results do not depend on threads.

template <class T>
void dense_forward(const DenseShape& s, const T* x, const T* W, const T* bias, T* y) {
#pragma omp parallel for collapse(2) schedule(static) if (s.B * s.I * s.O >= (size_t{1} << 18))
  for (size_t b = 0; b < s.B; ++b)
    for (size_t o = 0; o < s.O; ++o) {
      T acc = bias[o];
      for (size_t i = 0; i < s.I; ++i) acc += x[b * s.I + i] * W[i * s.O + o];
      y[b * s.O + o] = acc;
    }
}

template <class T>
void dense_backward_input(const DenseShape& s, const T* W, const T* dy, T* dx) {
#pragma omp parallel for collapse(2) schedule(static) if (s.B * s.I * s.O >= (size_t{1} << 18))
  for (size_t b = 0; b < s.B; ++b)
    for (size_t i = 0; i < s.I; ++i) {
      T acc = T(0);
      for (size_t o = 0; o < s.O; ++o) acc += W[i * s.O + o] * dy[b * s.O + o];
      dx[b * s.I + i] = acc;
    }
}

template <class T>
void dense_backward_weight(const DenseShape& s, const T* x, const T* dy, T* dW) {
#pragma omp parallel for collapse(2) schedule(static) if (s.B * s.I * s.O >= (size_t{1} << 18))
  for (size_t i = 0; i < s.I; ++i)
    for (size_t o = 0; o < s.O; ++o) {
      T acc = T(0);
      for (size_t b = 0; b < s.B; ++b) acc += x[b * s.I + i] * dy[b * s.O + o];
      dW[i * s.O + o] = acc;
    }
}

template <class T>
void dense_backward_bias(const DenseShape& s, const T* dy, T* db) {
  for (size_t o = 0; o < s.O; ++o) {
    T acc = T(0);
    for (size_t b = 0; b < s.B; ++b) acc += dy[b * s.O + o];
    db[o] = acc;
  }
}

// The record form: inputs {x, W, b}, output y.
struct DenseOp {
  DenseShape s;
  std::vector<std::string> in_names() const { return {"x", "W", "b"}; }
  std::vector<size_t> in_sizes() const { return {s.B * s.I, s.I * s.O, s.O}; }
  size_t out_size() const { return s.B * s.O; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(out_size());
    dense_forward(s, in[0].data(), in[1].data(), in[2].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.B * s.I), Vec<T>(s.I * s.O), Vec<T>(s.O)};
    dense_backward_input(s, in[1].data(), dy.data(), g[0].data());
    dense_backward_weight(s, in[0].data(), dy.data(), g[1].data());
    dense_backward_bias(s, dy.data(), g[2].data());
    return g;
  }
};

}  // namespace veridl::ops
