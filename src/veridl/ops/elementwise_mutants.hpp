// Deliberately broken backwards of the fan-in, the elementwise product and the fan-out (book ch. 6 and 8):
// the evidence that the checker bites. Each mutant is the real op with one realistic bug in its backward
// (forward untouched). `veridl verify --mutants` runs them; tests/test_elementwise.cpp requires every one
// to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/ops/elementwise.hpp"

namespace veridl::ops {

struct AddMutantOp : AddOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = AddOp::backward(in, c, dy);
    const size_t n = s.n;
    for (size_t i = 0; i < n; ++i) {
      if (kind == "db_dropped") g[1][i] = T(0);  // a residual's skip gradient lost
      else if (kind == "da_scaled_1.0001") g[0][i] *= T(1.0001);
      else if (kind == "db_is_da_shifted") g[1][i] = dy[(i + 1) % n];  // off-by-one index
      else throw std::invalid_argument("unknown add mutant '" + kind + "'");
    }
    return g;
  }
};

struct MulMutantOp : MulOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = MulOp::backward(in, c, dy);
    const Vec<T>& a = in[0];
    const size_t K = s.inner;
    for (size_t b = 0; b < s.B; ++b)
      for (size_t ch = 0; ch < s.C; ++ch) {
        const size_t r = b * s.C + ch;
        if (kind == "ds_not_summed") {
          g[1][r] = a[r * K] * dy[r * K];  // only k = 0: the broadcast's sum forgotten
        } else if (kind == "da_uses_a") {
          for (size_t k = 0; k < K; ++k) g[0][r * K + k] = a[r * K + k] * dy[r * K + k];  // a instead of s
        } else if (kind == "ds_scaled_1.0001") {
          g[1][r] *= T(1.0001);
        } else if (kind == "ds_wrong_channel") {
          const size_t r2 = b * s.C + (ch + 1) % s.C;  // sums channel c+1 (mod C)
          T acc = T(0);
          for (size_t k = 0; k < K; ++k) acc += a[r2 * K + k] * dy[r2 * K + k];
          g[1][r] = acc;
        } else {
          throw std::invalid_argument("unknown mul mutant '" + kind + "'");
        }
      }
    return g;
  }
};

struct FanoutMutantOp : FanoutOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = FanoutOp::backward(in, c, dy);
    const size_t n = s.n;
    for (size_t i = 0; i < n; ++i) {
      if (kind == "write_not_accumulate") g[0][i] = dy[n + i];  // the second gradient overwrote the first
      else if (kind == "first_only") g[0][i] = dy[i];           // the second use's gradient never arrives
      else if (kind == "doubled_first") g[0][i] = dy[i] + dy[i];  // the first gradient added twice
      else throw std::invalid_argument("unknown fanout mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
