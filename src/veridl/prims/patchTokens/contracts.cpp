// Chapter 10 contract of patchTokens (the CLS token and position embedding of patchEmbed): the input, cls and
// pos gradients in one, its sweep and the broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/patchTokens/mutants.hpp"
#include "veridl/prims/patchTokens/primitive.hpp"
#include "veridl/prims/patchTokens/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace {
Vjp make_variant(const ops::PatchTokensShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("patchTokens", ops::PatchTokensOp{s});
  return make_vjp("patchTokens[" + variant + "]", ops::PatchTokensMutantOp{{s}, variant});
}
}  // namespace

void prims::PatchTokens::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const ops::PatchTokensShape& s, bool production, const std::string& note) {
    cases.push_back({s.str() + note, [s](const std::string& v) { return make_variant(s, v); }, Sample::Normal, production});
  };
  for (size_t N : {1, 2, 3})
    for (size_t D : {1, 2, 3, 5})
      for (size_t P : {1, 2, 4, 9}) add({N, D, P}, false, "");
  add({2, 192, 196}, true, " (ViT-Tiny: 14 x 14 patches of width 192)");
  add({2, 64, 16}, true, " (ViT-Small28)");
  r.add({"patchTokens_has_vjp_correct", 10,
         "y[0] = cls + pos[0], y[1+p, c] = x[c, p] + pos[1+p, c];  dx[c, p] = dy[1+p, c],  dcls = sum_n dy[n, 0],  "
         "dpos = sum_n dy[n]",
         {}, std::move(cases),
         {{"dx_cls_row_not_skipped", "dx[c, p] = dy[p, c]: the CLS row read as patch 0"},
          {"dx_not_transposed", "dx read in token order, without the transpose"},
          {"dcls_first_example_only", "dcls without the batch sum"},
          {"dpos_cls_row_zero", "the position embedding's CLS row given no gradient"}}});
}

}  // namespace veridl
