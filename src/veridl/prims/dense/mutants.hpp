// Deliberately broken backwards of dense (book ch. 2): the evidence that the checker bites. Each mutant is
// the real op with one realistic bug in its backward (forward untouched). `veridl verify --mutants` runs
// them all and prints the kill rate; the tests require every one of them to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/dense/reference.hpp"

namespace veridl::ops {

struct DenseMutantOp : DenseOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = DenseOp::backward(in, c, dy);
    const Vec<T>& x = in[0];
    const Vec<T>& W = in[1];
    const size_t B = s.B, I = s.I, O = s.O;
    const T k10001 = T(1.0001);
    if (kind == "dx_transpose") {
      for (size_t b = 0; b < B; ++b)
        for (size_t i = 0; i < I; ++i) {
          T acc = T(0);
          for (size_t o = 0; o < O; ++o) acc += W[o * I + i] * dy[b * O + o];
          g[0][b * I + i] = acc;
        }
    } else if (kind == "dx_sign") {
      for (auto& e : g[0]) e = -e;
    } else if (kind == "dx_scale_1.0001") {
      for (auto& e : g[0]) e *= k10001;
    } else if (kind == "dx_drop_last_output") {
      for (size_t b = 0; b < B; ++b)
        for (size_t i = 0; i < I; ++i) g[0][b * I + i] -= W[i * O + O - 1] * dy[b * O + O - 1];
    } else if (kind == "dW_sign") {
      for (auto& e : g[1]) e = -e;
    } else if (kind == "dW_scale_1.0001") {
      for (auto& e : g[1]) e *= k10001;
    } else if (kind == "dW_first_row_only") {
      for (size_t i = 0; i < I; ++i)
        for (size_t o = 0; o < O; ++o) g[1][i * O + o] = x[i] * dy[o];
    } else if (kind == "dW_wrong_row") {
      for (size_t i = 0; i < I; ++i)
        for (size_t o = 0; o < O; ++o) {
          T acc = T(0);
          for (size_t b = 0; b < B; ++b) acc += x[((b + 1) % B) * I + i] * dy[b * O + o];
          g[1][i * O + o] = acc;
        }
    } else if (kind == "db_mean") {
      for (auto& e : g[2]) e = e / T(static_cast<int64_t>(B));
    } else if (kind == "db_first_row_only") {
      for (size_t o = 0; o < O; ++o) g[2][o] = dy[o];
    } else if (kind == "db_scale_1.0001") {
      for (auto& e : g[2]) e *= k10001;
    } else if (kind == "db_sign") {
      for (auto& e : g[2]) e = -e;
    } else {
      throw std::invalid_argument("unknown dense mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
