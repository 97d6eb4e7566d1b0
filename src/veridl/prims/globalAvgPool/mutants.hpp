// Deliberately broken global-average-pool backwards (book ch. 6): the evidence that the checker bites.
// Each mutant is the real op with one realistic bug in its backward (forward untouched); the sweep of
// prims/globalAvgPool/contracts.cpp must reject every one of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "veridl/prims/globalAvgPool/reference.hpp"

namespace veridl::ops {

struct GlobalAvgPoolMutantOp : GlobalAvgPoolOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = GlobalAvgPoolOp::backward(in, c, dy);
    Vec<T>& dx = g[0];
    const size_t K = s.plane();
    const T inv = T(1) / T(static_cast<int64_t>(K));
    for (size_t b = 0; b < s.B; ++b)
      for (size_t ch = 0; ch < s.C; ++ch) {
        const size_t r = b * s.C + ch;
        for (size_t k = 0; k < K; ++k) {
          T& d = dx[r * K + k];
          if (kind == "divisor_H") d = dy[r] / T(static_cast<int64_t>(s.H));  // H instead of H W
          else if (kind == "divisor_dropped") d = dy[r];                      // the mean's 1/(H W) forgotten
          else if (kind == "grad_to_first_cell") d = k == 0 ? dy[r] * inv : T(0);  // no broadcast over the plane
          else if (kind == "wrong_channel") d = dy[b * s.C + (ch + 1) % s.C] * inv;  // dy of channel c+1 (mod C)
          else throw std::invalid_argument("unknown globalavgpool mutant '" + kind + "'");
        }
      }
    return g;
  }
};

}  // namespace veridl::ops
