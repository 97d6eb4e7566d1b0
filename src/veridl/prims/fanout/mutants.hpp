// Deliberately broken backwards of the fan-out (book ch. 6): the evidence that the checker bites. Each
// mutant is the real op with one realistic bug in its backward (forward untouched). `veridl verify
// --mutants` runs them; tests/test_elementwise.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/fanout/reference.hpp"

namespace veridl::ops {

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
