// Synchronized BatchNorm (data-parallel training, docs/distributed.md): the global batch of N examples is split over
// R ranks (shards of consecutive examples, sizes n_0 .. n_{R-1}); each rank holds only its shard. The statistics are
// the global batch's: every per-channel sum is computed per shard and then all-reduced (added over the shards in rank
// order). The backward is computed per shard from the all-reduced sums:
//
//   per shard s       A_s = sum_{shard s} dxhat          Bs_s = sum_{shard s} xhat dxhat        (dxhat = gamma dy)
//   all-reduce        A = sum_s A_s                      Bs = sum_s Bs_s                        n = N H W (global)
//   per shard s       dx = (r/n)(n dxhat - A - xhat Bs)                       sync_bn_input_grad_correct
//   gradient reduce   dgamma = sum_s (sum_{shard s} dy xhat)                  sync_bn_gamma_grad_correct
//                     dbeta  = sum_s (sum_{shard s} dy)                       sync_bn_beta_grad_correct
//
// The contract checks this sharded backward against the pdiv of the *global-batch* BatchNorm forward
// (BatchNormOp::forward over all N examples): the record below has that forward and the sharded backward.
// sync_batchnorm_forward_sharded is the forward the ranks compute (partial sums of x, all-reduce, mean; partial sums of
// (x - mean)^2, all-reduce, var), equal to the global forward exactly in a field (tests/test_distributed.cpp checks it).
// The float kernels that run it are prims/batchNorm/sync.hpp.
#pragma once

#include <cstddef>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/batchNorm/reference.hpp"

namespace veridl::ops {

// The shards' sizes for a batch of N examples over R ranks: the first N mod R ranks take one more (dist::shard_of).
inline std::vector<size_t> shard_sizes(size_t N, size_t R) {
  std::vector<size_t> v(R, N / R);
  for (size_t r = 0; r < N % R; ++r) ++v[r];
  return v;
}

// The forward as R ranks compute it: per-shard partial sums, all-reduced in rank order.
template <class T>
void sync_batchnorm_forward_sharded(const BatchNormShape& s, const std::vector<size_t>& shards, double eps, const T* x,
                                    const T* gamma, const T* beta, T* y, T* mean, T* var, T* r, T* xhat) {
  const size_t HW = s.H * s.W;
  const T n = T(static_cast<int64_t>(s.per_channel()));
  for (size_t c = 0; c < s.C; ++c) {
    T S1 = T(0);
    for (size_t sh = 0, b0 = 0; sh < shards.size(); b0 += shards[sh++]) {
      T part = T(0);
      for (size_t b = b0; b < b0 + shards[sh]; ++b)
        for (size_t k = 0; k < HW; ++k) part += x[(b * s.C + c) * HW + k];
      S1 += part;
    }
    const T mu = S1 / n;
    T S2 = T(0);
    for (size_t sh = 0, b0 = 0; sh < shards.size(); b0 += shards[sh++]) {
      T part = T(0);
      for (size_t b = b0; b < b0 + shards[sh]; ++b)
        for (size_t k = 0; k < HW; ++k) {
          const T d = x[(b * s.C + c) * HW + k] - mu;
          part += d * d;
        }
      S2 += part;
    }
    const T v = S2 / n;
    const T rc = arsqrt(v + T(eps));
    mean[c] = mu;
    var[c] = v;
    r[c] = rc;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) {
        const size_t i = (b * s.C + c) * HW + k;
        xhat[i] = (x[i] - mu) * rc;
        y[i] = gamma[c] * xhat[i] + beta[c];
      }
  }
}

// The record: inputs {x, gamma, beta} of the global batch; forward = the global BatchNorm; backward = the R-shard
// computation above. `variant` names a mutant (sync_bn mutants: what a distributed implementation gets wrong).
struct SyncBatchNormOp : BatchNormOp {
  std::vector<size_t> shards;  // examples per rank, summing to s.N
  std::string variant;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    if (std::accumulate(shards.begin(), shards.end(), size_t{0}) != s.N)
      throw std::invalid_argument("sync batchnorm: the shards do not add up to the batch");
    const size_t HW = s.H * s.W, R = shards.size();
    const T* gamma = in[1].data();
    const Vec<T>& r = c.saved[kR];
    const Vec<T>& xhat = c.saved[kXhat];
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.C), Vec<T>(s.C)};
    const T n_global = T(static_cast<int64_t>(s.per_channel()));
    for (size_t ch = 0; ch < s.C; ++ch) {
      // Per shard: the two backward sums and the local parameter gradients.
      std::vector<T> A(R, T(0)), Bs(R, T(0)), dg(R, T(0)), db(R, T(0));
      for (size_t sh = 0, b0 = 0; sh < R; b0 += shards[sh++])
        for (size_t b = b0; b < b0 + shards[sh]; ++b)
          for (size_t k = 0; k < HW; ++k) {
            const size_t i = (b * s.C + ch) * HW + k;
            const T dxh = gamma[ch] * dy[i];
            A[sh] += dxh;
            Bs[sh] += xhat[i] * dxh;
            dg[sh] += dy[i] * xhat[i];
            db[sh] += dy[i];
          }
      // The all-reduce (in rank order), and the gradient all-reduce of dgamma / dbeta.
      T Ag = T(0), Bg = T(0), dgs = T(0), dbs = T(0);
      for (size_t sh = 0; sh < R; ++sh) {
        Ag += A[sh];
        Bg += Bs[sh];
        dgs += dg[sh];
        dbs += db[sh];
      }
      const T R_t = T(static_cast<int64_t>(R));
      if (variant == "dgamma_rank0_only") dgs = dg[0];
      if (variant == "dgamma_averaged_over_ranks") dgs = dgs / R_t;
      if (variant == "dbeta_rank0_only") dbs = db[0];
      if (variant == "dbeta_averaged_over_ranks") dbs = dbs / R_t;
      if (variant == "dbeta_reduced_twice") dbs = dbs * R_t;
      g[1][ch] = dgs;
      g[2][ch] = dbs;
      for (size_t sh = 0, b0 = 0; sh < R; b0 += shards[sh++]) {
        T n = n_global, a = Ag, bb = Bg;
        const T n_local = T(static_cast<int64_t>(shards[sh] * HW));
        if (variant == "dx_local_statistics") {  // per-rank BatchNorm's backward: local sums, local count
          n = n_local;
          a = A[sh];
          bb = Bs[sh];
        } else if (variant == "dx_sum_dxhat_not_reduced") {
          a = A[sh];
        } else if (variant == "dx_sum_xhat_dxhat_not_reduced") {
          bb = Bs[sh];
        } else if (variant == "dx_local_count") {
          n = n_local;
        } else if (variant == "dx_count_ranks_times_b") {  // n = R b with b rank 0's shard (wrong for unequal shards)
          n = T(static_cast<int64_t>(R * shards[0] * HW));
        } else if (variant == "dx_reduced_twice") {  // the already-reduced sums all-reduced again
          a = a * R_t;
          bb = bb * R_t;
        } else if (!variant.empty() && variant.rfind("dgamma_", 0) != 0 && variant.rfind("dbeta_", 0) != 0) {
          throw std::invalid_argument("unknown sync batchnorm mutant '" + variant + "'");
        }
        const T k_c = r[ch] / n;
        for (size_t b = b0; b < b0 + shards[sh]; ++b)
          for (size_t k = 0; k < HW; ++k) {
            const size_t i = (b * s.C + ch) * HW + k;
            const T dxh = gamma[ch] * dy[i];
            g[0][i] = k_c * (n * dxh - a - xhat[i] * bb);
          }
      }
    }
    return g;
  }
};

}  // namespace veridl::ops
