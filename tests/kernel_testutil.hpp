// Helpers shared by the differential tests of the fast float32 kernels against the reference ops
// (test_kernels.cpp, test_conv_kernels.cpp, test_relu_bn_kernels.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace veridl::testutil {

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Integers in {-2..2}: many exact ties.
inline std::vector<float> tie_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-2, 2);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(rng));
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// The tolerance of a float kernel against the double reference, for sums of K products:
// max |got - ref| <= kKernelRel sqrt(K) (1 + max |ref|).
constexpr double kKernelRel = 5e-7;  // ~ 4 eps_f; observed errors stay below ~3e-8 sqrt(K) (1 + max |ref|)

inline ::testing::AssertionResult close(const std::vector<float>& got, const std::vector<double>& ref, size_t K,
                                        const std::string& what) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << what << ": size mismatch";
  double maxref = 0.0, maxerr = 0.0;
  size_t worst = 0;
  for (size_t j = 0; j < ref.size(); ++j) {
    maxref = std::max(maxref, std::fabs(ref[j]));
    const double e = std::fabs(static_cast<double>(got[j]) - ref[j]);
    if (!(e <= maxerr)) {  // also catches NaN
      maxerr = e;
      worst = j;
      if (std::isnan(e)) break;
    }
  }
  const double tol = kKernelRel * std::sqrt(static_cast<double>(std::max<size_t>(K, 1))) * (1.0 + maxref);
  if (maxerr <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max error " << maxerr << " at " << worst << " (got "
                                       << got[worst] << ", ref " << ref[worst] << ") exceeds tolerance " << tol;
}

}  // namespace veridl::testutil
