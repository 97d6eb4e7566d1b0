// Deliberately broken max-pool backwards (book ch. 4): the evidence that the checker bites on the index
// logic of pooling. Each mutant is the real op with one realistic bug in its backward (forward untouched);
// the sweep of prims/maxPool/contracts.cpp must reject every one of them.
//
// Not a mutant: max-pool sending a tied window's gradient to the last maximum instead of the first.
// The backward follows whatever cell the forward chose, so that is a change of convention, invisible
// to the adjoint identity; it is pinned by a convention unit test (tests/test_conv.cpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "veridl/prims/maxPool/reference.hpp"

namespace veridl::ops {

struct MaxPoolMutantOp : MaxPoolOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& ctx, const Vec<T>& dy) const {
    Ins<T> g = MaxPoolOp::backward(in, ctx, dy);
    Vec<T>& dx = g[0];
    const size_t OH = s.OH(), OW = s.OW();
    // Route dy[o] to window cell (kh, kw) of output o when it is in range; drop it otherwise.
    auto route = [&](size_t o, ptrdiff_t kh, ptrdiff_t kw, bool accumulate) {
      const size_t j = o % OW, i = (o / OW) % OH, bc = o / (OW * OH);
      const ptrdiff_t h = static_cast<ptrdiff_t>(i * s.stride) - static_cast<ptrdiff_t>(s.pad_top) + kh;
      const ptrdiff_t w = static_cast<ptrdiff_t>(j * s.stride) - static_cast<ptrdiff_t>(s.pad_left) + kw;
      if (h < 0 || h >= static_cast<ptrdiff_t>(s.H) || w < 0 || w >= static_cast<ptrdiff_t>(s.W)) return;
      T& d = dx[(bc * s.H + static_cast<size_t>(h)) * s.W + static_cast<size_t>(w)];
      d = accumulate ? d + dy[o] : dy[o];
    };
    const auto KW = static_cast<ptrdiff_t>(s.KW);
    if (kind == "dy_scale_1.0001") {
      for (auto& e : dx) e *= T(1.0001);
      return g;
    }
    for (auto& e : dx) e = T(0);
    for (size_t o = 0; o < dy.size(); ++o) {
      const auto k = static_cast<ptrdiff_t>(ctx.dec[o]);
      if (kind == "grad_to_first_cell") {  // the window's first in-range cell, whatever the arg-max
        const ptrdiff_t i = static_cast<ptrdiff_t>((o / OW) % OH * s.stride), j = static_cast<ptrdiff_t>(o % OW * s.stride);
        const ptrdiff_t kh = std::max<ptrdiff_t>(0, static_cast<ptrdiff_t>(s.pad_top) - i);
        const ptrdiff_t kw = std::max<ptrdiff_t>(0, static_cast<ptrdiff_t>(s.pad_left) - j);
        route(o, kh, kw, true);
      } else if (kind == "overlap_overwrites") {  // dx[cell] = dy instead of +=
        route(o, k / KW, k % KW, false);
      } else if (kind == "origin_off_by_one") {  // window origin one row too low
        route(o, k / KW + 1, k % KW, true);
      } else if (kind == "index_decoded_transposed") {  // in-window index decoded column-major
        route(o, k % KW, k / KW, true);
      } else {
        throw std::invalid_argument("unknown maxpool mutant '" + kind + "'");
      }
    }
    return g;
  }
};

}  // namespace veridl::ops
