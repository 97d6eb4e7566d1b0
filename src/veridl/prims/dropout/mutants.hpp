// Deliberately broken backwards of dropout and dropPath: the evidence that the checker bites. Each mutant is
// the real op with one realistic bug in its backward (forward untouched). `veridl verify --mutants` runs them;
// tests/test_dropout.cpp requires every one to be rejected.
//
// Not a mutant: decisions drawn with the wrong probability, or the same mask every step. Those change which
// branch pattern the forward takes, not the backward's consistency with it, so the identity check cannot see
// them; tests/test_dropout.cpp pins the keep rate, the per-step and per-node independence and eval's identity.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/dropout/reference.hpp"

namespace veridl::ops {

struct DropMutantOp : DropOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = DropOp::backward(in, c, dy);
    const std::vector<uint8_t> keep = keep_of(c);
    const size_t per = s.per_decision(), nd = s.decisions();
    const T scale = T(1) / T(1.0 - rate);
    for (size_t i = 0; i < s.count(); ++i) {
      const bool k = keep[i / per];
      if (kind == "scale_missing") g[0][i] = k ? dy[i] : T(0);  // the 1/q of the forward forgotten
      else if (kind == "keep_ignored") g[0][i] = dy[i] * scale;  // every unit treated as kept
      else if (kind == "scale_uses_rate") g[0][i] = k ? dy[i] / T(rate) : T(0);  // 1/rate instead of 1/(1 - rate)
      else if (kind == "scale_1.0001") g[0][i] = k ? dy[i] * scale * T(1.0001) : T(0);
      else if (kind == "keep_off_by_one") g[0][i] = keep[(i / per + 1) % nd] ? dy[i] * scale : T(0);  // one late
      else if (kind == "keep_per_element") g[0][i] = keep[i % nd] ? dy[i] * scale : T(0);  // as if per element
      else throw std::invalid_argument("unknown dropout mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
