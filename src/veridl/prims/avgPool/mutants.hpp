// Deliberately broken avg-pool backwards (book ch. 6): the evidence that the checker bites on the window
// arithmetic of pooling. Each mutant is the real op with one realistic bug in its backward (forward
// untouched); the sweep of prims/avgPool/contracts.cpp must reject every one of them.
//
// Not a mutant: a pool whose forward AND backward both divide by the in-range cell count
// (count_include_pad=False). That is a different function, consistently differentiated; the divisor the
// forward uses is pinned by a hand-worked unit test (tests/test_pools_relu6.cpp). Dividing by the in-range
// count in the backward only (below) is a real inconsistency, and is rejected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "veridl/prims/avgPool/reference.hpp"

namespace veridl::ops {

struct AvgPoolMutantOp : AvgPoolOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& ctx, const Vec<T>& dy) const {
    Ins<T> g = AvgPoolOp::backward(in, ctx, dy);
    Vec<T>& dx = g[0];
    const size_t OH = s.OH(), OW = s.OW();
    const T one(1);
    const T inv = one / T(static_cast<int64_t>(s.window()));
    for (auto& e : dx) e = T(0);
    // Scatter form: output o sends its share to the cells of its window (shifted by `dh` rows).
    auto in_range = [&](ptrdiff_t h, ptrdiff_t w) {
      return h >= 0 && h < static_cast<ptrdiff_t>(s.H) && w >= 0 && w < static_cast<ptrdiff_t>(s.W);
    };
    for (size_t o = 0; o < dy.size(); ++o) {
      const size_t j = o % OW, i = (o / OW) % OH, bc = o / (OW * OH);
      const ptrdiff_t h0 = static_cast<ptrdiff_t>(i * s.stride) - static_cast<ptrdiff_t>(s.pad_top);
      const ptrdiff_t w0 = static_cast<ptrdiff_t>(j * s.stride) - static_cast<ptrdiff_t>(s.pad_left);
      auto cell = [&](ptrdiff_t h, ptrdiff_t w) -> T& {
        return dx[(bc * s.H + static_cast<size_t>(h)) * s.W + static_cast<size_t>(w)];
      };
      int64_t in_cells = 0;
      for (size_t kh = 0; kh < s.KH; ++kh)
        for (size_t kw = 0; kw < s.KW; ++kw)
          in_cells += in_range(h0 + static_cast<ptrdiff_t>(kh), w0 + static_cast<ptrdiff_t>(kw)) ? 1 : 0;
      bool first = true;
      for (size_t kh = 0; kh < s.KH; ++kh)
        for (size_t kw = 0; kw < s.KW; ++kw) {
          ptrdiff_t h = h0 + static_cast<ptrdiff_t>(kh);
          const ptrdiff_t w = w0 + static_cast<ptrdiff_t>(kw);
          if (kind == "origin_off_by_one") ++h;  // the window origin one row too low
          if (!in_range(h, w)) continue;
          if (kind == "divisor_in_range_cells") {  // count_include_pad=False in the backward only
            cell(h, w) += dy[o] / T(in_cells);
          } else if (kind == "divisor_k") {  // k instead of k^2
            cell(h, w) += dy[o] / T(static_cast<int64_t>(s.KH));
          } else if (kind == "grad_to_first_cell") {  // the whole share to the window's first in-range cell
            if (first) cell(h, w) += dy[o] * inv;
            first = false;
          } else if (kind == "overlap_overwrites") {  // dx[cell] = instead of += (stride < k)
            cell(h, w) = dy[o] * inv;
          } else if (kind == "origin_off_by_one") {
            cell(h, w) += dy[o] * inv;
          } else {
            throw std::invalid_argument("unknown avgpool mutant '" + kind + "'");
          }
        }
    }
    return g;
  }
};

}  // namespace veridl::ops
