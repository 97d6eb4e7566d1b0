#include "veridl/prims/hlo_util.hpp"

#include <algorithm>

#include "veridl/util/error.hpp"

namespace veridl::prims::hlo_util {

Windows windows(const ops::Conv2dShape& c) {
  return {i64(c.H), i64(c.W), i64(c.KH), i64(c.KW), i64(c.stride), i64(c.OH()), i64(c.OW()), i64(c.pad_top),
          i64(c.pad_left)};
}
Windows windows(const ops::MaxPoolShape& p) {
  return {i64(p.H), i64(p.W), i64(p.KH), i64(p.KW), i64(p.stride), i64(p.OH()), i64(p.OW()), i64(p.pad_top),
          i64(p.pad_left)};
}

FittedInput fit_input(Builder& b, const Val& x, const Windows& g) {
  const int64_t hi_h = (g.OH - 1) * g.st + g.KH - g.H - g.pt, hi_w = (g.OW - 1) * g.st + g.KW - g.W - g.pl;
  FittedInput f{x, {{g.pt, std::max<int64_t>(hi_h, 0)}, {g.pl, std::max<int64_t>(hi_w, 0)}}};
  if (hi_h < 0 || hi_w < 0)  // real rows / columns past the last window: cut them
    f.x = b.slice(x, {0, 0, 0, 0},
                  {x.shape[0], x.shape[1], g.H + std::min<int64_t>(hi_h, 0), g.W + std::min<int64_t>(hi_w, 0)},
                  {1, 1, 1, 1});
  return f;
}

Val window_input_grad(Builder& b, const Val& dy, const Val& w, const Windows& g, const std::string& where,
                      int64_t groups) {
  const int64_t lo_h = g.KH - 1 - g.pt, lo_w = g.KW - 1 - g.pl;
  const int64_t hi_h = g.H - 1 + g.pt - (g.OH - 1) * g.st, hi_w = g.W - 1 + g.pl - (g.OW - 1) * g.st;
  if (lo_h < 0 || lo_w < 0 || hi_h < 0 || hi_w < 0)
    throw Error("export: " + where + ": padding larger than the window is not supported");
  return b.convolution(dy, b.reverse(w, {2, 3}), {"b, f, 0, 1", "i, o, 0, 1", "b, f, 0, 1"}, {1, 1},
                       {{lo_h, hi_h}, {lo_w, hi_w}}, {g.st, g.st}, {1, 1}, {dy.shape[0], w.shape[1], g.H, g.W}, groups);
}

}  // namespace veridl::prims::hlo_util
