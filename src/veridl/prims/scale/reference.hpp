// scale (the matrix kit's scalar scale, book ch. 10: attention's 1/sqrt(d) as a layer): y = c x, field "by" = c.
//   VJP  dx = c dy                                                    scale_has_vjp
// c enters as T(c), the exact dyadic embedding of the double (1/sqrt(d) for d = 4, 16, 64: 0.5, 0.25, 0.125).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

template <class T>
void scale_forward(size_t n, double c, const T* x, T* y) {
  const T tc = T(c);
  for (size_t i = 0; i < n; ++i) y[i] = tc * x[i];
}

// The record form: input x, output k x. Also the exact x -> k x the activations' sweeps put before a piecewise
// function, so that tie-heavy samples ({-2..2}) land exactly on its kinks (prims/activation, prims/relu6).
struct ScaleOp {
  size_t n = 1;
  double k = 1.0;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {n}; }
  size_t out_size() const { return n; }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> ctx;
    ctx.out.resize(n);
    scale_forward(n, k, in[0].data(), ctx.out.data());
    return ctx;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(n)};
    scale_forward(n, k, dy.data(), g[0].data());
    return g;
  }
};

// Broken backwards (veridl verify --mutants; Contracts.EveryMutantIsRejected).
struct ScaleMutantOp : ScaleOp {
  std::string kind;
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(n)};
    for (size_t i = 0; i < n; ++i) {
      if (kind == "dx_scale_forgotten") g[0][i] = dy[i];
      else if (kind == "dx_inverse") g[0][i] = dy[i] / T(k);
      else if (kind == "dx_squared") g[0][i] = T(k) * T(k) * dy[i];
      else throw std::invalid_argument("unknown scale mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
