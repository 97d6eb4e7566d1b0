// Whole-model contracts of the book's chapter 2: the MNIST linear classifier
//   loss(x, W, b) = softmaxCE(dense(x; W, b); y)
// built with vjp_comp from the two checked records, at small shapes and at the real shape.
#include <fmt/core.h>

#include "veridl/prims/dense/reference.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"
#include "veridl/vjp/combinators.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

Vjp make_dense_variant(const ops::DenseShape& s, const std::string& variant);
Vjp make_softmax_ce_variant(const ops::SoftmaxShape& s, double eps, const std::vector<int32_t>& labels,
                            const std::string& variant);
std::vector<int32_t> config_labels(size_t B, size_t K);

namespace {
// Variants "dense:<mutant>" and "ce:<mutant>" put a broken backward inside the composition.
Vjp make_linear_model(const ops::DenseShape& s, double eps, const std::string& variant) {
  std::string dv, cv;
  if (variant.rfind("dense:", 0) == 0) dv = variant.substr(6);
  else if (variant.rfind("ce:", 0) == 0) cv = variant.substr(3);
  else if (!variant.empty()) throw std::invalid_argument("unknown mnistLinear mutant '" + variant + "'");
  Vjp m = vjp_comp(make_dense_variant(s, dv), make_softmax_ce_variant({s.B, s.O}, eps, config_labels(s.B, s.O), cv));
  m.name = "mnistLinear";
  return m;
}
}  // namespace

void register_model_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  for (auto [B, I, O] : {std::tuple<size_t, size_t, size_t>{1, 3, 2}, {2, 6, 3}, {3, 5, 4}})
    for (double eps : {0.0, 0.1}) {
      ops::DenseShape s{B, I, O};
      cases.push_back({fmt::format("B={} I={} O={} eps={}", B, I, O, eps),
                       [s, eps](const std::string& v) { return make_linear_model(s, eps, v); }, Sample::Normal, false});
    }
  ops::DenseShape prod{128, 784, 10};
  cases.push_back({"B=128 I=784 O=10 eps=0 (the book's mnistLinear)",
                   [prod](const std::string& v) { return make_linear_model(prod, 0.0, v); }, Sample::Normal, true});
  r.add({"mnistLinear_has_vjp_correct", 2,
         "d/d(x,W,b) of softmaxCE(xW + b; y) = vjp_comp(dense, softmaxCE)", {}, std::move(cases),
         {{"dense:dW_scale_1.0001", "a 1.0001 scale on dW inside the composition"},
          {"dense:dx_transpose", "a forgotten transpose inside the composition"},
          {"dense:db_mean", "bias gradient averaged instead of summed inside the composition"},
          {"ce:smoothing_K_minus_1", "wrong label smoothing inside the composition"}}});
}

}  // namespace veridl
