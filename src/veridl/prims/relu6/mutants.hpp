// Deliberately broken backwards of ReLU6 (book ch. 7): the evidence that the checker bites on both kinks.
// Each mutant is the real op with one realistic bug in its backward (forward untouched). `veridl verify
// --mutants` runs them; tests/test_pools_relu6.cpp requires every one to be rejected.
//
// Not a mutant: a backward (or forward) that puts x = 6 on the linear piece (mask 0 < x <= 6), or x = 0
// (0 <= x < 6). That changes the convention at a kink, not the backward's consistency with the forward's
// decisions, so the identity check cannot see it (verification.md 4.3); the convention is pinned by a unit
// test instead (tests/test_pools_relu6.cpp).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/relu6/reference.hpp"

namespace veridl::ops {

struct Relu6MutantOp : Relu6Op {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = Relu6Op::backward(in, c, dy);
    const std::vector<uint8_t> mask = mask_of(c);
    const size_t n = s.n;
    constexpr auto kDead = static_cast<uint32_t>(Relu6Region::Dead);
    constexpr auto kSaturated = static_cast<uint32_t>(Relu6Region::Saturated);
    for (size_t i = 0; i < n; ++i) {
      if (kind == "upper_kink_ignored") g[0][i] = c.dec[i] != kDead ? dy[i] : T(0);        // ReLU's backward
      else if (kind == "lower_kink_ignored") g[0][i] = c.dec[i] != kSaturated ? dy[i] : T(0);  // min(x, 6)'s backward
      else if (kind == "upper_mask_inverted") g[0][i] = c.dec[i] == kSaturated ? dy[i] : T(0);  // x > 0: "x >= 6" for "x < 6"
      else if (kind == "mask_off_by_one") g[0][i] = mask[(i + 1) % n] ? dy[i] : T(0);     // mask read one element late
      else if (kind == "scale_1.0001") g[0][i] *= T(1.0001);
      else throw std::invalid_argument("unknown relu6 mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
