// Chapter 6 contract of avg-pool, its sweep, and the broken backwards it must reject.
//
// The sweep is part of the spec: windows 1..3 (odd and even), strides 1..3 (overlapping windows, tiling
// windows, and strides past the window that leave cells unread), "valid" and "same" in both pad styles
// (border windows overlapping the padding, where the divisor k^2 differs from the in-range count), odd and
// even H and W, batch and channel counts 1..3, two non-square windows with asymmetric pads, and two trials
// at real network shapes. The op is linear (no decisions), so the Normal sample covers it.
#include <fmt/core.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "veridl/prims/avgPool/mutants.hpp"
#include "veridl/prims/avgPool/primitive.hpp"
#include "veridl/prims/avgPool/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace {

Vjp make_avgpool_variant(const ops::AvgPoolShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("avgpool", ops::AvgPoolOp{s});
  return make_vjp("avgpool[" + variant + "]", ops::AvgPoolMutantOp{{s}, variant});
}


std::vector<std::pair<std::string, ops::AvgPoolShape>> avgpool_sweep_shapes() {
  std::vector<std::pair<std::string, ops::AvgPoolShape>> out;
  size_t n = 0;
  auto add = [&](ops::AvgPoolShape s, const std::string& suffix) {
    s.B = 1 + n % 2;
    s.C = 1 + n % 3;
    s.validate();
    out.push_back({s.str() + suffix, s});
    ++n;
  };
  for (size_t k = 1; k <= 3; ++k)
    for (size_t stride = 1; stride <= 3; ++stride) {
      const size_t H = std::max(kSweepExtents[n % 5], k), W = std::max(kSweepExtents[(n + 2) % 5], k);
      add(ops::avgpool_shape(1, 1, H, W, k, stride, ops::Padding::Valid), " (valid)");
      if (k == 1) continue;  // "same" pads nothing for a 1x1 window
      add(ops::avgpool_shape(1, 1, H + 1, W, k, stride, ops::Padding::Same, ops::PadStyle::XlaSame), " (same, xla)");
      add(ops::avgpool_shape(1, 1, H, W + 1, k, stride, ops::Padding::Same, ops::PadStyle::Symmetric),
          " (same, symmetric)");
    }
  add({1, 1, 5, 7, 2, 3, 1, 1, 0, 0, 2}, " (non-square, asymmetric pads)");
  add({1, 1, 6, 5, 3, 2, 2, 0, 1, 1, 0}, " (non-square, asymmetric pads)");
  return out;
}

}  // namespace

void prims::AvgPool::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  for (const auto& [label, s] : avgpool_sweep_shapes())
    cases.push_back({label, [s = s](const std::string& v) { return make_avgpool_variant(s, v); }, Sample::Normal, false});
  for (auto [C, H, k, stride, same, what] : {
           std::tuple<size_t, size_t, size_t, size_t, bool, const char*>{128, 28, 2, 2, false,
                                                                         "DenseNet transition 2x2/s2"},
           {64, 17, 3, 1, true, "Inception branch pool 3x3/s1 same"}}) {
    const ops::AvgPoolShape s = ops::avgpool_shape(2, C, H, H, k, stride, same ? ops::Padding::Same : ops::Padding::Valid,
                                                   ops::PadStyle::Symmetric);
    cases.push_back({s.str() + " (" + what + ")", [s](const std::string& v) { return make_avgpool_variant(s, v); },
                     Sample::Normal, true});
  }
  r.add({"avgPool_has_vjp_correct", 6,
         "y = (sum of the window's in-range cells) / k^2 (padded cells count: count_include_pad); "
         "dx[h,w] = sum over the windows containing (h,w) of dy / k^2",
         {"x"}, std::move(cases),
         {{"divisor_in_range_cells", "the backward divides by the window's in-range cells, not k^2 (count_include_pad=False)"},
          {"divisor_k", "the backward divides by k instead of k^2"},
          {"grad_to_first_cell", "each window's share dy/k^2 goes to its first in-range cell only"},
          {"origin_off_by_one", "window origin off by one row in the backward"},
          {"overlap_overwrites", "overlapping windows (stride < k) overwrite instead of accumulating"}}});
}

}  // namespace veridl
