// Chapter 5 contracts of BatchNorm (input, gamma and beta gradients), their sweep, and the broken
// backwards they must reject.
#include <fmt/core.h>

#include "veridl/prims/batchNorm/mutants.hpp"
#include "veridl/prims/batchNorm/primitive.hpp"
#include "veridl/prims/batchNorm/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_dense_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_batchnorm_variant(const ops::BatchNormShape& s, double eps, const std::string& variant) {
  if (variant.empty()) return make_vjp("batchnorm", ops::BatchNormOp{s, eps});
  return make_vjp("batchnorm[" + variant + "]", ops::BatchNormMutantOp{{s, eps}, variant});
}

void prims::BatchNorm::register_contracts(Registry& r) {
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
