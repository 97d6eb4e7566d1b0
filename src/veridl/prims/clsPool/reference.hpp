// clsPool (book ch. 10, ViT's "classifier(CLS row)"): tokens [T, D] -> the CLS row [D]:
//   y[c] = x[0, c]        VJP  dx[0, c] = dy[c],  dx[t, c] = 0 for t > 0        clsPool_has_vjp_correct
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct ClsPoolShape {
  size_t N = 1, T = 1, D = 1;
  std::string str() const { return "N=" + std::to_string(N) + " T=" + std::to_string(T) + " D=" + std::to_string(D); }
};

template <class T>
void cls_pool_forward(const ClsPoolShape& s, const T* x, T* y) {
  for (size_t n = 0; n < s.N; ++n)
    for (size_t c = 0; c < s.D; ++c) y[n * s.D + c] = x[n * s.T * s.D + c];
}

template <class T>
void cls_pool_backward(const ClsPoolShape& s, const T* dy, T* dx) {
  for (size_t n = 0; n < s.N; ++n)
    for (size_t e = 0; e < s.T * s.D; ++e) dx[n * s.T * s.D + e] = e < s.D ? dy[n * s.D + e] : T(0);
}

struct ClsPoolOp {
  ClsPoolShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.N * s.T * s.D}; }
  size_t out_size() const { return s.N * s.D; }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(out_size());
    cls_pool_forward(s, in[0].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.N * s.T * s.D)};
    cls_pool_backward(s, dy.data(), g[0].data());
    return g;
  }
};

// Broken backwards: the evidence that the checker bites (tests/test_attention.cpp, veridl verify --mutants).
struct ClsPoolMutantOp : ClsPoolOp {
  std::string kind;
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = ClsPoolOp::backward(in, c, dy);
    const size_t TD = s.T * s.D;
    for (size_t n = 0; n < s.N; ++n)
      for (size_t e = 0; e < TD; ++e) {
        T& v = g[0][n * TD + e];
        const T d = dy[n * s.D + e % s.D];
        if (kind == "dx_last_row") v = e >= TD - s.D ? d : T(0);  // the gradient sent to the last token
        else if (kind == "dx_every_row") v = d;                    // to every token (a mean pool's pattern, unscaled)
        else if (kind == "dx_first_example") v = e < s.D ? dy[e] : T(0);  // every example given example 0's dy
        else throw std::invalid_argument("unknown clsPool mutant '" + kind + "'");
      }
    return g;
  }
};

}  // namespace veridl::ops
