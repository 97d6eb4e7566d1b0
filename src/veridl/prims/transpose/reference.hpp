// The reindex of the matrix kit (book ch. 2's reindex rule, ch. 10's head split and merge): per example, a value
// seen as [A, B, C] becomes [B, A, C] (the first two axes swapped, runs of C contiguous elements moved whole):
//   transpose   [A, B] -> [B, A]                      (C = 1)
//   splitHeads  [T, H d] = [T, H, d] -> [H, T, d]     (A = T, B = H, C = d)
//   mergeHeads  [H, T, d] -> [T, H, d] = [T, H d]     (A = H, B = T, C = d)
//   y[n, b, a, c] = x[n, a, b, c];   VJP  dx = the same swap of dy with A and B exchanged
//                                            transpose_has_vjp, splitHeads_has_vjp, mergeHeads_has_vjp
// A permutation: linear, no atoms, no decisions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct SwapShape {
  size_t N = 1, A = 1, B = 1, C = 1;
  size_t count() const { return N * A * B * C; }
  SwapShape swapped() const { return {N, B, A, C}; }
  std::string str() const {
    return "N=" + std::to_string(N) + " [" + std::to_string(A) + "," + std::to_string(B) + "," + std::to_string(C) + "]";
  }
};

template <class T>
void swap_axes(const SwapShape& s, const T* x, T* y) {
  const size_t ABC = s.A * s.B * s.C;
  for (size_t n = 0; n < s.N; ++n)
    for (size_t a = 0; a < s.A; ++a)
      for (size_t b = 0; b < s.B; ++b)
        for (size_t c = 0; c < s.C; ++c) y[n * ABC + (b * s.A + a) * s.C + c] = x[n * ABC + (a * s.B + b) * s.C + c];
}

// The record form: input x, output y.
struct SwapOp {
  SwapShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.count()}; }
  size_t out_size() const { return s.count(); }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.count());
    swap_axes(s, in[0].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.count())};
    swap_axes(s.swapped(), dy.data(), g[0].data());
    return g;
  }
};

// Broken backwards (veridl verify --mutants; Contracts.EveryMutantIsRejected).
struct SwapMutantOp : SwapOp {
  std::string kind;
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = SwapOp::backward(in, c, dy);
    if (kind == "dx_not_swapped") {
      g[0] = dy;  // the gradient passed through in the output's layout
    } else if (kind == "dx_forward_swap") {
      swap_axes(s, dy.data(), g[0].data());  // the forward's (A, B) instead of the inverse (B, A)
    } else if (kind == "dx_scale_1.0001") {
      for (auto& v : g[0]) v *= T(1.0001);
    } else {
      throw std::invalid_argument("unknown axis-swap mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
