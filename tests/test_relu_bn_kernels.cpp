// Differential tests of the fast float32 ReLU and BatchNorm kernels (src/veridl/prims/{relu,batchNorm}/
// kernel.hpp) against the templated reference ops (src/veridl/prims/{relu,batchNorm}/reference.hpp), many
// shapes, plus
// determinism across thread counts.
//
// ReLU is a select: the kernels must be bit-identical to the reference at T = float (and equal to it at
// T = double). BatchNorm kernels compute in double and round once on store, so every output must be
// within one float rounding of the T = double reference run on the same (float) inputs:
//   |kernel - ref| <= 2^-23 |ref| + 1e-10 (1 + scale)
// where the absolute term (far below float resolution) covers the different association of the double
// arithmetic, scale the size of the terms that cancel.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernel_testutil.hpp"
#include "veridl/calculus/decisions.hpp"
#include "veridl/prims/batchNorm/kernel.hpp"
#include "veridl/prims/batchNorm/reference.hpp"
#include "veridl/prims/relu/kernel.hpp"
#include "veridl/prims/relu/reference.hpp"

namespace {

using veridl::ops::BatchNormShape;
using veridl::ops::ReluShape;
using namespace veridl::testutil;

// |got - ref| <= 2^-23 |ref| + 1e-10 (1 + scale), element by element.
::testing::AssertionResult within_rounding(const std::vector<float>& got, const std::vector<double>& ref, double scale,
                                           const std::string& what) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << what << ": size mismatch";
  for (size_t j = 0; j < ref.size(); ++j) {
    const double err = std::fabs(static_cast<double>(got[j]) - ref[j]);
    const double tol = std::ldexp(std::fabs(ref[j]), -23) + 1e-10 * (1.0 + scale);
    if (!(err <= tol))
      return ::testing::AssertionFailure() << what << "[" << j << "]: kernel " << got[j] << " vs reference " << ref[j]
                                           << " (error " << err << " > " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// ---- ReLU ----------------------------------------------------------------------------------------------

// Values with the kink planted: exact zeros, -0, tiny and huge magnitudes, infinities, NaN.
std::vector<float> relu_inputs(size_t n, uint64_t seed) {
  auto x = random_floats(n, seed, -2.0f, 2.0f);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 1e30f, 0.0f, 0.0f};
  for (size_t i = 0; i < n; i += 3) x[i] = specials[(i / 3) % (sizeof(specials) / sizeof(float))];
  return x;
}

TEST(KernelsRelu, BitIdenticalToTheReferenceOverManySizes) {
  for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(7), size_t(8), size_t(9), size_t(31), size_t(33),
                   size_t(1000), (size_t(1) << 16) - 1, (size_t(1) << 16) + 5, size_t(300001)}) {
    const ReluShape s{n};
    const auto x = relu_inputs(n, n + 17), dy = random_floats(n, n + 18);
    std::vector<float> ry(n), rdx(n), y(n, 7.0f), dx(n, 7.0f);
    std::vector<uint8_t> rmask(n), mask(n, 9);
    veridl::Decisions D;
    veridl::ops::relu_forward(s, x.data(), ry.data(), rmask.data(), D);
    veridl::ops::relu_backward(s, rmask.data(), dy.data(), rdx.data());
    veridl::kernels::relu_forward(s, x.data(), y.data(), mask.data());
    veridl::kernels::relu_backward(s, mask.data(), dy.data(), dx.data());
    EXPECT_TRUE(same_bits(y, ry)) << "forward n=" << n;
    EXPECT_EQ(mask, rmask) << "mask n=" << n;
    EXPECT_TRUE(same_bits(dx, rdx)) << "backward n=" << n;

    // ... and equal to the double reference on the same values.
    const auto xd = to_double(x), dyd = to_double(dy);
    std::vector<double> dyr(n), ddx(n);
    std::vector<uint8_t> dmask(n);
    veridl::ops::relu_forward(s, xd.data(), dyr.data(), dmask.data(), D);
    veridl::ops::relu_backward(s, dmask.data(), dyd.data(), ddx.data());
    EXPECT_EQ(dmask, mask) << "n=" << n;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(static_cast<double>(y[i]), dyr[i]) << "n=" << n << " i=" << i;
      ASSERT_EQ(static_cast<double>(dx[i]), ddx[i]) << "n=" << n << " i=" << i;
    }
  }
}

TEST(KernelsRelu, ConventionAtTheKink) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x{0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), -1.0f, nan, 3.0f};
  std::vector<float> y(x.size()), dx(x.size());
  std::vector<uint8_t> mask(x.size());
  veridl::kernels::relu_forward({x.size()}, x.data(), y.data(), mask.data());
  EXPECT_EQ(mask, (std::vector<uint8_t>{0, 0, 1, 0, 0, 1}));  // strict x > 0: relu'(0) = 0
  const std::vector<float> ones(x.size(), 1.0f);
  veridl::kernels::relu_backward({x.size()}, mask.data(), ones.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{0, 0, 1, 0, 0, 1}));
  EXPECT_FALSE(std::signbit(y[1]));  // -0 maps to +0, as in the reference
}

TEST(KernelsRelu, InPlace) {
  const size_t n = 1001;
  const auto x = relu_inputs(n, 3), dy = random_floats(n, 4);
  std::vector<float> y(n), dx(n);
  std::vector<uint8_t> mask(n), mask2(n);
  veridl::kernels::relu_forward({n}, x.data(), y.data(), mask.data());
  veridl::kernels::relu_backward({n}, mask.data(), dy.data(), dx.data());
  std::vector<float> xy = x, g = dy;
  veridl::kernels::relu_forward({n}, xy.data(), xy.data(), mask2.data());
  veridl::kernels::relu_backward({n}, mask2.data(), g.data(), g.data());
  EXPECT_TRUE(same_bits(xy, y));
  EXPECT_TRUE(same_bits(g, dx));
}

// ---- BatchNorm -----------------------------------------------------------------------------------------

struct BnCase {
  size_t N, C, H, W;
  double eps;
  float offset;  // data x = offset + U(-2, 2): a large offset tests the accumulation
};

std::string bn_name(const ::testing::TestParamInfo<BnCase>& info) {
  const auto& c = info.param;
  return fmt::format("N{}_C{}_H{}_W{}_{}_off{}", c.N, c.C, c.H, c.W, c.eps == 0.1 ? "eps0p1" : "eps1em5",
                     static_cast<int>(c.offset));
}

std::vector<BnCase> bn_cases() {
  std::vector<BnCase> cs;
  for (size_t N : {1, 2, 3, 8})
    for (size_t C : {1, 3, 16})
      for (auto [H, W] : {std::pair<size_t, size_t>{1, 1}, {2, 3}, {7, 7}, {8, 9}})
        for (double eps : {1e-5, 0.1})
          for (float offset : {0.0f, 100.0f}) cs.push_back({N, C, H, W, eps, offset});
  cs.push_back({32, 64, 16, 16, 1e-5, 0.0f});  // above the fork threshold
  cs.push_back({128, 2, 14, 14, 1e-5, 3.0f});
  return cs;
}

class BatchNormDiff : public ::testing::TestWithParam<BnCase> {};

// The xhat the kernels normalise with and recompute in the backward (kernel.hpp): float((x - mu) r) from the double
// statistics the forward wrote, mu[c] = stats[c], r[c] = stats[C + c].
std::vector<float> xhat_from(const BatchNormShape& s, const std::vector<float>& x, const std::vector<double>& stats) {
  std::vector<float> xh(s.count());
  const size_t HW = s.H * s.W;
  for (size_t b = 0; b < s.N; ++b)
    for (size_t c = 0; c < s.C; ++c)
      for (size_t k = 0; k < HW; ++k) {
        const size_t i = (b * s.C + c) * HW + k;
        xh[i] = static_cast<float>((static_cast<double>(x[i]) - stats[c]) * stats[s.C + c]);
      }
  return xh;
}

// A case's data: x = offset + U(-2, 2), gamma from [gamma_lo, 1.5), beta and dy from the default range.
struct BnData {
  BatchNormShape s;
  std::vector<float> x, gamma, beta, dy;
};
BnData bn_data(const BnCase& c, uint64_t seed, float gamma_lo) {
  BnData d{{c.N, c.C, c.H, c.W}, {}, {}, {}, {}};
  d.x = random_floats(d.s.count(), seed, c.offset - 2.0f, c.offset + 2.0f);
  d.gamma = random_floats(c.C, seed + 1, gamma_lo, 1.5f);
  d.beta = random_floats(c.C, seed + 2);
  d.dy = random_floats(d.s.count(), seed + 3);
  return d;
}

TEST_P(BatchNormDiff, EveryKernelMatchesTheReference) {
  const auto [N, C, H, W, eps, offset] = GetParam();
  const BnData d = bn_data(GetParam(), N * 1000003 + C * 1009 + H * 31 + W, 0.5f);
  const BatchNormShape& s = d.s;
  const size_t cnt = s.count();
  const uint64_t seed = N * 1000003 + C * 1009 + H * 31 + W;
  const std::vector<float>&x = d.x, &gamma = d.gamma, &beta = d.beta, &dy = d.dy;
  const float nan = std::nanf("");

  // Train forward.
  std::vector<float> y(cnt, nan), mean(C, nan), var(C, nan), r(C, nan);
  std::vector<double> stats(2 * C, std::nan(""));
  veridl::kernels::batchnorm_train_forward(s, eps, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                           var.data(), r.data(), stats.data(), nullptr);
  const std::vector<float> xhat = xhat_from(s, x, stats);
  std::vector<double> ry(cnt), rmean(C), rvar(C), rr(C), rxhat(cnt);
  {
    const auto xd = to_double(x), gd = to_double(gamma), bd = to_double(beta);
    veridl::ops::batchnorm_train_forward(s, eps, xd.data(), gd.data(), bd.data(), ry.data(), rmean.data(),
                                         rvar.data(), rr.data(), rxhat.data());
  }
  EXPECT_TRUE(within_rounding(mean, rmean, max_abs(rmean), "mean"));
  EXPECT_TRUE(within_rounding(var, rvar, max_abs(rvar), "var"));
  EXPECT_TRUE(within_rounding(r, rr, max_abs(rr), "r"));
  EXPECT_TRUE(within_rounding(xhat, rxhat, max_abs(rxhat) * (1.0 + offset), "xhat"));
  EXPECT_TRUE(within_rounding(y, ry, max_abs(ry) * (1.0 + offset), "y"));

  // Backward, from the same float saved values for both (the kernel recomputes xhat from x and stats).
  std::vector<float> dx(cnt, nan), dgamma(C, nan), dbeta(C, nan);
  veridl::kernels::batchnorm_backward(s, gamma.data(), r.data(), stats.data(), x.data(), dy.data(), dx.data(),
                                      dgamma.data(), dbeta.data(), nullptr);
  std::vector<double> rdx(cnt), rdgamma(C), rdbeta(C);
  {
    const auto gd = to_double(gamma), rd = to_double(r), xhd = to_double(xhat), dyd = to_double(dy);
    veridl::ops::batchnorm_backward(s, gd.data(), rd.data(), xhd.data(), dyd.data(), rdx.data(), rdgamma.data(),
                                    rdbeta.data());
  }
  const double n = static_cast<double>(s.per_channel());
  EXPECT_TRUE(within_rounding(dgamma, rdgamma, n * 3.0, "dgamma"));
  EXPECT_TRUE(within_rounding(dbeta, rdbeta, n, "dbeta"));
  EXPECT_TRUE(within_rounding(dx, rdx, max_abs(rr) * 1.5 * (2.0 + 2.0 * std::sqrt(n)), "dx"));

  // Only some gradients wanted: the others are not touched, the wanted ones are the same bits.
  std::vector<float> dg2(C, nan);
  veridl::kernels::batchnorm_backward(s, gamma.data(), r.data(), stats.data(), x.data(), dy.data(), nullptr,
                                      dg2.data(), nullptr, nullptr);
  EXPECT_TRUE(same_bits(dg2, dgamma));

  // Eval forward with some running statistics (as the trainer keeps them, in float).
  auto rmean_f = random_floats(C, seed + 4, offset - 0.5f, offset + 0.5f), rvar_f = random_floats(C, seed + 5, 0.2f, 3.0f);
  std::vector<float> ye(cnt, nan);
  veridl::kernels::batchnorm_eval_forward(s, eps, x.data(), gamma.data(), beta.data(), rmean_f.data(), rvar_f.data(),
                                          ye.data(), false);
  std::vector<double> rye(cnt);
  {
    const auto xd = to_double(x), gd = to_double(gamma), bd = to_double(beta), md = to_double(rmean_f),
               vd = to_double(rvar_f);
    veridl::ops::batchnorm_eval_forward(s, eps, xd.data(), gd.data(), bd.data(), md.data(), vd.data(), rye.data());
  }
  EXPECT_TRUE(within_rounding(ye, rye, max_abs(rye) * (1.0 + offset), "eval y"));

  // Running-stat update, both momenta the original uses.
  for (double m : {1.0, 0.1}) {
    std::vector<float> run_m = rmean_f, run_v = rvar_f;
    veridl::kernels::batchnorm_update_running(C, m, mean.data(), var.data(), run_m.data(), run_v.data());
    std::vector<double> ref_m = to_double(rmean_f), ref_v = to_double(rvar_f);
    const auto md = to_double(mean), vd = to_double(var);
    veridl::ops::batchnorm_update_running(C, m, md.data(), vd.data(), ref_m.data(), ref_v.data());
    EXPECT_TRUE(within_rounding(run_m, ref_m, max_abs(ref_m), "running mean"));
    EXPECT_TRUE(within_rounding(run_v, ref_v, max_abs(ref_v), "running var"));
    if (m == 1.0) {
      EXPECT_TRUE(same_bits(run_m, mean));
      EXPECT_TRUE(same_bits(run_v, var));
    }
  }
}

// The fused ReLU (net/fuse.hpp) is the BatchNorm kernel followed by the ReLU kernel, bit for bit: forward output,
// mask and saved values, the backward's three gradients from a dy with NaN, infinity and -0 on both sides of the
// mask, and the eval forward.
TEST_P(BatchNormDiff, TheFusedReluIsTheBatchNormThenTheReluKernelsBitForBit) {
  const auto [N, C, H, W, eps, offset] = GetParam();
  BnData d = bn_data(GetParam(), N * 7919 + C * 101 + H * 13 + W, -1.5f);  // gamma of both signs
  const BatchNormShape& s = d.s;
  const size_t cnt = s.count();
  const std::vector<float>&x = d.x, &gamma = d.gamma, &beta = d.beta;
  std::vector<float>& dy = d.dy;
  const float specials[] = {std::nanf(""), INFINITY, -0.0f, -INFINITY};
  for (size_t i = 0; i < cnt; i += 5) dy[i] = specials[(i / 5) % 4];
  const float nan = std::nanf("");
  namespace k = veridl::kernels;

  std::vector<float> y(cnt, nan), mean(C, nan), var(C, nan), r(C, nan), relu_y(cnt, nan);
  std::vector<double> stats(2 * C, std::nan(""));
  std::vector<uint8_t> mask(cnt, 7);
  k::batchnorm_train_forward(s, eps, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), var.data(), r.data(),
                             stats.data(), nullptr);
  k::relu_forward({cnt}, y.data(), relu_y.data(), mask.data());
  std::vector<float> fy(cnt, nan), fmean(C, nan), fvar(C, nan), fr(C, nan);
  std::vector<double> fstats(2 * C, std::nan(""));
  std::vector<uint8_t> fmask(cnt, 7);
  k::batchnorm_train_forward(s, eps, x.data(), gamma.data(), beta.data(), fy.data(), fmean.data(), fvar.data(),
                             fr.data(), fstats.data(), fmask.data());
  EXPECT_TRUE(same_bits(fy, relu_y));
  EXPECT_EQ(fmask, mask);
  EXPECT_TRUE(same_bits(fmean, mean) && same_bits(fvar, var) && same_bits(fr, r));
  EXPECT_EQ(0, std::memcmp(fstats.data(), stats.data(), 2 * C * sizeof(double)));

  std::vector<float> gated(cnt, nan), dx(cnt, nan), dgamma(C, nan), dbeta(C, nan);
  k::relu_backward({cnt}, mask.data(), dy.data(), gated.data());
  k::batchnorm_backward(s, gamma.data(), r.data(), stats.data(), x.data(), gated.data(), dx.data(), dgamma.data(),
                        dbeta.data(), nullptr);
  std::vector<float> fdx(cnt, nan), fdgamma(C, nan), fdbeta(C, nan);
  k::batchnorm_backward(s, gamma.data(), r.data(), stats.data(), x.data(), dy.data(), fdx.data(), fdgamma.data(),
                        fdbeta.data(), mask.data());
  EXPECT_TRUE(same_bits(fdx, dx));
  EXPECT_TRUE(same_bits(fdgamma, dgamma));
  EXPECT_TRUE(same_bits(fdbeta, dbeta));

  std::vector<float> ye(cnt, nan), relu_ye(cnt, nan), fye(cnt, nan);
  std::vector<uint8_t> emask(cnt);
  k::batchnorm_eval_forward(s, eps, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), ye.data(), false);
  k::relu_forward({cnt}, ye.data(), relu_ye.data(), emask.data());
  k::batchnorm_eval_forward(s, eps, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), fye.data(), true);
  EXPECT_TRUE(same_bits(fye, relu_ye));
}

INSTANTIATE_TEST_SUITE_P(Kernels, BatchNormDiff, ::testing::ValuesIn(bn_cases()), bn_name);

TEST(KernelsBatchNorm, EvalWithTheBatchStatisticsMatchesTheTrainForward) {
  const BatchNormShape s{8, 5, 6, 6};
  const auto x = random_floats(s.count(), 11, -3.0f, 3.0f), gamma = random_floats(s.C, 12, 0.5f, 2.0f),
             beta = random_floats(s.C, 13);
  std::vector<float> y(s.count()), mean(s.C), var(s.C), r(s.C), ye(s.count());
  std::vector<double> stats(2 * s.C);
  veridl::kernels::batchnorm_train_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                           var.data(), r.data(), stats.data(), nullptr);
  veridl::kernels::batchnorm_eval_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), mean.data(), var.data(),
                                          ye.data(), false);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(ye[i], y[i], 1e-6 * (1.0 + std::fabs(y[i]))) << i;
}

TEST(KernelsBatchNorm, NormalizedOutputHasZeroMeanAndUnitVariance) {
  const BatchNormShape s{16, 3, 5, 5};
  const auto x = random_floats(s.count(), 21, 40.0f, 60.0f);
  const std::vector<float> gamma(s.C, 1.0f), beta(s.C, 0.0f);
  std::vector<float> y(s.count()), mean(s.C), var(s.C), r(s.C);
  std::vector<double> stats(2 * s.C);
  veridl::kernels::batchnorm_train_forward(s, 0.0, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                           var.data(), r.data(), stats.data(), nullptr);
  const std::vector<float> xhat = xhat_from(s, x, stats);
  EXPECT_TRUE(same_bits(xhat, y));  // gamma 1, beta 0: y = float(1 * h + 0) = float(h)
  const size_t HW = s.H * s.W;
  for (size_t c = 0; c < s.C; ++c) {
    double m = 0, q = 0;
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) m += xhat[(b * s.C + c) * HW + k];
    m /= static_cast<double>(s.per_channel());
    for (size_t b = 0; b < s.N; ++b)
      for (size_t k = 0; k < HW; ++k) q += std::pow(xhat[(b * s.C + c) * HW + k] - m, 2);
    q /= static_cast<double>(s.per_channel());
    EXPECT_NEAR(m, 0.0, 1e-6) << c;
    EXPECT_NEAR(q, 1.0, 1e-5) << c;
  }
}

// The backward's xhat is the forward's float, recomputed: with dy one at a single element i (zero elsewhere), dgamma of
// i's channel is sum dy xhat = xhat[i] exactly (a float widened to double and rounded back), which must be the float
// the forward normalised to: y[i] itself when gamma is 1 and beta 0.
TEST(KernelsBatchNorm, TheBackwardRecomputesTheForwardsXhatBitForBit) {
  const BatchNormShape s{6, 3, 5, 7};
  const auto x = random_floats(s.count(), 31, 90.0f, 110.0f);
  const std::vector<float> gamma(s.C, 1.0f), beta(s.C, 0.0f);
  std::vector<float> y(s.count()), mean(s.C), var(s.C), r(s.C), dgamma(s.C), dbeta(s.C), dy(s.count(), 0.0f);
  std::vector<double> stats(2 * s.C);
  veridl::kernels::batchnorm_train_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                           var.data(), r.data(), stats.data(), nullptr);
  const size_t HW = s.H * s.W;
  for (size_t i = 0; i < s.count(); i += 7) {
    dy[i] = 1.0f;
    veridl::kernels::batchnorm_backward(s, gamma.data(), r.data(), stats.data(), x.data(), dy.data(), nullptr,
                                        dgamma.data(), dbeta.data(), nullptr);
    dy[i] = 0.0f;
    const size_t c = (i / HW) % s.C;
    EXPECT_EQ(0, std::memcmp(&dgamma[c], &y[i], sizeof(float))) << "element " << i << ": " << dgamma[c] << " vs " << y[i];
  }
}

// ---- determinism across thread counts --------------------------------------------------------------

struct BnRun {
  std::vector<float> y, mean, var, r, dx, dgamma, dbeta, ye, relu_y, relu_dx;
  std::vector<double> stats;
  std::vector<uint8_t> mask;
};

BnRun run_all(int threads, const BatchNormShape& s, const std::vector<float>& x, const std::vector<float>& gamma,
              const std::vector<float>& beta, const std::vector<float>& dy) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  const size_t cnt = s.count(), C = s.C;
  BnRun o{std::vector<float>(cnt), std::vector<float>(C),   std::vector<float>(C),   std::vector<float>(C),
          std::vector<float>(cnt), std::vector<float>(C),   std::vector<float>(C),   std::vector<float>(cnt),
          std::vector<float>(cnt), std::vector<float>(cnt), std::vector<double>(2 * C), std::vector<uint8_t>(cnt)};
  veridl::kernels::batchnorm_train_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), o.y.data(), o.mean.data(),
                                           o.var.data(), o.r.data(), o.stats.data(), nullptr);
  veridl::kernels::batchnorm_backward(s, gamma.data(), o.r.data(), o.stats.data(), x.data(), dy.data(), o.dx.data(),
                                      o.dgamma.data(), o.dbeta.data(), nullptr);
  veridl::kernels::batchnorm_eval_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), o.mean.data(), o.var.data(),
                                          o.ye.data(), false);
  veridl::kernels::relu_forward({cnt}, o.y.data(), o.relu_y.data(), o.mask.data());
  veridl::kernels::relu_backward({cnt}, o.mask.data(), dy.data(), o.relu_dx.data());
  omp_set_num_threads(saved);
  return o;
}

TEST(KernelsReluBnDeterminism, BitIdenticalForOneAndTwoThreads) {
  for (const BatchNormShape& s : {BatchNormShape{32, 64, 16, 16}, BatchNormShape{128, 32, 7, 7},
                                  BatchNormShape{8, 3, 64, 64}, BatchNormShape{4, 5, 3, 3}}) {
    const auto x = random_floats(s.count(), 1, -2.0f, 3.0f), gamma = random_floats(s.C, 2, 0.5f, 1.5f),
               beta = random_floats(s.C, 3), dy = random_floats(s.count(), 4);
    const BnRun one = run_all(1, s, x, gamma, beta, dy);
    const BnRun two = run_all(2, s, x, gamma, beta, dy);
    const std::string at = fmt::format("N{} C{} H{} W{}", s.N, s.C, s.H, s.W);
    EXPECT_TRUE(same_bits(one.y, two.y)) << at;
    EXPECT_TRUE(same_bits(one.mean, two.mean)) << at;
    EXPECT_TRUE(same_bits(one.var, two.var)) << at;
    EXPECT_TRUE(same_bits(one.r, two.r)) << at;
    EXPECT_EQ(0, std::memcmp(one.stats.data(), two.stats.data(), one.stats.size() * sizeof(double))) << at;
    EXPECT_TRUE(same_bits(one.dx, two.dx)) << at;
    EXPECT_TRUE(same_bits(one.dgamma, two.dgamma)) << at;
    EXPECT_TRUE(same_bits(one.dbeta, two.dbeta)) << at;
    EXPECT_TRUE(same_bits(one.ye, two.ye)) << at;
    EXPECT_TRUE(same_bits(one.relu_y, two.relu_y)) << at;
    EXPECT_TRUE(same_bits(one.relu_dx, two.relu_dx)) << at;
    EXPECT_EQ(one.mask, two.mask) << at;
  }
}

}  // namespace
