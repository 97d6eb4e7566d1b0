// Chapter 8 contract of the elementwise product (elemwiseProduct, squeeze-excitation), its sweep, and the
// broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/mul/mutants.hpp"
#include "veridl/prims/mul/primitive.hpp"
#include "veridl/prims/mul/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_relu_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_mul_variant(const ops::MulShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("mul", ops::MulOp{s});
  return make_vjp("mul[" + variant + "]", ops::MulMutantOp{{s}, variant});
}

void prims::Mul::register_contracts(Registry& r) {
  // A ResNet-style activation at batch 128: 16 channels of 14x14.
  constexpr size_t kProdB = 128, kProdC = 16, kProdHW = 14 * 14;
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
}

}  // namespace veridl
