// Deliberately broken backwards of patchTokens (book ch. 10): each is the real op with one realistic bug in its
// backward. `veridl verify --mutants` runs them; tests/test_attention.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/patchTokens/reference.hpp"

namespace veridl::ops {

struct PatchTokensMutantOp : PatchTokensOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = PatchTokensOp::backward(in, c, dy);
    const size_t D = s.D, P = s.P, TD = (P + 1) * D;
    if (kind == "dx_cls_row_not_skipped") {  // dx[c, p] = dy[p, c]: the CLS row read as patch 0
      for (size_t n = 0; n < s.N; ++n)
        for (size_t ch = 0; ch < D; ++ch)
          for (size_t p = 0; p < P; ++p) g[0][n * D * P + ch * P + p] = dy[n * TD + p * D + ch];
    } else if (kind == "dx_not_transposed") {  // dx read in token order: dx[e] = dy[D + e] (no transpose)
      for (size_t n = 0; n < s.N; ++n)
        for (size_t e = 0; e < D * P; ++e) g[0][n * D * P + e] = dy[n * TD + D + e];
    } else if (kind == "dcls_first_example_only") {  // the batch sum of dcls forgotten
      for (size_t ch = 0; ch < D; ++ch) g[1][ch] = dy[ch];
    } else if (kind == "dpos_cls_row_zero") {  // the position embedding's CLS row given no gradient
      for (size_t ch = 0; ch < D; ++ch) g[2][ch] = T(0);
    } else {
      throw std::invalid_argument("unknown patchTokens mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
