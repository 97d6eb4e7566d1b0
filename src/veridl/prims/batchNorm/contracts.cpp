// Chapter 5 contracts of BatchNorm (input, gamma and beta gradients), their sweep, and the broken
// backwards they must reject.
#include <fmt/core.h>

#include <array>

#include "veridl/prims/batchNorm/mutants.hpp"
#include "veridl/prims/batchNorm/primitive.hpp"
#include "veridl/prims/batchNorm/reference.hpp"
#include "veridl/prims/batchNorm/sync_reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_dense_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
// relu: the fused ReLU (net/fuse.hpp), relu(BatchNorm(x)).
Vjp make_batchnorm_variant(const ops::BatchNormShape& s, double eps, const std::string& variant, bool relu = false) {
  const std::string name = relu ? "batchnorm_relu" : "batchnorm";
  if (variant.empty()) return make_vjp(name, ops::BatchNormOp{s, eps, relu});
  return make_vjp(name + "[" + variant + "]", ops::BatchNormMutantOp{{s, eps, relu}, variant});
}

Vjp make_sync_batchnorm_variant(const ops::BatchNormShape& s, const std::vector<size_t>& shards,
                                const std::string& variant) {
  ops::SyncBatchNormOp op;
  op.s = s;
  op.eps = ops::kBatchNormEps;
  op.shards = shards;
  op.variant = variant;
  return make_vjp(variant.empty() ? "sync_batchnorm" : "sync_batchnorm[" + variant + "]", op);
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
      // With the fused ReLU: the same statements for dy gated by the ReLU's mask (a real-run tape and a random one).
      for (auto [B, C, H, W] : {std::array<size_t, 4>{2, 1, 2, 2}, {3, 2, 1, 3}, {2, 2, 3, 2}}) {
        ops::BatchNormShape s{B, C, H, W};
        cases.push_back({fmt::format("B={} C={} H={} W={} eps=1e-05 + ReLU", B, C, H, W),
                         [s](const std::string& v) { return make_batchnorm_variant(s, ops::kBatchNormEps, v, true); },
                         Sample::Normal, false});
      }
      ops::BatchNormShape prod{8, 32, 8, 8};
      cases.push_back({"B=8 C=32 H=8 W=8 eps=1e-05 (a conv-BN layer)",
                       [prod](const std::string& v) { return make_batchnorm_variant(prod, ops::kBatchNormEps, v); },
                       Sample::Normal, true});
      cases.push_back(
          {"B=8 C=32 H=8 W=8 eps=1e-05 + ReLU (a fused conv-BN-ReLU layer)",
           [prod](const std::string& v) { return make_batchnorm_variant(prod, ops::kBatchNormEps, v, true); },
           Sample::Normal, true});
      return cases;
    };
    const MutantInfo relu_gate{"relu_mask_ignored", "the fused ReLU's mask ignored: dy not gated (relu cases)"};
    r.add({"bn_input_grad_correct", 5,
           "dx = (r/n)(n dxhat - sum dxhat - xhat sum(xhat dxhat)),  dxhat = gamma dy,  r = rsqrt(var + eps)", {"x"},
           sweep(),
           {{"dx_n_minus_1", "1/(n-1) in the projection term"},
            {"dx_missing_projection", "the xhat sum(xhat dxhat) term is missing"},
            {"dx_eps_dropped", "r recomputed in the backward from the variance without eps (invisible to FD)"},
            {"dx_gamma_missing", "dxhat = dy: gamma forgotten"},
            {"dx_scale_1.0001", "dx scaled by 1.0001"},
            relu_gate}});
    r.add({"bn_gamma_grad_correct", 5, "dgamma_c = sum_{b,h,w} dy xhat", {"gamma"}, sweep(),
           {{"dgamma_without_xhat", "dgamma = sum dy (xhat forgotten)"},
            {"dgamma_x_instead_of_xhat", "dgamma = sum dy x (the unnormalised input)"},
            {"dgamma_mean", "mean over the channel instead of the sum"},
            {"dgamma_scale_1.0001", "dgamma scaled by 1.0001"},
            relu_gate}});
    r.add({"bn_beta_grad_correct", 5, "dbeta_c = sum_{b,h,w} dy", {"beta"}, sweep(),
           {{"dbeta_mean", "mean over the channel instead of the sum"},
            {"dbeta_times_gamma", "dbeta = sum gamma dy (dxhat instead of dy)"},
            {"dbeta_first_example_only", "only the first example of the batch contributes"},
            {"dbeta_scale_1.0001", "dbeta scaled by 1.0001"},
            relu_gate}});
  }
  // Synchronized BatchNorm (docs/distributed.md): the backward as R ranks compute it from all-reduced sums, against the
  // pdiv of the global batch's BatchNorm. Shards of equal and unequal sizes (the first B mod R ranks take one more).
  {
    auto sweep = [] {
      std::vector<ContractCase> cases;
      for (auto [N, R] : {std::pair<size_t, size_t>{2, 2}, {3, 2}, {4, 2}, {5, 2}, {4, 3}, {5, 3}, {4, 4}})
        for (size_t C : {1, 2})
          for (auto [H, W] : {std::pair<size_t, size_t>{1, 1}, {2, 3}}) {
            ops::BatchNormShape s{N, C, H, W};
            const std::vector<size_t> shards = ops::shard_sizes(N, R);
            cases.push_back({fmt::format("B={} over {} ranks C={} H={} W={}", N, R, C, H, W),
                             [s, shards](const std::string& v) { return make_sync_batchnorm_variant(s, shards, v); },
                             Sample::Normal, false});
          }
      ops::BatchNormShape prod{8, 32, 8, 8};
      const std::vector<size_t> shards = ops::shard_sizes(8, 4);
      cases.push_back({"B=8 over 4 ranks C=32 H=8 W=8 (a conv-BN layer)",
                       [prod, shards](const std::string& v) { return make_sync_batchnorm_variant(prod, shards, v); },
                       Sample::Normal, true});
      return cases;
    };
    r.add({"sync_bn_input_grad_correct", 5,
           "per rank: dx = (r/n)(n dxhat - A - xhat Bs), A = allreduce(sum dxhat), Bs = allreduce(sum xhat dxhat), "
           "n = global count",
           {"x"}, sweep(),
           {{"dx_local_statistics", "per-rank BatchNorm's backward: local sums and local count"},
            {"dx_sum_dxhat_not_reduced", "sum dxhat is not all-reduced"},
            {"dx_sum_xhat_dxhat_not_reduced", "sum xhat dxhat is not all-reduced"},
            {"dx_local_count", "the all-reduced sums divided by the rank's own count"},
            {"dx_count_ranks_times_b", "n = ranks x rank 0's shard (wrong when the shards differ)"},
            {"dx_reduced_twice", "the already-reduced sums all-reduced again"}}});
    r.add({"sync_bn_gamma_grad_correct", 5, "dgamma = allreduce(sum dy xhat) (the gradient all-reduce)", {"gamma"},
           sweep(),
           {{"dgamma_rank0_only", "no gradient all-reduce: rank 0's part only"},
            {"dgamma_averaged_over_ranks", "the ranks' parts averaged instead of added"}}});
    r.add({"sync_bn_beta_grad_correct", 5, "dbeta = allreduce(sum dy) (the gradient all-reduce)", {"beta"}, sweep(),
           {{"dbeta_rank0_only", "no gradient all-reduce: rank 0's part only"},
            {"dbeta_averaged_over_ranks", "the ranks' parts averaged instead of added"},
            {"dbeta_reduced_twice", "all-reduced twice (ranks x the sum)"}}});
  }
}

}  // namespace veridl
