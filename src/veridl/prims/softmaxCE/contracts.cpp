// Chapter 2 contract of softmax cross-entropy with label smoothing (softmax's own: prims/softmax/contracts.cpp).
#include <fmt/core.h>

#include "veridl/prims/softmaxCE/mutants.hpp"
#include "veridl/prims/softmaxCE/primitive.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Labels of a config: deterministic, covering several classes.
std::vector<int32_t> config_labels(size_t B, size_t K) {
  std::vector<int32_t> y(B);
  for (size_t b = 0; b < B; ++b) y[b] = static_cast<int32_t>((b * 7 + 3) % K);
  return y;
}

Vjp make_softmax_ce_variant(const ops::SoftmaxShape& s, double eps, const std::vector<int32_t>& labels,
                            const std::string& variant) {
  ops::SoftmaxCEOp op{s, eps, labels};
  if (variant.empty()) return make_vjp("softmax_ce", op);
  return make_vjp("softmax_ce[" + variant + "]", ops::SoftmaxCEMutantOp{op, variant});
}

void prims::SoftmaxCE::register_contracts(Registry& r) {
  {
    std::vector<ContractCase> cases;
    for (size_t B : {1, 3})
      for (size_t K : {2, 5, 10})
        for (double eps : {0.0, 0.1})
          for (Sample smp : {Sample::Normal, Sample::Ties}) {
            ops::SoftmaxShape s{B, K};
            auto y = config_labels(B, K);
            cases.push_back({fmt::format("B={} K={} eps={}{}", B, K, eps, smp == Sample::Ties ? " ties" : ""),
                             [s, eps, y](const std::string& v) { return make_softmax_ce_variant(s, eps, y, v); },
                             smp, false});
          }
    for (double eps : {0.0, 0.1}) {
      ops::SoftmaxShape s{128, 10};
      auto y = config_labels(128, 10);
      cases.push_back({fmt::format("B=128 K=10 eps={} (mnistLinear)", eps),
                       [s, eps, y](const std::string& v) { return make_softmax_ce_variant(s, eps, y, v); },
                       Sample::Normal, true});
    }
    r.add({"softmaxCE_grad", 2,
           "dz[b,k] = dL (p[b,k] - t[b,k]) / B,  t = (1-eps) onehot(y) + eps/K", {}, std::move(cases),
           {{"sign", "sign flipped: t - p"},
            {"smoothing_K_minus_1", "wrong label smoothing: eps/(K-1) off-label, 1-eps on-label"},
            {"smoothing_ignored", "label smoothing ignored in the backward (t = onehot)"},
            {"missing_batch_mean", "the 1/B of the batch mean is missing"},
            {"scale_1.0001", "scaled by 1.0001"}}});
  }
}

}  // namespace veridl
