// Float32 exp, sigmoid and erf for the elementwise kernels (sigmoid, swish, GELU): branch-free
// scalar code without libm calls, so that GCC vectorizes the loops that use it (a libm expf call per
// element does not vectorize without -ffast-math). Accuracy, tested in tests/test_activations.cpp against
// libm in double over [-100, 100]:
//   vexp      Cephes expf (range reduction x = n ln2 + r, degree-6 polynomial): relative error < 4e-7 on
//             [-87, 88]; the argument is clamped to [-87.3, 88.3] (so it never returns inf);
//             NaN in gives an unspecified finite or NaN value (the callers' outputs are NaN anyway).
//   vsigmoid  1 / (1 + exp(-x)): absolute error < 1e-7; vsigmoid_pair also gives 1 - sigmoid(x) without
//             cancellation (relative error < 1e-6; the derivatives of sigmoid, swish and tanh-GELU use it).
//   verf      Abramowitz-Stegun 7.1.26 (odd extension): absolute error < 5e-7.
// These are the training kernels' functions only; the references (the policies' value / derivative) use the atoms
// (calculus/atoms.hpp: libm for float and double), and the kernels are checked against them.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace veridl::kernels::vmath {

inline float vexp(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (round to nearest even; |x / ln 2| < 2^22; chosen when the
  // kernels kept trapping math, under which std::floor did not vectorize). The clamp above vectorizes in the AVX2
  // and portable variants only because the kernels are compiled with -fno-trapping-math (CMakeLists.txt).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;                                 // ln 2 in two parts (Cephes C1, C2)
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n: n in [-126, 127]
  return e * std::bit_cast<float>(bits);
}

inline float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

// s = sigmoid(x) and its complement c = 1 - s = sigmoid(-x), both with a small relative error (c is not
// computed as 1 - s, which cancels when s is near 1). 1 + tanh(x/2) = 2 s and 1 - tanh(x/2)^2 = 4 s c.
inline void vsigmoid_pair(float x, float& s, float& c) {
  const float e = vexp(-x);
  s = 1.0f / (1.0f + e);
  c = e * s;
}

inline float verf(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * vexp(-a * a);
  return std::copysign(y, x);
}

// Sums of a row in a fixed order that vectorizes at any vector width: 16 partial sums, element k into lane k % 16
// in the order of k, then the lanes added pairwise (lane j + lane j + 8, then + 4, + 2, + 1). The order depends on
// n only, so every variant gives the same bits; a plain `s += p[k]` loop is one chain of n dependent adds (its
// latency, not the adder's throughput, sets the time). lane_dot's products are contracted into its sums (FMA) in
// the AVX2 and AVX-512 variants alike.
inline float lane_combine(float (&s)[16]) {
  for (int w = 8; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) s[j] += s[j + w];
  return s[0];
}
inline float lane_sum(const float* p, size_t n) {
  float s[16] = {};
  size_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int j = 0; j < 16; ++j) s[j] += p[k + j];
  for (int j = 0; k < n; ++j, ++k) s[j] += p[k];
  return lane_combine(s);
}
inline float lane_dot(const float* a, const float* b, size_t n) {
  float s[16] = {};
  size_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int j = 0; j < 16; ++j) s[j] += a[k + j] * b[k + j];
  for (int j = 0; k < n; ++j, ++k) s[j] += a[k] * b[k];
  return lane_combine(s);
}
// max_k p[k] (n >= 1; exact, so in any order; a NaN element may or may not be the result, as std::max_element's)
inline float lane_max(const float* p, size_t n) {
  float s[16];
  std::fill_n(s, 16, p[0]);
  size_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int j = 0; j < 16; ++j) s[j] = std::max(s[j], p[k + j]);
  for (int j = 0; k < n; ++j, ++k) s[j] = std::max(s[j], p[k]);
  for (int w = 8; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) s[j] = std::max(s[j], s[j + w]);
  return s[0];
}

}  // namespace veridl::kernels::vmath
