// BatchNorm (book ch. 5), training mode, over NCHW: per channel c the statistics run over the
// n = N*H*W values x[b,c,h,w]; affine parameters gamma[C], beta[C].
//
//   forward (train)  mu_c   = (1/n) sum x                    var_c = (1/n) sum (x - mu_c)^2   (biased)
//                    r_c    = rsqrt(var_c + eps)             (the atom arsqrt; saved)
//                    xhat   = (x - mu_c) r_c                 (saved)
//                    y      = gamma_c xhat + beta_c
//   VJP              dxhat  = gamma_c dy
//                    dx     = (r_c/n) (n dxhat - sum dxhat - xhat sum(xhat dxhat))   bn_input_grad_correct
//                    dgamma = sum dy xhat                                          bn_gamma_grad_correct
//                    dbeta  = sum dy                                               bn_beta_grad_correct
//   (the sums run over the channel's n values).
//
// Fused ReLU (the plan's fusion of a BatchNorm into the ReLU that is its only consumer, net/fuse.hpp): with a mask
// the forward goes on to out = relu(y) (mask = D.gt(y), strict, through the decision tape as prims/relu does), and
// the backward first gates dy by the mask (dy' = mask ? dy : 0) and then is the VJP above of dy'. The composition
// of the two ops, bit for bit: the kernels compute the BatchNorm output, then the ReLU of that float.
//
// Same atoms (verification.md 4.1): the backward reuses the r and xhat the forward saved and combines
// them algebraically. It never recomputes (x - mu)/(var + eps), r^2 (var + eps) = 1, or a fresh
// rsqrt: those rely on identities between atoms that the field check cannot see and are rejected.
// eps enters as T(eps) (an exact dyadic embedding), 1/n as T(1)/T(n). The three-term form holds
// exactly in the field because sum (x - mu) = 0 and r^2 (x_i - mu)(x_j - mu) = xhat_i xhat_j are
// polynomial identities, not identities between atom values.
//
// Eval mode uses given running statistics: y = gamma (x - mean) rsqrt(var + eps) + beta, written with
// the same arithmetic as the train forward, so that eval with the batch's own mean/var reproduces the
// train output exactly. Running statistics follow the original (reference-system section 2.2):
//   running = (1 - m) running + m batch, m = 0.1 (1.0 on the very first global step),
// and the running variance is fed the *biased* batch variance (divide by n = N*H*W), exactly as the
// original's train step does -- not PyTorch's unbiased n/(n-1) correction.
//
// Written once over the scalar type: the reference the float kernels (prims/batchNorm/kernel.hpp) are
// tested against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/prims/relu/reference.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl::ops {

inline constexpr double kBatchNormEps = 1e-5;        // the original's BN eps (reference 9.3)
inline constexpr double kBatchNormMomentum = 0.1;    // EMA momentum of the running statistics (2.2)

struct BatchNormShape {
  size_t N = 1, C = 1, H = 1, W = 1;
  size_t count() const { return N * C * H * W; }  // elements of x / y
  size_t per_channel() const { return N * H * W; }  // n: values per channel statistic
};

// The momentum the original uses at a 1-based global step: 1.0 on step 1 (the running statistics
// start as the first batch's), `m` afterwards.
inline double running_stat_momentum(uint64_t global_step, double m = kBatchNormMomentum) {
  return global_step <= 1 ? 1.0 : m;
}

// The fused ReLU's gate of the backward: dy where the forward's ReLU passed its input (mask = nullptr: no ReLU).
template <class T>
T relu_gated(const uint8_t* relu_mask, size_t i, const T& dy) {
  return !relu_mask || relu_mask[i] ? dy : T(0);
}

// Train forward. Writes y[N*C*H*W], and per channel mean[C], var[C] (biased: the running-stat update
// consumes it), r[C] = rsqrt(var + eps), and xhat[N*C*H*W] unless xhat is nullptr; mean, r and xhat are what the
// backward reuses (the executor's recomputes xhat from mean and r: batchnorm_xhat). With relu_mask (the fused ReLU;
// D then decides): y = relu(BatchNorm(x)) and the mask [N*C*H*W].
template <class T>
void batchnorm_train_forward(const BatchNormShape& s, double eps, const T* x, const T* gamma, const T* beta, T* y,
                             T* mean, T* var, T* r, T* xhat, uint8_t* relu_mask = nullptr, Decisions* D = nullptr) {
  const size_t HW = s.H * s.W;
  const T inv_n = T(1) / T(static_cast<int64_t>(s.per_channel()));
  const T teps = T(eps);
  for (size_t c = 0; c < s.C; ++c) {
    T sum = T(0);
    for (size_t b = 0; b < s.N; ++b) {
      const T* xr = x + (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) sum += xr[k];
    }
    const T mu = sum * inv_n;
    T sq = T(0);
    for (size_t b = 0; b < s.N; ++b) {
      const T* xr = x + (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) {
        const T d = xr[k] - mu;
        sq += d * d;
      }
    }
    const T v = sq * inv_n;
    const T rc = arsqrt(v + teps);
    mean[c] = mu;
    var[c] = v;
    r[c] = rc;
    for (size_t b = 0; b < s.N; ++b) {
      const size_t off = (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) {
        const T xh = (x[off + k] - mu) * rc;
        if (xhat) xhat[off + k] = xh;
        y[off + k] = gamma[c] * xh + beta[c];
      }
    }
  }
  if (relu_mask) relu_forward(ReluShape{s.count()}, y, y, relu_mask, *D);  // the fused ReLU, in place
}

// The train forward's xhat[N*C*H*W] = (x - mean) r again, from its x and its saved mean[C] and r[C]: the same atoms
// combined the same way, so the same values (what the executor's backward uses instead of a kept xhat).
template <class T>
void batchnorm_xhat(const BatchNormShape& s, const T* x, const T* mean, const T* r, T* xhat) {
  const size_t HW = s.H * s.W;
  for (size_t b = 0; b < s.N; ++b)
    for (size_t c = 0; c < s.C; ++c) {
      const size_t off = (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) xhat[off + k] = (x[off + k] - mean[c]) * r[c];
    }
}

// Backward from the saved r[C] and xhat. Writes dx, dgamma[C], dbeta[C] (overwrites); any of the three
// may be nullptr when that gradient is not wanted. relu_mask: the fused ReLU's (dy gated by it), or nullptr.
template <class T>
void batchnorm_backward(const BatchNormShape& s, const T* gamma, const T* r, const T* xhat, const T* dy, T* dx,
                        T* dgamma, T* dbeta, const uint8_t* relu_mask = nullptr) {
  const size_t HW = s.H * s.W;
  const T n = T(static_cast<int64_t>(s.per_channel()));
  const T inv_n = T(1) / n;
  for (size_t c = 0; c < s.C; ++c) {
    T sum_dy = T(0), sum_dy_xhat = T(0), sum_dxhat = T(0), sum_xhat_dxhat = T(0);
    for (size_t b = 0; b < s.N; ++b) {
      const size_t off = (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) {
        const T g = relu_gated(relu_mask, off + k, dy[off + k]), xh = xhat[off + k];
        const T dxh = gamma[c] * g;
        sum_dy += g;
        sum_dy_xhat += g * xh;
        sum_dxhat += dxh;
        sum_xhat_dxhat += xh * dxh;
      }
    }
    if (dgamma) dgamma[c] = sum_dy_xhat;
    if (dbeta) dbeta[c] = sum_dy;
    if (!dx) continue;
    const T k_c = r[c] * inv_n;
    for (size_t b = 0; b < s.N; ++b) {
      const size_t off = (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) {
        const T dxh = gamma[c] * relu_gated(relu_mask, off + k, dy[off + k]);
        dx[off + k] = k_c * (n * dxh - sum_dxhat - xhat[off + k] * sum_xhat_dxhat);
      }
    }
  }
}

// Eval forward with given (running) statistics mean[C], var[C]:
//   y = gamma (x - mean) rsqrt(var + eps) + beta, then relu(y) when `relu` (the fused ReLU; D decides)
// (the train forward's arithmetic, so eval with the batch's own mean/var gives the train y exactly).
template <class T>
void batchnorm_eval_forward(const BatchNormShape& s, double eps, const T* x, const T* gamma, const T* beta,
                            const T* mean, const T* var, T* y, bool relu = false, Decisions* D = nullptr) {
  const size_t HW = s.H * s.W;
  const T teps = T(eps);
  for (size_t c = 0; c < s.C; ++c) {
    const T rc = arsqrt(var[c] + teps);
    for (size_t b = 0; b < s.N; ++b) {
      const size_t off = (b * s.C + c) * HW;
      for (size_t k = 0; k < HW; ++k) y[off + k] = gamma[c] * ((x[off + k] - mean[c]) * rc) + beta[c];
    }
  }
  if (relu) relu_forward(ReluShape{s.count()}, y, y, nullptr, *D);  // the fused ReLU, in place, no mask kept
}

// running = (1 - m) running + m batch, per channel, for the mean and the (biased) variance.
// m = running_stat_momentum(step): 1.0 on the first global step, 0.1 afterwards in the original.
template <class T>
void batchnorm_update_running(size_t C, double momentum, const T* batch_mean, const T* batch_var, T* running_mean,
                              T* running_var) {
  const T m = T(momentum);
  const T keep = T(1) - m;
  for (size_t c = 0; c < C; ++c) {
    running_mean[c] = keep * running_mean[c] + m * batch_mean[c];
    running_var[c] = keep * running_var[c] + m * batch_var[c];
  }
}

// The record form: inputs {x, gamma, beta}, output y. Saved: mean, var, r, xhat (in that order); with the fused
// ReLU (relu) the mask is kept in Ctx::dec, one entry per element, as ReluOp keeps it.
struct BatchNormOp {
  BatchNormShape s;
  double eps = kBatchNormEps;
  bool relu = false;
  std::vector<std::string> in_names() const { return {"x", "gamma", "beta"}; }
  std::vector<size_t> in_sizes() const { return {s.count(), s.C, s.C}; }
  size_t out_size() const { return s.count(); }

  enum Saved : size_t { kMean = 0, kVar = 1, kR = 2, kXhat = 3 };

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.count());
    c.saved = {Vec<T>(s.C), Vec<T>(s.C), Vec<T>(s.C), Vec<T>(s.count())};
    std::vector<uint8_t> mask(relu ? s.count() : 0);
    batchnorm_train_forward(s, eps, in[0].data(), in[1].data(), in[2].data(), c.out.data(), c.saved[kMean].data(),
                            c.saved[kVar].data(), c.saved[kR].data(), c.saved[kXhat].data(),
                            relu ? mask.data() : nullptr, &D);
    c.dec.assign(mask.begin(), mask.end());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.C), Vec<T>(s.C)};
    const std::vector<uint8_t> mask = ReluOp::mask_of(c);  // the fused ReLU's (empty without it)
    batchnorm_backward(s, in[1].data(), c.saved[kR].data(), c.saved[kXhat].data(), dy.data(), g[0].data(),
                       g[1].data(), g[2].data(), relu ? mask.data() : nullptr);
    return g;
  }
};

}  // namespace veridl::ops
