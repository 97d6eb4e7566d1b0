// Chapter 9 contract of LayerScale (input and gamma gradients in one), its sweep over both channel axes, and
// the broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/layerScale/mutants.hpp"
#include "veridl/prims/layerScale/primitive.hpp"
#include "veridl/prims/layerScale/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_mul_variant) so that composite contracts can put this record, or its mutants, inside a
// composition.
Vjp make_layerscale_variant(const ops::LayerScaleShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("layerscale", ops::LayerScaleOp{s});
  return make_vjp("layerscale[" + variant + "]", ops::LayerScaleMutantOp{{s}, variant});
}

void prims::LayerScale::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const std::string& what, const ops::LayerScaleShape& s, bool production) {
    cases.push_back({fmt::format("B={} {}", s.N, what), [s](const std::string& v) { return make_layerscale_variant(s, v); },
                     Sample::Normal, production});
  };
  for (size_t B : {1, 2, 3}) {
    for (size_t D : {1, 2, 5}) add(fmt::format("last [{}]", D), {B, 1, D, 1}, false);
    for (auto [T, D] : {std::pair<size_t, size_t>{3, 4}, {2, 5}, {4, 1}})
      add(fmt::format("last [{},{}]", T, D), {B, T, D, 1}, false);
    for (auto [C, H, W] : {std::tuple<size_t, size_t, size_t>{1, 1, 1}, {2, 2, 3}, {3, 1, 2}, {5, 3, 3}, {4, 2, 2}})
      add(fmt::format("channels [{},{},{}]", C, H, W), {B, 1, C, H * W}, false);
  }
  // Production shapes: ConvNeXt-T stage 1's block output (96 x 56 x 56) and DeiT-III / CaiT tokens.
  add("channels [96,56,56] (ConvNeXt-T stage 1)", {2, 1, 96, 56 * 56}, true);
  add("last [197,192] (DeiT-III-Tiny tokens)", {2, 197, 192, 1}, true);
  r.add({"layerScale_has_vjp_correct", 9,
         "y[o,c,i] = gamma[c] x[o,c,i];  dx = gamma[c] dy,  dgamma[c] = sum_{o,i} dy x", {}, std::move(cases),
         {{"dgamma_uses_y", "dgamma = sum dy y (the output gamma x instead of the input x)"},
          {"dx_gamma_missing", "dx = dy: the scale forgotten"},
          {"dgamma_wrong_channel", "dgamma[c] sums channel c+1 (mod C): an index off by one"},
          {"dx_channels_last_index", "gamma indexed by the flat index mod C, as if the channel axis were the last"},
          {"dgamma_first_example_only", "dgamma sums the first example only (the batch sum forgotten)"}}});
}

}  // namespace veridl
