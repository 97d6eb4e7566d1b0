// Fast float32 LayerScale: see kernel.hpp for the contract. Plain loops over pointer arguments that GCC
// vectorizes: over i within a channel run (C x H x W), or over c along a row ([T, D], inner = 1).
#include "veridl/prims/layerScale/kernel.hpp"

#include <algorithm>

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

constexpr size_t kScaleChannelBlock = 256;  // channels whose dgamma sums one pass over the rows carries

// Rows [lo, hi) of out[o,c,i] = gamma[c] in[o,c,i].
void scale_rows(const float* in, const float* gamma, float* out, size_t C, size_t K, size_t lo, size_t hi) {
  if (K == 1) {
    for (size_t o = lo; o < hi; ++o) {
      const float* a = in + o * C;
      float* b = out + o * C;
      for (size_t c = 0; c < C; ++c) b[c] = gamma[c] * a[c];
    }
    return;
  }
  for (size_t o = lo; o < hi; ++o)
    for (size_t c = 0; c < C; ++c) {
      const float g = gamma[c];
      const float* a = in + (o * C + c) * K;
      float* b = out + (o * C + c) * K;
      for (size_t i = 0; i < K; ++i) b[i] = g * a[i];
    }
}

// Channels [lo, hi) of dgamma[c] = sum_{o,i} dy x, in double, kScaleChannelBlock channels per pass over the rows.
void dgamma_channels(const ops::LayerScaleShape& s, const float* x, const float* dy, float* dgamma, size_t lo,
                     size_t hi) {
  const size_t C = s.C, K = s.inner;
  double acc[kScaleChannelBlock];
  for (size_t c0 = lo; c0 < hi; c0 += kScaleChannelBlock) {
    const size_t m = std::min(kScaleChannelBlock, hi - c0);
    std::fill_n(acc, m, 0.0);
    for (size_t o = 0; o < s.rows(); ++o)
      for (size_t j = 0; j < m; ++j) {
        const size_t off = (o * C + c0 + j) * K;
        double a = acc[j];
        for (size_t i = 0; i < K; ++i) a += static_cast<double>(dy[off + i]) * static_cast<double>(x[off + i]);
        acc[j] = a;
      }
    for (size_t j = 0; j < m; ++j) dgamma[c0 + j] = static_cast<float>(acc[j]);
  }
}

}  // namespace

void layerscale_forward(const ops::LayerScaleShape& s, const float* x, const float* gamma, float* y) {
  const size_t C = s.C, K = s.inner;
  for_chunks(s.rows(), s.count(), [=](size_t lo, size_t hi) { scale_rows(x, gamma, y, C, K, lo, hi); });
}

void layerscale_backward(const ops::LayerScaleShape& s, const float* x, const float* gamma, const float* dy,
                         float* dx, float* dgamma) {
  const size_t C = s.C, K = s.inner;
  if (dgamma) for_chunks(C, s.count(), [=](size_t lo, size_t hi) { dgamma_channels(s, x, dy, dgamma, lo, hi); });
  if (dx) for_chunks(s.rows(), s.count(), [=](size_t lo, size_t hi) { scale_rows(dy, gamma, dx, C, K, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
