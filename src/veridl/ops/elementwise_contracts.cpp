// Chapter 6 (the residual's fan-in, fan-out) and chapter 8 (elemwiseProduct, squeeze-excitation)
// contracts, their sweeps, and the broken backwards they must reject.
#include <fmt/core.h>

#include "veridl/ops/elementwise.hpp"
#include "veridl/ops/elementwise_mutants.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_relu_variant) so that composite contracts can put these records, or their
// mutants, inside a composition.
Vjp make_add_variant(const ops::AddShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("add", ops::AddOp{s});
  return make_vjp("add[" + variant + "]", ops::AddMutantOp{{s}, variant});
}

Vjp make_mul_variant(const ops::MulShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("mul", ops::MulOp{s});
  return make_vjp("mul[" + variant + "]", ops::MulMutantOp{{s}, variant});
}

Vjp make_fanout_variant(const ops::FanoutShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("fanout", ops::FanoutOp{s});
  return make_vjp("fanout[" + variant + "]", ops::FanoutMutantOp{{s}, variant});
}

void register_elementwise_contracts(Registry& r) {
  // A ResNet-style activation at batch 128: 16 channels of 14x14.
  constexpr size_t kProdB = 128, kProdC = 16, kProdHW = 14 * 14;
  {
    std::vector<ContractCase> cases;
    for (size_t n : {1, 2, 3, 5, 8, 17}) {
      ops::AddShape s{n};
      cases.push_back({fmt::format("n={}", n), [s](const std::string& v) { return make_add_variant(s, v); },
                       Sample::Normal, false});
    }
    ops::AddShape prod{kProdB * kProdC * kProdHW};
    cases.push_back({"n=128x16x14x14 (a residual join, B=128)",
                     [prod](const std::string& v) { return make_add_variant(prod, v); }, Sample::Normal, true});
    r.add({"biPath_has_vjp", 6, "y = a + b;  da = dy, db = dy   (both paths receive the whole gradient)", {},
           std::move(cases),
           {{"db_dropped", "db = 0: a residual's skip gradient lost"},
            {"da_scaled_1.0001", "da scaled by 1.0001 (invisible to finite differences)"},
            {"db_is_da_shifted", "db read one element late (dy[i+1]): an off-by-one index"}}});
  }
  {
    std::vector<ContractCase> cases;
    for (size_t B : {1, 2, 3})
      for (size_t C : {1, 2, 3})
        for (size_t inner : {1, 2, 4, 9}) {
          ops::MulShape s{B, C, inner};
          cases.push_back({fmt::format("B={} C={} inner={}", B, C, inner),
                           [s](const std::string& v) { return make_mul_variant(s, v); }, Sample::Normal, false});
        }
    ops::MulShape prod{kProdB, kProdC, kProdHW};
    cases.push_back({"B=128 C=16 inner=196 (squeeze-excitation scale on 14x14)",
                     [prod](const std::string& v) { return make_mul_variant(prod, v); }, Sample::Normal, true});
    r.add({"elemwiseProduct_has_vjp", 8,
           "y[b,c,k] = a[b,c,k] s[b,c];  da[b,c,k] = s[b,c] dy[b,c,k],  ds[b,c] = sum_k a[b,c,k] dy[b,c,k]", {},
           std::move(cases),
           {{"ds_not_summed", "ds takes only k = 0: the broadcast's sum forgotten"},
            {"da_uses_a", "da = a dy instead of s dy"},
            {"ds_scaled_1.0001", "ds scaled by 1.0001 (invisible to finite differences)"},
            {"ds_wrong_channel", "ds[b,c] sums channel c+1 (mod C)"}}});
  }
  {
    std::vector<ContractCase> cases;
    for (size_t n : {1, 2, 3, 5, 8, 17}) {
      ops::FanoutShape s{n};
      cases.push_back({fmt::format("n={}", n), [s](const std::string& v) { return make_fanout_variant(s, v); },
                       Sample::Normal, false});
    }
    ops::FanoutShape prod{kProdB * kProdC * kProdHW};
    cases.push_back({"n=128x16x14x14 (a residual split, B=128)",
                     [prod](const std::string& v) { return make_fanout_variant(prod, v); }, Sample::Normal, true});
    r.add({"fanout_has_vjp", 6, "(y1, y2) = (x, x);  dx = dy1 + dy2   (the two uses' gradients accumulate)", {},
           std::move(cases),
           {{"write_not_accumulate", "dx = dy2: the second gradient overwrote the first"},
            {"first_only", "dx = dy1: the second use's gradient never arrives"},
            {"doubled_first", "dx = 2 dy1: the first gradient accumulated twice"}}});
  }
}

}  // namespace veridl
