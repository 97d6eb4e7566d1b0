// Chapter 3 (ReLU) and chapter 5 (BatchNorm) contracts, their sweeps, and the broken backwards they
// must reject.
#include <fmt/core.h>

#include "veridl/ops/batchnorm.hpp"
#include "veridl/ops/relu.hpp"
#include "veridl/ops/relu_bn_mutants.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_dense_variant) so that composite contracts can put these records, or their
// mutants, inside a composition.
Vjp make_relu_variant(const ops::ReluShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("relu", ops::ReluOp{s});
  return make_vjp("relu[" + variant + "]", ops::ReluMutantOp{{s}, variant});
}

Vjp make_batchnorm_variant(const ops::BatchNormShape& s, double eps, const std::string& variant) {
  if (variant.empty()) return make_vjp("batchnorm", ops::BatchNormOp{s, eps});
  return make_vjp("batchnorm[" + variant + "]", ops::BatchNormMutantOp{{s, eps}, variant});
}

void register_relu_bn_contracts(Registry& r) {
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
  {
    auto sweep = [] {
      std::vector<ContractCase> cases;
      for (size_t B : {1, 2, 3})
        for (size_t C : {1, 2})
          for (size_t H : {1, 2, 3})
            for (size_t W : {1, 2, 3})
              for (double eps : {1e-5, 0.1}) {
                if (B * H * W < 2) continue;
                ops::BatchNormShape s{B, C, H, W};
                cases.push_back({fmt::format("B={} C={} H={} W={} eps={}", B, C, H, W, eps),
                                 [s, eps](const std::string& v) { return make_batchnorm_variant(s, eps, v); },
                                 Sample::Normal, false});
              }
      ops::BatchNormShape prod{8, 32, 8, 8};
      cases.push_back({"B=8 C=32 H=8 W=8 eps=1e-05 (a conv-BN layer)",
                       [prod](const std::string& v) { return make_batchnorm_variant(prod, ops::kBatchNormEps, v); },
                       Sample::Normal, true});
      return cases;
    };
    r.add({"bn_input_grad_correct", 5,
           "dx = (r/n)(n dxhat - sum dxhat - xhat sum(xhat dxhat)),  dxhat = gamma dy,  r = rsqrt(var + eps)", {"x"},
           sweep(),
           {{"dx_n_minus_1", "1/(n-1) in the projection term"},
            {"dx_missing_projection", "the xhat sum(xhat dxhat) term is missing"},
            {"dx_eps_dropped", "r recomputed in the backward from the variance without eps (invisible to FD)"},
            {"dx_gamma_missing", "dxhat = dy: gamma forgotten"},
            {"dx_scale_1.0001", "dx scaled by 1.0001"}}});
    r.add({"bn_gamma_grad_correct", 5, "dgamma_c = sum_{b,h,w} dy xhat", {"gamma"}, sweep(),
           {{"dgamma_without_xhat", "dgamma = sum dy (xhat forgotten)"},
            {"dgamma_x_instead_of_xhat", "dgamma = sum dy x (the unnormalised input)"},
            {"dgamma_mean", "mean over the channel instead of the sum"},
            {"dgamma_scale_1.0001", "dgamma scaled by 1.0001"}}});
    r.add({"bn_beta_grad_correct", 5, "dbeta_c = sum_{b,h,w} dy", {"beta"}, sweep(),
           {{"dbeta_mean", "mean over the channel instead of the sum"},
            {"dbeta_times_gamma", "dbeta = sum gamma dy (dxhat instead of dy)"},
            {"dbeta_first_example_only", "only the first example of the batch contributes"},
            {"dbeta_scale_1.0001", "dbeta scaled by 1.0001"}}});
  }
}

}  // namespace veridl
