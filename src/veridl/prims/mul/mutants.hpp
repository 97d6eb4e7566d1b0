// Deliberately broken backwards of the elementwise product (book ch. 8): the evidence that the checker
// bites. Each mutant is the real op with one realistic bug in its backward (forward untouched). `veridl
// verify --mutants` runs them; tests/test_elementwise.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/mul/reference.hpp"

namespace veridl::ops {

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

}  // namespace veridl::ops
