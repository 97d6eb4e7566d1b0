// Chapter 2 contracts of the dense layer, their sweep, and the broken backwards they must reject.
#include <fmt/core.h>

#include "veridl/prims/dense/mutants.hpp"
#include "veridl/prims/dense/primitive.hpp"
#include "veridl/prims/dense/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

Vjp make_dense_variant(const ops::DenseShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("dense", ops::DenseOp{s});
  return make_vjp("dense[" + variant + "]", ops::DenseMutantOp{{s}, variant});
}

void prims::Dense::register_contracts(Registry& r) {
  auto sweep = [](bool production) {
    std::vector<ContractCase> cases;
    for (size_t B : {1, 2, 3})
      for (size_t I : {1, 2, 5})
        for (size_t O : {1, 3, 4}) {
          ops::DenseShape s{B, I, O};
          cases.push_back({fmt::format("B={} I={} O={}", B, I, O),
                           [s](const std::string& v) { return make_dense_variant(s, v); }, Sample::Normal, false});
        }
    if (production)
      for (size_t B : {1, 128}) {
        ops::DenseShape s{B, 784, 10};
        cases.push_back({fmt::format("B={} I=784 O=10 (mnistLinear)", B),
                         [s](const std::string& v) { return make_dense_variant(s, v); }, Sample::Normal, true});
      }
    return cases;
  };
  r.add({"dense_has_vjp", 2, "dx[b,i] = sum_o W[i,o] dy[b,o]   (backward = W . dy)", {"x"}, sweep(true),
         {{"dx_transpose", "forgotten transpose: W read as [O][I]"},
          {"dx_sign", "wrong sign: dx = -W dy"},
          {"dx_scale_1.0001", "dx scaled by 1.0001 (invisible to finite differences)"},
          {"dx_drop_last_output", "off-by-one loop bound: the last output's term is missing"}}});
  r.add({"dense_weight_grad_correct", 2, "dW[i,o] = sum_b x[b,i] dy[b,o]   (x outer dy)", {"W"}, sweep(true),
         {{"dW_sign", "wrong sign"},
          {"dW_scale_1.0001", "dW scaled by 1.0001"},
          {"dW_first_row_only", "missing batch sum: only the first example contributes"},
          {"dW_wrong_row", "x of the next example paired with dy (row off by one)"}}});
  r.add({"dense_bias_grad_correct", 2, "db[o] = sum_b dy[b,o]", {"b"}, sweep(true),
         {{"db_mean", "mean over the batch instead of the sum"},
          {"db_first_row_only", "only the first example's dy"},
          {"db_scale_1.0001", "db scaled by 1.0001"},
          {"db_sign", "wrong sign"}}});
}

}  // namespace veridl
