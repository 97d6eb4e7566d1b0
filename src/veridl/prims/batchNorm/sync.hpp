// Synchronized BatchNorm's float32 kernels (data-parallel training, docs/distributed.md): BatchNorm in Train mode over
// a rank's shard of the global batch, with every per-channel statistic summed over all ranks through a
// graph::Collective. The computation is the one sync_reference.hpp models and its contracts check:
//
//   forward    S1 = allreduce(sum x, count), mean = S1 / n; S2 = allreduce(sum (x - mean)^2), var = S2 / n (biased),
//              r = 1/sqrt(var + eps), xhat = (x - mean) r, y = gamma xhat + beta           (n: the global count)
//   backward   dgamma = sum dy xhat, dbeta = sum dy over the shard (the gradient all-reduce adds the ranks' parts);
//              A = allreduce(sum dy), Bs = allreduce(sum dy xhat);
//              dx = (r/n)(n dxhat - gamma A - xhat gamma Bs), dxhat = gamma dy
//
// Sums in double (each channel's values in example order, then k), the per-element arithmetic in double, rounded to
// float on store; each channel by one thread (bit-identical for any thread count). The all-reduce adds the ranks'
// partial sums in rank order: every rank gets the same statistics, bit for bit. Not the single-process kernel's
// summation order (kernel.hpp: eight partial sums per channel), so one rank with synchronized BatchNorm agrees with
// the plain kernel to float rounding, not bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/batchNorm/reference.hpp"

namespace veridl::kernels {

// relu_mask: nullptr, or the fused ReLU's mask (kernel.hpp): y = relu(BatchNorm(x)) and dy gated by the mask.
// stats: [2C] doubles, the mean and r the forward normalised with (kernel.hpp's layout); the backward recomputes xhat
// from x with them, the float the forward computed.
void sync_batchnorm_train_forward(const ops::BatchNormShape& s, double eps, const graph::Collective& all, const float* x,
                                  const float* gamma, const float* beta, float* y, float* mean, float* var, float* r,
                                  double* stats, uint8_t* relu_mask);
void sync_batchnorm_backward(const ops::BatchNormShape& s, const graph::Collective& all, const float* gamma,
                             const float* r, const double* stats, const float* x, const float* dy, float* dx,
                             float* dgamma, float* dbeta, const uint8_t* relu_mask);

}  // namespace veridl::kernels
