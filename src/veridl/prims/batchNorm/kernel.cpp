// Fast float32 BatchNorm: see kernel.hpp for the contracts, the precision and the determinism
// argument. A channel's values are N runs of H*W contiguous floats (NCHW); every loop walks those runs
// with unit stride. The reductions accumulate in double in 8 lanes (lane l takes the elements
// k = l (mod 8) of each full block of 8 in a run, the run's tail goes to a scalar); the AVX2 build
// keeps the lanes in two __m256d registers, the portable build in an array (same lane structure).
// The elementwise passes are plain loops GCC vectorizes.
#include "veridl/prims/batchNorm/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

constexpr size_t kLanes = 8;

// A fixed-order double accumulator; total() combines the lanes in a fixed tree.
struct Acc {
  double lane[kLanes] = {};
  double tail = 0.0;
  double total() const {
    const double a = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    const double b = (lane[4] + lane[5]) + (lane[6] + lane[7]);
    return (a + b) + tail;
  }
};

#if VERIDL_ISA_AVX2
// Floats [p, p + 8) widened to double: lanes 0-3 and 4-7.
inline __m256d widen_lo(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d widen_hi(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
#endif

// a += sum of the run p[0, len)
void run_sum(const float* p, size_t len, Acc& a) {
  const size_t full = len / kLanes * kLanes;
#if VERIDL_ISA_AVX2
  __m256d lo = _mm256_loadu_pd(a.lane), hi = _mm256_loadu_pd(a.lane + 4);
  for (size_t k = 0; k < full; k += kLanes) {
    const __m256 v = _mm256_loadu_ps(p + k);
    lo = _mm256_add_pd(lo, widen_lo(v));
    hi = _mm256_add_pd(hi, widen_hi(v));
  }
  _mm256_storeu_pd(a.lane, lo);
  _mm256_storeu_pd(a.lane + 4, hi);
#else
  for (size_t k = 0; k < full; k += kLanes)
    for (size_t l = 0; l < kLanes; ++l) a.lane[l] += static_cast<double>(p[k + l]);
#endif
  for (size_t k = full; k < len; ++k) a.tail += static_cast<double>(p[k]);
}

// a += sum of (p[k] - mu)^2 over the run
void run_sqdev(const float* p, size_t len, double mu, Acc& a) {
  const size_t full = len / kLanes * kLanes;
#if VERIDL_ISA_AVX2
  const __m256d m = _mm256_set1_pd(mu);
  __m256d lo = _mm256_loadu_pd(a.lane), hi = _mm256_loadu_pd(a.lane + 4);
  for (size_t k = 0; k < full; k += kLanes) {
    const __m256 v = _mm256_loadu_ps(p + k);
    const __m256d dl = _mm256_sub_pd(widen_lo(v), m), dh = _mm256_sub_pd(widen_hi(v), m);
    lo = _mm256_fmadd_pd(dl, dl, lo);
    hi = _mm256_fmadd_pd(dh, dh, hi);
  }
  _mm256_storeu_pd(a.lane, lo);
  _mm256_storeu_pd(a.lane + 4, hi);
#else
  for (size_t k = 0; k < full; k += kLanes)
    for (size_t l = 0; l < kLanes; ++l) {
      const double d = static_cast<double>(p[k + l]) - mu;
      a.lane[l] += d * d;
    }
#endif
  for (size_t k = full; k < len; ++k) {
    const double d = static_cast<double>(p[k]) - mu;
    a.tail += d * d;
  }
}

// The fused ReLU's gate: dy where the mask byte is set, else +0 (the ReLU kernel's select, relu_backward), as a
// bitwise and: GCC vectorizes it where it leaves a select on a byte and a float as a branch. gated: no mask, dy.
inline float gate(float v, uint8_t on) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  u &= 0u - static_cast<uint32_t>(on != 0);
  std::memcpy(&v, &u, sizeof v);
  return v;
}
inline float gated(const float* g, const uint8_t* m, size_t k) { return m ? gate(g[k], m[k]) : g[k]; }
#if VERIDL_ISA_AVX2
inline __m256 gated8(const float* g, const uint8_t* m, size_t k) {
  const __m256 v = _mm256_loadu_ps(g + k);
  if (!m) return v;
  const __m256i on = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m + k)));
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(on, _mm256_setzero_si256())));
}
#endif

// The normalised value the forward computed and rounded is kernel.hpp's xhat_from_stats: float((x - mu) rc), in
// double (no contraction: a difference, then a product), the same float in the forward and in the backward's passes.
#if VERIDL_ISA_AVX2
// The same for 4 floats widened to double, and the float result widened back: double(xhat).
inline __m256d xhat4(__m256d x, __m256d mu, __m256d rc) {
  return _mm256_cvtps_pd(_mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(x, mu), rc)));
}
#endif

// a1 += sum of g, a2 += sum of g xhat over the run, xhat recomputed from x (g gated by the mask m when m is not null)
void run_dot(const float* g, const uint8_t* m, const float* x, double mu, double rc, size_t len, Acc& a1, Acc& a2) {
  const size_t full = len / kLanes * kLanes;
#if VERIDL_ISA_AVX2
  const __m256d vm = _mm256_set1_pd(mu), vr = _mm256_set1_pd(rc);
  __m256d lo1 = _mm256_loadu_pd(a1.lane), hi1 = _mm256_loadu_pd(a1.lane + 4);
  __m256d lo2 = _mm256_loadu_pd(a2.lane), hi2 = _mm256_loadu_pd(a2.lane + 4);
  for (size_t k = 0; k < full; k += kLanes) {
    const __m256 gv = gated8(g, m, k), xv = _mm256_loadu_ps(x + k);
    const __m256d gl = widen_lo(gv), gh = widen_hi(gv);
    lo1 = _mm256_add_pd(lo1, gl);
    hi1 = _mm256_add_pd(hi1, gh);
    lo2 = _mm256_fmadd_pd(gl, xhat4(widen_lo(xv), vm, vr), lo2);
    hi2 = _mm256_fmadd_pd(gh, xhat4(widen_hi(xv), vm, vr), hi2);
  }
  _mm256_storeu_pd(a1.lane, lo1);
  _mm256_storeu_pd(a1.lane + 4, hi1);
  _mm256_storeu_pd(a2.lane, lo2);
  _mm256_storeu_pd(a2.lane + 4, hi2);
#else
  for (size_t k = 0; k < full; k += kLanes)
    for (size_t l = 0; l < kLanes; ++l) {
      const double gv = gated(g, m, k + l);
      a1.lane[l] += gv;
      a2.lane[l] += gv * static_cast<double>(xhat_from_stats(x[k + l], mu, rc));
    }
#endif
  for (size_t k = full; k < len; ++k) {
    const double gv = gated(g, m, k);
    a1.tail += gv;
    a2.tail += gv * static_cast<double>(xhat_from_stats(x[k], mu, rc));
  }
}

// The channels in groups: a group's statistics and outputs are computed by one thread, each pass walking the group's
// values image by image (for b: the runs of channels c0 .. c1 - 1, which lie side by side in memory), so that memory
// is read in runs of (c1 - c0) H W floats rather than H W: measured 1.3-2.2x faster than channel by channel when the
// operands come from memory (bench_kernels --batchnorm, "from memory"), at the 14 x 14 planes (784-byte runs) most.
// A group holds at most kGroupBytes of each operand, so that the passes after the first find it in L2; the group
// count is a multiple of the team's size, so that the threads get equal shares. Every channel is still accumulated
// over its runs in batch order, lane by lane: the grouping, like the thread count, changes no value.
constexpr size_t kGroupBytes = size_t(1) << 20;

// Runs body(c0, c1) for every group of channels [c0, c1): split over the OpenMP team when the call is big enough, else
// on the calling thread.
template <class F>
void for_channel_groups(const ops::BatchNormShape& s, F&& body) {
  const bool par = s.count() >= kBatchNormParallelMinElems && s.C >= 2 && omp_get_max_threads() > 1;
  const size_t threads = par ? static_cast<size_t>(omp_get_max_threads()) : 1;
  const size_t per_channel = std::max<size_t>(s.per_channel() * sizeof(float), 1);
  const size_t fit = std::max<size_t>(1, kGroupBytes / per_channel);
  size_t groups = (s.C + fit - 1) / fit;
  groups = std::min(s.C, (groups + threads - 1) / threads * threads);
  const auto G = static_cast<ptrdiff_t>(groups);
  auto one = [&](ptrdiff_t g) { body(s.C * static_cast<size_t>(g) / groups, s.C * static_cast<size_t>(g + 1) / groups); };
  if (par) {
#pragma omp parallel for schedule(static)
    for (ptrdiff_t g = 0; g < G; ++g) one(g);
  } else {
    for (ptrdiff_t g = 0; g < G; ++g) one(g);
  }
}

// Per-channel working values of a group (the calling thread's, reused).
struct ChannelWork {
  Acc a1, a2;
  double mu = 0, rc = 0, a = 0, m1 = 0, m2 = 0;
};
ChannelWork* channel_work(size_t n) {
  thread_local std::vector<ChannelWork> w;
  if (w.size() < n) w.resize(n);
  std::fill_n(w.begin(), n, ChannelWork{});
  return w.data();
}

// One run of the train forward's normalisation: y (relu(y) and its mask with kRelu). xhat = float(h) is not kept:
// the backward recomputes it from x (xhat_from_stats).
template <bool kRelu>
void normalize_run(const float* xr, size_t len, double mu, double rc, double g, double bt, float* yr, uint8_t* mr) {
  for (size_t k = 0; k < len; ++k) {
    const double h = (static_cast<double>(xr[k]) - mu) * rc;
    const float v = static_cast<float>(g * h + bt);
    if constexpr (kRelu) {
      const bool on = v > 0.0f;  // prims/relu/kernel.cpp's compare and select
      mr[k] = static_cast<uint8_t>(on);
      yr[k] = on ? v : 0.0f;
    } else {
      yr[k] = v;
    }
  }
}

// One run of the backward's dx: a (dy - m1 - xhat m2), xhat recomputed from x, dy gated by the mask when there is one.
template <bool kRelu>
void dx_run(const float* __restrict g, const uint8_t* __restrict m, const float* __restrict x, size_t len, double mu,
            double rc, double a, double m1, double m2, float* __restrict d) {
  for (size_t k = 0; k < len; ++k) {
    const float gk = kRelu ? gate(g[k], m[k]) : g[k];
    const float h = xhat_from_stats(x[k], mu, rc);
    d[k] = static_cast<float>(a * ((static_cast<double>(gk) - m1) - static_cast<double>(h) * m2));
  }
}

}  // namespace

void batchnorm_train_forward(const ops::BatchNormShape& s, double eps, const float* x, const float* gamma,
                             const float* beta, float* y, float* mean, float* var, float* r, double* stats,
                             uint8_t* relu_mask) {
  const size_t HW = s.H * s.W;
  const double n = static_cast<double>(s.per_channel());
  for_channel_groups(s, [&](size_t c0, size_t c1) {
    ChannelWork* w = channel_work(c1 - c0);
    for (size_t b = 0; b < s.N; ++b)
      for (size_t c = c0; c < c1; ++c) run_sum(x + (b * s.C + c) * HW, HW, w[c - c0].a1);
    for (size_t c = c0; c < c1; ++c) w[c - c0].mu = w[c - c0].a1.total() / n;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t c = c0; c < c1; ++c) run_sqdev(x + (b * s.C + c) * HW, HW, w[c - c0].mu, w[c - c0].a2);
    for (size_t c = c0; c < c1; ++c) {
      ChannelWork& cw = w[c - c0];
      const double v = cw.a2.total() / n;
      cw.rc = 1.0 / std::sqrt(v + eps);
      mean[c] = static_cast<float>(cw.mu);
      var[c] = static_cast<float>(v);
      r[c] = static_cast<float>(cw.rc);
      stats[c] = cw.mu;
      stats[s.C + c] = cw.rc;
    }
    for (size_t b = 0; b < s.N; ++b)
      for (size_t c = c0; c < c1; ++c) {
        const ChannelWork& cw = w[c - c0];
        const size_t off = (b * s.C + c) * HW;
        const double g = gamma[c], bt = beta[c];
        if (relu_mask) normalize_run<true>(x + off, HW, cw.mu, cw.rc, g, bt, y + off, relu_mask + off);
        else normalize_run<false>(x + off, HW, cw.mu, cw.rc, g, bt, y + off, nullptr);
      }
  });
}

void batchnorm_backward(const ops::BatchNormShape& s, const float* gamma, const float* r, const double* stats,
                        const float* x, const float* dy, float* dx, float* dgamma, float* dbeta,
                        const uint8_t* relu_mask) {
  const size_t HW = s.H * s.W;
  const double n = static_cast<double>(s.per_channel());
  for_channel_groups(s, [&](size_t c0, size_t c1) {
    ChannelWork* w = channel_work(c1 - c0);
    // per channel: a1 = sum dy, a2 = sum dy xhat (dy gated by the mask)
    for (size_t b = 0; b < s.N; ++b)
      for (size_t c = c0; c < c1; ++c) {
        const size_t off = (b * s.C + c) * HW;
        run_dot(dy + off, relu_mask ? relu_mask + off : nullptr, x + off, stats[c], stats[s.C + c], HW, w[c - c0].a1,
                w[c - c0].a2);
      }
    for (size_t c = c0; c < c1; ++c) {
      ChannelWork& cw = w[c - c0];
      const double sum_dy = cw.a1.total(), sum_dy_xhat = cw.a2.total();
      if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xhat);
      if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
      // (r/n)(n gamma dy - gamma sum dy - xhat gamma sum(dy xhat)) = a (dy - m1 - xhat m2)
      cw.a = static_cast<double>(r[c]) * static_cast<double>(gamma[c]);
      cw.m1 = sum_dy / n;
      cw.m2 = sum_dy_xhat / n;
    }
    if (!dx) return;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t c = c0; c < c1; ++c) {
        const ChannelWork& cw = w[c - c0];
        const size_t off = (b * s.C + c) * HW;
        const double mu = stats[c], rc = stats[s.C + c];
        if (relu_mask) dx_run<true>(dy + off, relu_mask + off, x + off, HW, mu, rc, cw.a, cw.m1, cw.m2, dx + off);
        else dx_run<false>(dy + off, nullptr, x + off, HW, mu, rc, cw.a, cw.m1, cw.m2, dx + off);
      }
  });
}

void batchnorm_eval_forward(const ops::BatchNormShape& s, double eps, const float* x, const float* gamma,
                            const float* beta, const float* mean, const float* var, float* y, bool relu) {
  const size_t HW = s.H * s.W;
  for_channel_groups(s, [&](size_t c0, size_t c1) {
    ChannelWork* w = channel_work(c1 - c0);
    for (size_t c = c0; c < c1; ++c) w[c - c0].rc = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    for (size_t b = 0; b < s.N; ++b)
      for (size_t c = c0; c < c1; ++c) {
        const double rc = w[c - c0].rc, mu = mean[c], g = gamma[c], bt = beta[c];
        const size_t off = (b * s.C + c) * HW;
        for (size_t k = 0; k < HW; ++k) {
          const float v = static_cast<float>(g * ((static_cast<double>(x[off + k]) - mu) * rc) + bt);
          y[off + k] = relu && !(v > 0.0f) ? 0.0f : v;
        }
      }
  });
}

void batchnorm_update_running(size_t C, double momentum, const float* batch_mean, const float* batch_var,
                              float* running_mean, float* running_var) {
  const double keep = 1.0 - momentum;
  for (size_t c = 0; c < C; ++c) {
    running_mean[c] = static_cast<float>(keep * running_mean[c] + momentum * batch_mean[c]);
    running_var[c] = static_cast<float>(keep * running_var[c] + momentum * batch_var[c]);
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
