// Deliberately broken backwards of the fan-in (book ch. 6): the evidence that the checker bites. Each
// mutant is the real op with one realistic bug in its backward (forward untouched). `veridl verify
// --mutants` runs them; tests/test_elementwise.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/add/reference.hpp"

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

}  // namespace veridl::ops
