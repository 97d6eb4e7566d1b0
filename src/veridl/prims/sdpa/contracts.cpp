// Chapter 10 contracts of scaled dot-product attention (the book's sdpa_back_Q/K/V_correct, one per input),
// their sweep (heads, widths, token counts, the causal mask, batch 1 and 2, tie-heavy scores) and the broken
// backwards they must reject.
#include <fmt/core.h>

#include "veridl/prims/sdpa/mutants.hpp"
#include "veridl/prims/sdpa/primitive.hpp"
#include "veridl/prims/sdpa/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

Vjp make_sdpa_variant(const ops::SdpaShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("sdpa", ops::SdpaOp{s});
  return make_vjp("sdpa[" + variant + "]", ops::SdpaMutantOp{{s}, variant});
}

void prims::Sdpa::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const ops::SdpaShape& s, Sample sample, bool production, const std::string& note) {
    cases.push_back({s.str() + note, [s](const std::string& v) { return make_sdpa_variant(s, v); }, sample, production});
  };
  for (size_t N : {1, 2})
    for (size_t T : {1, 2, 3, 5})
      for (auto [D, H] : {std::pair<size_t, size_t>{2, 1}, {3, 1}, {4, 2}, {6, 3}, {6, 2}})
        for (bool causal : {false, true}) {
          if (T == 1 && causal) continue;  // one token: the mask changes nothing
          add({N, T, D, H, causal}, Sample::Normal, false, "");
        }
  // Tie-heavy scores (integers in {-2..2}): the row maximum's first-maximum convention on the real tape.
  for (bool causal : {false, true}) add({2, 4, 4, 2, causal}, Sample::Ties, false, " (ties)");
  // Production shapes: ViT-Tiny's attention (197 tokens, 3 heads of 64) and the small 28x28 ViT's at batch 2.
  add({2, 197, 192, 3, false}, Sample::Normal, true, " (ViT-Tiny)");
  add({2, 17, 64, 4, false}, Sample::Normal, true, " (ViT-Small28)");
  const std::string stmt =
      "P = rowSoftmax(q k^T c), c = rsqrt(d);  dP = dO v^T,  dS = P (dP - rowsum(P dP));  ";
  r.add({"sdpa_back_Q_correct", 10, stmt + "dq = c dS k", {"q"}, cases,
         {{"scale_missing", "the 1/sqrt(d) scale forgotten in the backward"},
          {"scale_one_over_d", "1/d instead of 1/sqrt(d) in the backward"},
          {"missing_rowsum", "dS = P dP: the softmax's rowsum(P dP) term forgotten"},
          {"dq_next_heads_k", "dq reads the next head's columns of k"},
          {"dp_reads_k_for_v", "dP = dO k^T instead of dO v^T"}}});
  r.add({"sdpa_back_K_correct", 10, stmt + "dk = c dS^T q", {"k"}, cases,
         {{"dk_from_k", "dk = c dS^T k: the key gradient built from k instead of q"},
          {"scale_missing", "the 1/sqrt(d) scale forgotten in the backward"},
          {"missing_rowsum", "dS = P dP: the softmax's rowsum(P dP) term forgotten"},
          {"causal_mask_ignored", "the backward runs over every key, ignoring the causal mask"}}});
  r.add({"sdpa_back_V_correct", 10, "P = rowSoftmax(q k^T c);  dv = P^T dO", {"v"}, std::move(cases),
         {{"dv_not_transposed", "dv = P dO: the transpose of P forgotten"},
          {"dv_scale_1.0001", "dv scaled by 1.0001"},
          {"causal_mask_ignored", "the backward runs over every key, ignoring the causal mask"}}});
}

}  // namespace veridl
