// Chapter 9 contract of LayerNorm (input, gamma and beta gradients in one), its sweep over both axes, and the
// broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/layerNorm/mutants.hpp"
#include "veridl/prims/layerNorm/primitive.hpp"
#include "veridl/prims/layerNorm/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_batchnorm_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_layernorm_variant(const ops::LayerNormShape& s, double eps, const std::string& variant) {
  if (variant.empty()) return make_vjp("layernorm", ops::LayerNormOp{s, eps});
  return make_vjp("layernorm[" + variant + "]", ops::LayerNormMutantOp{{s, eps}, variant});
}

void prims::LayerNorm::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const std::string& what, const ops::LayerNormShape& s, double eps, bool production) {
    cases.push_back({fmt::format("B={} {} eps={}", s.N, what, eps),
                     [s, eps](const std::string& v) { return make_layernorm_variant(s, eps, v); }, Sample::Normal,
                     production});
  };
  for (size_t B : {1, 2, 3}) {
    // axis "last": flat [D] and [T, D] tokens, odd and even sizes
    for (auto [T, D] : {std::pair<size_t, size_t>{1, 2}, {1, 3}, {1, 5}, {3, 2}, {2, 5}, {4, 3}})
      for (double eps : {1e-5, 1e-6}) {
        const ops::LayerNormShape s{B, T, D, 1};
        add(T == 1 ? fmt::format("last [{}]", D) : fmt::format("last [{},{}]", T, D), s, eps, false);
      }
    // axis "channels": [C, H, W], normalised over C at every pixel
    for (size_t C : {1, 2, 3, 5})
      for (auto [H, W] : {std::pair<size_t, size_t>{1, 1}, {1, 2}, {2, 3}, {3, 3}})
        for (double eps : {1e-5, 1e-6}) {
          if (C == 1 && eps != 1e-5) continue;
          const ops::LayerNormShape s{B, 1, C, H * W};
          add(fmt::format("channels [{},{},{}]", C, H, W), s, eps, false);
        }
  }
  add("channels [4,2,2]", {2, 1, 4, 4}, 0.1, false);  // a large eps
  add("last [3,4]", {2, 3, 4, 1}, 0.1, false);
  // Production shapes: ConvNeXt-T stage 1 (LayerNorm2d over 96 channels at 56x56) and ViT-Tiny's tokens.
  add("channels [96,56,56] (ConvNeXt-T stage 1)", {2, 1, 96, 56 * 56}, 1e-6, true);
  add("last [197,192] (ViT-Tiny tokens)", {2, 197, 192, 1}, 1e-6, true);
  r.add({"layerNorm_has_vjp_correct", 9,
         "g = gamma dy;  dx = (r/C)(C g - sum_c g - xhat sum_c(g xhat)),  r = rsqrt(var_c(x) + eps);  "
         "dgamma = sum dy xhat,  dbeta = sum dy",
         {},
         std::move(cases),
         {{"dx_default_eps", "r recomputed in the backward with the default eps 1e-5, not the layer's"},
          {"dx_missing_mean", "the sum_c g (mean) term is missing"},
          {"dx_missing_xhat_term", "the xhat sum_c(g xhat) term is missing"},
          {"dx_count_c_plus_1", "divides by C + 1 instead of C"},
          {"dx_count_positions", "divides by the positions per row (H W; BatchNorm's count) instead of C"},
          {"dx_gamma_missing", "g = dy: gamma forgotten"},
          {"dgamma_x_instead_of_xhat", "dgamma = sum dy x (the unnormalised input)"},
          {"dbeta_first_row_only", "dbeta sums the first example's first row only (the batch sum forgotten)"}}});
}

}  // namespace veridl
