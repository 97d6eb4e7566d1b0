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
#include <cstdint>

namespace veridl::kernels::vmath {

inline float vexp(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (round to nearest even; |x / ln 2| < 2^22): std::floor
  // would not vectorize without -fno-trapping-math.
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

}  // namespace veridl::kernels::vmath
