// Chapter 6 contract of the global average pool (the book's globalAvgPoolFlat, CNN.lean), its sweep, and
// the broken backwards it must reject.
#include <fmt/core.h>

#include <string>
#include <tuple>
#include <vector>

#include "veridl/prims/globalAvgPool/mutants.hpp"
#include "veridl/prims/globalAvgPool/primitive.hpp"
#include "veridl/prims/globalAvgPool/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace {
Vjp make_gap_variant(const ops::GlobalAvgPoolShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("globalavgpool", ops::GlobalAvgPoolOp{s});
  return make_vjp("globalavgpool[" + variant + "]", ops::GlobalAvgPoolMutantOp{{s}, variant});
}
}  // namespace

void prims::GlobalAvgPool::register_contracts(Registry& r) {
  // Batch 1 and > 1, one and several channels, square and non-square planes, odd and even extents, 1x1.
  std::vector<ContractCase> cases;
  for (size_t B : {1, 2, 3})
    for (size_t C : {1, 2, 3})
      for (auto [H, W] : {std::pair<size_t, size_t>{1, 1}, {2, 2}, {3, 2}, {1, 5}, {4, 3}, {7, 7}}) {
        const ops::GlobalAvgPoolShape s{B, C, H, W};
        cases.push_back({s.str(), [s](const std::string& v) { return make_gap_variant(s, v); }, Sample::Normal, false});
      }
  for (auto [B, C, H, what] : {std::tuple<size_t, size_t, size_t, const char*>{8, 512, 7, "ResNet-34 head 512x7x7"},
                               {8, 1280, 4, "MobileNetV2 head 1280x4x4 on 128x128"}}) {
    const ops::GlobalAvgPoolShape s{B, C, H, H};
    cases.push_back({s.str() + " (" + what + ")", [s](const std::string& v) { return make_gap_variant(s, v); },
                     Sample::Normal, true});
  }
  r.add({"globalAvgPoolFlat_has_vjp_correct", 6, "y[c] = (sum_{h,w} x[c,h,w]) / (H W);  dx[c,h,w] = dy[c] / (H W)",
         {"x"}, std::move(cases),
         {{"divisor_H", "the backward divides by H instead of H W"},
          {"divisor_dropped", "the mean's 1/(H W) forgotten in the backward: dx = dy"},
          {"grad_to_first_cell", "dy/(H W) goes to the plane's first cell only (no broadcast)"},
          {"wrong_channel", "dx of channel c takes dy of channel c+1 (mod C)"}}});
}

}  // namespace veridl
