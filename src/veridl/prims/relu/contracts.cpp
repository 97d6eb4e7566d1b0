// Chapter 3 contract of ReLU, its sweep, and the broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/relu/mutants.hpp"
#include "veridl/prims/relu/primitive.hpp"
#include "veridl/prims/relu/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_dense_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_relu_variant(const ops::ReluShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("relu", ops::ReluOp{s});
  return make_vjp("relu[" + variant + "]", ops::ReluMutantOp{{s}, variant});
}

void prims::Relu::register_contracts(Registry& r) {
  {
    // Sizes with odd and even lengths; Sample::Ties plants exact zeros (the kink) in the real run, and
    // run_contract adds a random tape for every config (patterns the sample never produced).
    std::vector<ContractCase> cases;
    for (size_t n : {1, 2, 3, 5, 8, 17, 64})
      for (Sample smp : {Sample::Normal, Sample::Ties}) {
        ops::ReluShape s{n};
        cases.push_back({fmt::format("n={}{}", n, smp == Sample::Ties ? " ties" : ""),
                         [s](const std::string& v) { return make_relu_variant(s, v); }, smp, false});
      }
    ops::ReluShape prod{128 * 512};
    cases.push_back({"n=128x512 (mnistMlp hidden layer, B=128)",
                     [prod](const std::string& v) { return make_relu_variant(prod, v); }, Sample::Normal, true});
    r.add({"relu_has_vjp_correct", 3, "dx_i = dy_i if x_i > 0 else 0   (mask from the forward's tape decision)", {},
           std::move(cases),
           {{"mask_ignored", "the mask is ignored: dx = dy"},
            {"mask_inverted", "the mask is inverted: the gradient flows through the dead units"},
            {"scale_1.0001", "dx scaled by 1.0001 (invisible to finite differences)"},
            {"mask_off_by_one", "the mask is read one element late (mask[i+1])"}}});
  }
}

}  // namespace veridl
