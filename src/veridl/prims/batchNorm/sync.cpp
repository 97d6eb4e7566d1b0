#include "veridl/prims/batchNorm/sync.hpp"

#include <omp.h>

#include <cmath>
#include <vector>

#include "veridl/prims/batchNorm/kernel.hpp"

namespace veridl::kernels {

namespace {
constexpr size_t kSyncParallelMinElems = size_t(1) << 15;

// Per channel c: f(c) for c in [0, C), over OpenMP threads when the call is large enough.
template <class F>
void per_channel(size_t C, size_t elems, F f) {
  const auto n = static_cast<ptrdiff_t>(C);
#pragma omp parallel for schedule(static) if (elems >= kSyncParallelMinElems && C >= 2)
  for (ptrdiff_t c = 0; c < n; ++c) f(static_cast<size_t>(c));
}

std::vector<double>& scratch(size_t n) {
  thread_local std::vector<double> v;
  if (v.size() < n) v.resize(n);
  return v;
}
}  // namespace

void sync_batchnorm_train_forward(const ops::BatchNormShape& s, double eps, const graph::Collective& all, const float* x,
                                  const float* gamma, const float* beta, float* y, float* mean, float* var, float* r,
                                  double* stats, uint8_t* relu_mask) {
  const size_t HW = s.H * s.W, C = s.C;
  std::vector<double>& S = scratch(C + 1);
  per_channel(C, s.count(), [&](size_t c) {
    double acc = 0.0;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) acc += x[(b * C + c) * HW + k];
    S[c] = acc;
  });
  S[C] = static_cast<double>(s.per_channel());
  all.sum(S.data(), C + 1);
  const double n = S[C];
  per_channel(C, s.count(), [&](size_t c) { S[c] /= n; });  // the means
  std::vector<double> S2(C);  // a second buffer: the means stay in S for the normalisation
  per_channel(C, s.count(), [&](size_t c) {
    double acc = 0.0;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) {
        const double d = static_cast<double>(x[(b * C + c) * HW + k]) - S[c];
        acc += d * d;
      }
    S2[c] = acc;
  });
  all.sum(S2.data(), C);
  per_channel(C, s.count(), [&](size_t c) {
    const double mu = S[c], v = S2[c] / n, rc = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(v);
    r[c] = static_cast<float>(rc);
    stats[c] = mu;
    stats[C + c] = rc;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) {
        const size_t i = (b * C + c) * HW + k;
        const double xh = (static_cast<double>(x[i]) - mu) * rc;
        const float out = static_cast<float>(static_cast<double>(gamma[c]) * xh + static_cast<double>(beta[c]));
        if (relu_mask) relu_mask[i] = static_cast<uint8_t>(out > 0.0f);
        y[i] = relu_mask && !relu_mask[i] ? 0.0f : out;
      }
  });
}

void sync_batchnorm_backward(const ops::BatchNormShape& s, const graph::Collective& all, const float* gamma,
                             const float* r, const double* stats, const float* x, const float* dy_in, float* dx,
                             float* dgamma, float* dbeta, const uint8_t* relu_mask) {
  const size_t HW = s.H * s.W, C = s.C;
  const auto dy = [&](size_t i) { return ops::relu_gated(relu_mask, i, dy_in[i]); };
  const auto xhat = [&](size_t i, size_t c) { return xhat_from_stats(x[i], stats[c], stats[C + c]); };
  std::vector<double>& S = scratch(2 * C + 1);  // sum dy, sum dy xhat, the count
  per_channel(C, s.count(), [&](size_t c) {
    double a = 0.0, bsum = 0.0;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) {
        const size_t i = (b * C + c) * HW + k;
        a += dy(i);
        bsum += static_cast<double>(dy(i)) * static_cast<double>(xhat(i, c));
      }
    S[c] = a;
    S[C + c] = bsum;
    if (dbeta) dbeta[c] = static_cast<float>(a);  // this rank's part: the gradient all-reduce adds the others'
    if (dgamma) dgamma[c] = static_cast<float>(bsum);
  });
  S[2 * C] = static_cast<double>(s.per_channel());
  all.sum(S.data(), 2 * C + 1);  // every rank takes part, whether or not it wants dx
  if (!dx) return;
  const double n = S[2 * C];
  per_channel(C, s.count(), [&](size_t c) {
    const double g = gamma[c], A = g * S[c], Bs = g * S[C + c], k_c = static_cast<double>(r[c]) / n;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) {
        const size_t i = (b * C + c) * HW + k;
        dx[i] = static_cast<float>(k_c * (n * g * static_cast<double>(dy(i)) - A - static_cast<double>(xhat(i, c)) * Bs));
      }
  });
}

}  // namespace veridl::kernels
