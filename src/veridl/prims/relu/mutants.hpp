// Deliberately broken backwards of ReLU (book ch. 3): the evidence that the checker bites. Each mutant
// is the real op with one realistic bug in its backward (forward untouched). `veridl verify --mutants`
// runs them; tests/test_relu_bn.cpp requires every one to be rejected.
//
// Not a mutant: a ReLU forward deciding x >= 0 (ReLU'(0) = 1). That changes the convention, not the
// backward's consistency with the forward, so the identity check cannot see it (verification.md 4.3);
// it is pinned by a convention unit test instead.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/relu/reference.hpp"

namespace veridl::ops {

struct ReluMutantOp : ReluOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = ReluOp::backward(in, c, dy);
    const std::vector<uint8_t> mask = mask_of(c);
    const size_t n = s.n;
    for (size_t i = 0; i < n; ++i) {
      if (kind == "mask_ignored") g[0][i] = dy[i];                             // dx = dy
      else if (kind == "mask_inverted") g[0][i] = mask[i] ? T(0) : dy[i];      // gradient through the dead units
      else if (kind == "scale_1.0001") g[0][i] *= T(1.0001);
      else if (kind == "mask_off_by_one") g[0][i] = mask[(i + 1) % n] ? dy[i] : T(0);  // mask read one element late
      else throw std::invalid_argument("unknown relu mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
