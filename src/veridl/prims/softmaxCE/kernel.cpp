// Fast float32 softmax cross-entropy: see kernel.hpp for the contract.
//
// Per row: m = max z (one pass), e_k = exp(z_k - m) written to p with S = sum e_k and Z = sum (z_k - m)
// accumulated alongside (one pass), then p *= 1/S. With sum_k t_k = 1 the row loss is
//   -sum_k t_k ((z_k - m) - log S) = -( off (Z - K log S) + (on - off) ((z_y - m) - log S) )
// where both bracketed terms are sums of non-positive numbers (no cancellation); for eps = 0 (off = 0)
// it is exactly -((z_y - m) - log S).
#include "veridl/prims/softmaxCE/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "veridl/kernels/scratch.hpp"
#include "veridl/kernels/target.hpp"
#include "veridl/kernels/simd.hpp"


namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// Elements (B K) from which the forward forks an OpenMP team.
constexpr size_t kParallelMinElems = size_t(1) << 14;

struct RowStats {
  float m, S, Z;
};

#if VERIDL_ISA_AVX2

using simd::hsum;
using simd::lane_mask;

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Stores lanes [0, n) of v to p, n in [1, 7], with plain 16/8/4-byte stores (vmaskmovps stores are
// slow on AMD; a copy loop becomes a memcpy call).
inline void store_first(float* p, __m256 v, size_t n) {
  __m128 h = _mm256_castps256_ps128(v);
  if (n & 4) {
    _mm_storeu_ps(p, h);
    h = _mm256_extractf128_ps(v, 1);
    p += 4;
  }
  if (n & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
    h = _mm_movehl_ps(h, h);
    p += 2;
  }
  if (n & 1) _mm_store_ss(p, h);
}

// exp(x) for x <= 88 (here always x <= 0): Cephes' expf (x = n ln2 + r, |r| <= ln2/2, degree-5
// polynomial, 2^n through the exponent field), within about 2 ulp of the true value. x < ln(FLT_MIN)
// gives 0 (no denormals); NaN propagates.
inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.33654475f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));  // operand order: a NaN x passes through both
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

// A row in two halves, so that a group of rows can run each half back to back (independent rows
// overlap in the out-of-order core instead of waiting on one row's max -> exp -> sum -> log chain).
// row_exp: m = max z, p = exp(z - m) unnormalised, S = sum p, Z = sum (z - m).
RowStats row_exp(size_t K, const float* z, float* p) {
  const size_t full = K / 8 * 8, rem = K - full;
  const __m256i mask = lane_mask(rem == 0 ? 8 : rem);
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 vm = ninf;
  for (size_t k = 0; k < full; k += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(z + k));
  if (rem) vm = _mm256_max_ps(vm, _mm256_blendv_ps(ninf, _mm256_maskload_ps(z + full, mask), _mm256_castsi256_ps(mask)));
  const float m = hmax(vm);
  const __m256 mv = _mm256_set1_ps(m);
  __m256 vS = _mm256_setzero_ps(), vZ = _mm256_setzero_ps();
  for (size_t k = 0; k < full; k += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(z + k), mv);
    const __m256 e = exp256(d);
    _mm256_storeu_ps(p + k, e);
    vS = _mm256_add_ps(vS, e);
    vZ = _mm256_add_ps(vZ, d);
  }
  if (rem) {
    const __m256 mf = _mm256_castsi256_ps(mask);
    const __m256 d = _mm256_and_ps(mf, _mm256_sub_ps(_mm256_maskload_ps(z + full, mask), mv));
    const __m256 e = _mm256_and_ps(mf, exp256(d));
    store_first(p + full, e, rem);
    vS = _mm256_add_ps(vS, e);
    vZ = _mm256_add_ps(vZ, d);
  }
  return {m, hsum(vS), hsum(vZ)};
}

void row_scale(size_t K, float* p, float invS) {
  const size_t full = K / 8 * 8;
  const __m256 inv = _mm256_set1_ps(invS);
  for (size_t k = 0; k < full; k += 8) _mm256_storeu_ps(p + k, _mm256_mul_ps(_mm256_loadu_ps(p + k), inv));
  for (size_t k = full; k < K; ++k) p[k] *= invS;
}

#else  // portable

RowStats row_exp(size_t K, const float* z, float* p) {
  float m = z[0];
  for (size_t k = 1; k < K; ++k)
    if (z[k] > m) m = z[k];
  float S = 0.0f, Z = 0.0f;
  for (size_t k = 0; k < K; ++k) {
    const float d = z[k] - m;
    p[k] = std::exp(d);
    S += p[k];
    Z += d;
  }
  return {m, S, Z};
}

void row_scale(size_t K, float* p, float invS) {
  for (size_t k = 0; k < K; ++k) p[k] *= invS;
}

#endif

// Rows [b0, b1) (at most kGroup): writes p, returns the sum of the rows' losses in row order.
constexpr size_t kGroup = 8;

double rows_forward(size_t b0, size_t b1, size_t K, float on, float off, const int32_t* labels, const float* z,
                    float* p) {
  RowStats st[kGroup];
  for (size_t b = b0; b < b1; ++b) st[b - b0] = row_exp(K, z + b * K, p + b * K);
  double total = 0.0;
  for (size_t b = b0; b < b1; ++b) {
    const RowStats& r = st[b - b0];
    const float logS = std::log(r.S);
    row_scale(K, p + b * K, 1.0f / r.S);
    // -sum_k t_k ((z_k - m) - log S), with sum_k t_k = 1 (see the top of the file)
    const float onlabel = (z[b * K + static_cast<size_t>(labels[b])] - r.m) - logS;
    const float row = off == 0.0f ? on * onlabel : off * (r.Z - static_cast<float>(K) * logS) + (on - off) * onlabel;
    total -= row;
  }
  return total;
}

}  // namespace

float softmax_ce_forward(const ops::SoftmaxShape& s, float eps, const int32_t* labels, const float* z, float* p) {
  ops::check_labels(s, labels);
  const size_t B = s.B, K = s.K;
  const ops::SmoothedTarget<float> t(eps, K);
  const size_t groups = (B + kGroup - 1) / kGroup;
  double total = 0.0;
  if (B * K < kParallelMinElems || omp_get_max_threads() <= 1) {
    for (size_t g = 0; g < groups; ++g)
      total += rows_forward(g * kGroup, std::min(B, (g + 1) * kGroup), K, t.on, t.off, labels, z, p);
  } else {  // per-group sums, then added in group order: the same total for any number of threads
    thread_local Scratch<double> group_loss;
    double* gl = group_loss.get(groups);
    const auto n = static_cast<ptrdiff_t>(groups);
#pragma omp parallel for schedule(static)
    for (ptrdiff_t g = 0; g < n; ++g) {
      const auto b0 = static_cast<size_t>(g) * kGroup;
      gl[g] = rows_forward(b0, std::min(B, b0 + kGroup), K, t.on, t.off, labels, z, p);
    }
    for (size_t g = 0; g < groups; ++g) total += gl[g];
  }
  return static_cast<float>(total / static_cast<double>(s.mean_count()));
}

// The reference formula, in float: dz = (dL / B) (p - t_k).
void softmax_ce_backward(const ops::SoftmaxShape& s, float eps, const int32_t* labels, const float* p, float dL,
                         float* dz) {
  ops::check_labels(s, labels);
  const size_t B = s.B, K = s.K;
  const ops::SmoothedTarget<float> t(eps, K);
  const float scale = dL / static_cast<float>(static_cast<int64_t>(s.mean_count()));
  for (size_t b = 0; b < B; ++b) {
    const float* pr = p + b * K;
    float* dr = dz + b * K;
    for (size_t k = 0; k < K; ++k) dr[k] = scale * (pr[k] - t.off);
    const auto y = static_cast<size_t>(labels[b]);
    dr[y] = scale * (pr[y] - t.on);
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
