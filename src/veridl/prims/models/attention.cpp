// Chapter 10's composite contract: multi-head self-attention (the original's mhsa_has_vjp_mat_correct), the
// q/k/v/o projections around sdpa as one record (mhsa.hpp), over small shapes (1 to 3 heads, causal or not) and
// ViT-Tiny's attention layer at batch 2 as production shape, with the broken compositions it must reject.
#include <fmt/core.h>

#include "veridl/prims/models/mhsa.hpp"
#include "veridl/prims/models/transformer_block.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void register_attention_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const ops::SdpaShape& s, bool production, const std::string& note) {
    cases.push_back({s.str() + note, [s](const std::string& v) { return make_vjp("mhsa" + (v.empty() ? "" : "[" + v + "]"), ops::MhsaOp{s, v}); },
                     Sample::Normal, production});
  };
  for (size_t N : {1, 2})
    for (auto [T, D, H] : {std::tuple<size_t, size_t, size_t>{1, 2, 1}, {3, 4, 2}, {4, 6, 3}, {5, 3, 1}})
      for (bool causal : {false, true}) {
        if (T == 1 && causal) continue;
        add({N, T, D, H, causal}, false, "");
      }
  add({2, 197, 192, 3, false}, true, " (ViT-Tiny's attention layer)");
  r.add({"mhsa_has_vjp_mat_correct", 10,
         "y = sdpa(x Wq + bq, x Wk + bk, x Wv + bv) Wo + bo;  backward: dense back through Wo, sdpa back, the three "
         "projections back, dx = the sum of their fan-out",
         {}, std::move(cases),
         {{"dx_fanout_overwrites", "dx from the last projection only: the fan-out's sum forgotten"},
          {"q_k_grads_swapped", "sdpa's dq and dk sent to the other projection"},
          {"dWo_from_v", "the output projection's weight gradient built from v instead of the attention output"}}});

  std::vector<ContractCase> blocks;
  auto add_block = [&](const ops::SdpaShape& s, size_t M, bool production, const std::string& note) {
    blocks.push_back({fmt::format("{} M={}{}", s.str(), M, note),
                      [s, M](const std::string& v) {
                        return make_vjp("transformerBlock" + (v.empty() ? "" : "[" + v + "]"), ops::TransformerBlockOp{s, M, v});
                      },
                      Sample::Normal, production});
  };
  for (size_t N : {1, 2})
    for (auto [T, D, H, M] : {std::tuple<size_t, size_t, size_t, size_t>{1, 2, 1, 3}, {3, 4, 2, 8}, {4, 6, 3, 5}})
      for (bool causal : {false, true}) {
        if (T == 1 && causal) continue;
        add_block({N, T, D, H, causal}, M, false, "");
      }
  add_block({2, 197, 192, 3, false}, 768, true, " (a ViT-Tiny block)");
  r.add({"transformerBlock_has_vjp_mat_correct", 10,
         "y = h + fc2(geluErf(fc1(LN2(h)))),  h = x + MHSA(LN1(x));  backward: the chain rule over the MLP, LN2, the "
         "residual fan-in, MHSA, LN1 and the second residual",
         {}, std::move(blocks),
         {{"mlp_skip_gradient_forgotten", "dh without the residual's dy (the MLP branch only)"},
          {"attention_skip_gradient_forgotten", "dx without the residual's dh (the attention branch only)"},
          {"gelu_derivative_at_output", "GELU's derivative evaluated at its output instead of its input"}}});
}

}  // namespace veridl
