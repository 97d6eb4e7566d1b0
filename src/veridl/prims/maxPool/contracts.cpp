// Chapter 4 contract of max-pool, its sweep, and the broken backwards it must reject.
//
// The sweep is part of the spec (verification.md 4.4): every index path at tiny shapes -- windows 1..3,
// strides 1..3, paddings 0..1, both SAME styles, non-square windows with asymmetric pads, tie-heavy
// inputs -- plus one trial at real network shapes.
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>
#include <vector>

#include "veridl/prims/maxPool/mutants.hpp"
#include "veridl/prims/maxPool/primitive.hpp"
#include "veridl/prims/maxPool/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace {

Vjp make_maxpool_variant(const ops::MaxPoolShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("maxpool", ops::MaxPoolOp{s});
  return make_vjp("maxpool[" + variant + "]", ops::MaxPoolMutantOp{{s}, variant});
}


struct LabelledPool {
  std::string label;
  ops::MaxPoolShape s;
  Sample sample;
};

std::vector<LabelledPool> maxpool_sweep_shapes() {
  std::vector<LabelledPool> out;
  size_t n = 0;
  auto add = [&](ops::MaxPoolShape s, const std::string& suffix) {
    s.B = 1 + n % 2;
    s.C = 1 + n % 3;
    s.validate();
    // Every shape twice: tie-heavy integer inputs (many tied maxima) and continuous ones.
    out.push_back({s.str() + suffix + " ties", s, Sample::Ties});
    out.push_back({s.str() + suffix, s, Sample::Normal});
    ++n;
  };
  for (size_t k = 1; k <= 3; ++k)
    for (size_t stride = 1; stride <= 3; ++stride)
      for (size_t pad = 0; pad < std::min<size_t>(k, 2); ++pad) {
        ops::MaxPoolShape s;
        s.H = std::max(kSweepExtents[n % 5], k);
        s.W = std::max(kSweepExtents[(n + 2) % 5], k);
        s.KH = s.KW = k;
        s.stride = stride;
        s.pad_top = s.pad_left = s.pad_bottom = s.pad_right = pad;
        // The last window must start in range (a window in the padding only is invalid).
        while ((s.OH() - 1) * s.stride >= s.H + s.pad_top) ++s.H;
        while ((s.OW() - 1) * s.stride >= s.W + s.pad_left) ++s.W;
        add(s, "");
      }
  for (ops::PadStyle style : {ops::PadStyle::Symmetric, ops::PadStyle::XlaSame})
    for (auto [k, stride, H, W] : {std::array<size_t, 4>{3, 2, 7, 6}, {2, 2, 5, 4}, {3, 1, 4, 5}, {2, 1, 3, 6}})
      add(ops::maxpool_shape(1, 1, H, W, k, stride, ops::Padding::Same, style),
          style == ops::PadStyle::XlaSame ? " (SAME, xla)" : " (SAME, symmetric)");
  add({1, 1, 5, 7, 2, 3, 1, 1, 0, 0, 2}, "");  // non-square window, asymmetric pads
  add({1, 1, 6, 5, 3, 2, 2, 0, 1, 1, 0}, "");
  return out;
}

}  // namespace

void prims::MaxPool::register_contracts(Registry& r) {
  std::vector<ContractCase> pool;
  for (const auto& [label, s, sample] : maxpool_sweep_shapes())
    pool.push_back({label, [s = s](const std::string& v) { return make_maxpool_variant(s, v); }, sample, false});
  for (auto [C, H, k, stride, what] :
       {std::tuple<size_t, size_t, size_t, size_t, const char*>{64, 56, 3, 2, "resnet stem pool 3x3/s2 SAME"},
        {32, 28, 2, 2, "cnn pool 2x2/s2"}}) {
    const ops::MaxPoolShape s = ops::maxpool_shape(2, C, H, H, k, stride, ops::Padding::Same, ops::PadStyle::Symmetric);
    pool.push_back({s.str() + " (" + what + ")", [s](const std::string& v) { return make_maxpool_variant(s, v); },
                    Sample::Normal, true});
  }
  r.add({"maxPool2_has_vjp3_correct", 4,
         "dx = dy routed to each window's arg-max (first maximum in row-major window order, from the tape); "
         "overlapping windows accumulate",
         {"x"}, std::move(pool),
         {{"grad_to_first_cell", "gradient routed to the window's first cell regardless of the arg-max"},
          {"overlap_overwrites", "overlapping windows (stride < k) overwrite instead of accumulating"},
          {"origin_off_by_one", "window origin off by one row in the backward"},
          {"index_decoded_transposed", "in-window index decoded column-major (kh, kw swapped)"},
          {"dy_scale_1.0001", "dy scaled by 1.0001"}}});
}

}  // namespace veridl
