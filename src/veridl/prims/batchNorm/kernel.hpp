// Fast float32 BatchNorm kernels (training mode over NCHW, per-channel statistics over n = N*H*W).
// Same contracts as the templated reference in prims/batchNorm/reference.hpp, which they are differentially tested
// against (tests/test_relu_bn_kernels.cpp):
//
//   batchnorm_train_forward   mean[c], var[c] (biased, /n), r[c] = 1/sqrt(var[c] + eps),
//                             xhat = (x - mean) r, y = gamma xhat + beta
//   batchnorm_backward        dx = (r/n)(n dxhat - sum dxhat - xhat sum(xhat dxhat)), dxhat = gamma dy,
//                             dgamma = sum dy xhat, dbeta = sum dy       (dx/dgamma/dbeta may be nullptr)
//
// xhat is not stored: the forward writes the double mean and r it normalised with (stats: mu[c] at stats[c], r[c] at
// stats[C + c]) and the backward recomputes each xhat from x with them, the float the forward computed (the same
// double difference and product, rounded once). A training step then writes one activation-sized array per
// BatchNorm fewer, and keeps x (the backward's input) instead of xhat: BatchNorm is bound by memory in a step
// (bench_kernels --batchnorm, "from memory").
//   batchnorm_eval_forward    y = gamma (x - mean) / sqrt(var + eps) + beta   (given running statistics)
//   batchnorm_update_running  running = (1 - m) running + m batch, for mean and (biased) var
//
// The fused ReLU (the plan's fusion of a BatchNorm into the ReLU that is its only consumer, net/fuse.hpp): given a
// relu_mask the train forward writes y = relu(BatchNorm(x)) and the mask (y > 0, strict), and the backward reads dy
// gated by it (mask ? dy : 0); the eval forward takes a flag. Bit for bit the BatchNorm kernel followed by the
// ReLU kernel (prims/relu/kernel.hpp), with one pass over the activations instead of three.
//                             (m = ops::running_stat_momentum(step): 1.0 on step 1, then 0.1)
//
// Precision: every statistic (mean, var, sum dy, sum dy xhat) is accumulated in double, in a fixed
// blocked order: 8 double partial sums (lane l takes the elements k = l mod 8 of the full 8-blocks of
// each contiguous H*W run, a ninth the runs' tails), the runs of a channel in batch order, one fixed
// combining tree. Mean, var, r and the per-element arithmetic are computed in double and rounded to
// float once on store. So the kernels agree with ops:: at T = double to float rounding
// of each output.
//
// Determinism: each channel (its statistics and all its output elements) is computed entirely by one
// thread, its runs in batch order, so results are bit-identical for any OMP_NUM_THREADS. The channels go in
// groups of up to 1 MiB of values each, walked image by image (memory in runs of a whole group's planes, not one
// plane's); threads split the groups (schedule(static)) once a call has at least kBatchNormParallelMinElems
// elements and C >= 2; smaller calls run on the calling thread. The grouping changes no value.
//
// Outputs must not alias inputs (except that the eval forward may write y over x).
#pragma once

#include <cstddef>
#include <cstdint>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/batchNorm/reference.hpp"

namespace veridl::kernels {

inline constexpr size_t kBatchNormParallelMinElems = size_t(1) << 15;

// The xhat of a value x of channel c, from stats' mu[c] and r[c]: the float the forward normalised with, which the
// backward (and synchronized BatchNorm's, sync.cpp) recomputes.
inline float xhat_from_stats(float x, double mu, double r) {
  return static_cast<float>((static_cast<double>(x) - mu) * r);
}

// relu_mask: nullptr, or the fused ReLU's mask [N C H W] (written by the forward, read by the backward).
// stats: [2C] doubles (written by the forward, read by the backward with the same x).
VERIDL_KERNEL(batchnorm_train_forward, void(const ops::BatchNormShape& s, double eps, const float* x, const float* gamma, const float* beta, float* y, float* mean, float* var, float* r, double* stats, uint8_t* relu_mask));

VERIDL_KERNEL(batchnorm_backward, void(const ops::BatchNormShape& s, const float* gamma, const float* r, const double* stats, const float* x, const float* dy, float* dx, float* dgamma, float* dbeta, const uint8_t* relu_mask));

VERIDL_KERNEL(batchnorm_eval_forward, void(const ops::BatchNormShape& s, double eps, const float* x, const float* gamma, const float* beta, const float* mean, const float* var, float* y, bool relu));

VERIDL_KERNEL(batchnorm_update_running, void(size_t C, double momentum, const float* batch_mean, const float* batch_var, float* running_mean, float* running_var));

}  // namespace veridl::kernels
