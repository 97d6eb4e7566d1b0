// Differential tests of the fast float32 kernels (src/veridl/kernels) against the templated reference
// ops (src/veridl/ops), in the style of ggml's test-backend-ops: every kernel, every loop-nest variant,
// many shapes, the reference instantiated with T = double on the same float inputs.
//
// Tolerance: a float sum of K terms carries rounding of order eps_f sqrt(K) times the size of its
// partial sums, so kernel outputs must satisfy max |kernel - ref| <= kKernelRel sqrt(K) (1 + max |ref|),
// K the length of the reduction. A wrong index or a dropped tail gives errors of order max |ref|.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_testutil.hpp"
#include "veridl/calculus/decisions.hpp"
#include "veridl/kernels/parallel.hpp"
#include "veridl/prims/dense/kernel.hpp"
#include "veridl/prims/dense/reference.hpp"
#include "veridl/prims/softmaxCE/kernel.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"

namespace {

using Variant = veridl::kernels::DenseVariant;
using namespace veridl::testutil;

// An output buffer with guard zones on both sides, initialised to NaN (an element the kernel does not
// write fails the comparison) and a sentinel (a write outside [0, n) is caught).
class Guarded {
 public:
  explicit Guarded(size_t n) : n_(n), buf_(n + 2 * kPad, kSentinel) {
    std::fill(buf_.begin() + kPad, buf_.begin() + static_cast<ptrdiff_t>(kPad + n), std::nanf(""));
  }
  float* data() { return buf_.data() + kPad; }
  std::vector<float> values() const {
    return {buf_.begin() + kPad, buf_.begin() + static_cast<ptrdiff_t>(kPad + n_)};
  }
  bool guards_intact() const {
    for (size_t j = 0; j < kPad; ++j)
      if (buf_[j] != kSentinel || buf_[kPad + n_ + j] != kSentinel) return false;
    return true;
  }

 private:
  static constexpr size_t kPad = 24;
  static constexpr float kSentinel = 1234.5f;
  size_t n_;
  std::vector<float> buf_;
};

// ---- dense ---------------------------------------------------------------------------------------

struct DenseCase {
  size_t B, I, O;
};

std::string dense_name(const ::testing::TestParamInfo<DenseCase>& info) {
  // fmt, not operator+ chains: GCC 12 at -O3 reports a bogus -Wrestrict inside the inlined concatenations.
  return fmt::format("B{}_I{}_O{}", info.param.B, info.param.I, info.param.O);
}

std::vector<DenseCase> dense_cases() {
  std::vector<DenseCase> cs;
  for (size_t B : {1, 2, 3, 7, 128})
    for (size_t I : {1, 3, 8, 17, 784})
      for (size_t O : {1, 2, 10, 16, 33, 512})
        if (B * I * O <= size_t(4) << 20) cs.push_back({B, I, O});  // skips only 128 x 784 x 512
  cs.push_back({128, 512, 512});  // the MLP's second layer: dy's transposed copy large enough for the team to make it
  return cs;
}

class DenseDiff : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseDiff, EveryKernelAndVariantMatchesReference) {
  const auto [B, I, O] = GetParam();
  const veridl::ops::DenseShape s{B, I, O};
  const uint64_t seed = B * 1000003 + I * 1009 + O;
  const auto x = random_floats(B * I, seed), W = random_floats(I * O, seed + 1), b = random_floats(O, seed + 2),
             dy = random_floats(B * O, seed + 3);

  std::vector<double> ry(B * O), rdx(B * I), rdW(I * O), rdb(O);
  {
    const auto xd = to_double(x), Wd = to_double(W), bd = to_double(b), dyd = to_double(dy);
    veridl::ops::dense_forward(s, xd.data(), Wd.data(), bd.data(), ry.data());
    veridl::ops::dense_backward_input(s, Wd.data(), dyd.data(), rdx.data());
    veridl::ops::dense_backward_weight(s, xd.data(), dyd.data(), rdW.data());
    veridl::ops::dense_backward_bias(s, dyd.data(), rdb.data());
  }

  for (Variant v : {Variant::Auto, Variant::WideO, Variant::NarrowO}) {
    const std::string tag = v == Variant::Auto ? "auto" : v == Variant::WideO ? "wideO" : "narrowO";
    Guarded y(B * O), dx(B * I), dW(I * O);
    veridl::kernels::dense_forward_variant(s, x.data(), W.data(), b.data(), y.data(), v);
    veridl::kernels::dense_backward_input_variant(s, W.data(), dy.data(), dx.data(), v);
    veridl::kernels::dense_backward_weight_variant(s, x.data(), dy.data(), dW.data(), v);
    EXPECT_TRUE(close(y.values(), ry, I, "forward/" + tag));
    EXPECT_TRUE(close(dx.values(), rdx, O, "backward_input/" + tag));
    EXPECT_TRUE(close(dW.values(), rdW, B, "backward_weight/" + tag));
    EXPECT_TRUE(y.guards_intact() && dx.guards_intact() && dW.guards_intact()) << "write out of bounds, " << tag;
  }
  {  // the public entry points (Auto)
    Guarded y(B * O), dx(B * I), dW(I * O), db(O);
    veridl::kernels::dense_forward(s, x.data(), W.data(), b.data(), y.data());
    veridl::kernels::dense_backward_input(s, W.data(), dy.data(), dx.data());
    veridl::kernels::dense_backward_weight(s, x.data(), dy.data(), dW.data());
    veridl::kernels::dense_backward_bias(s, dy.data(), db.data());
    EXPECT_TRUE(close(y.values(), ry, I, "dense_forward"));
    EXPECT_TRUE(close(dx.values(), rdx, O, "dense_backward_input"));
    EXPECT_TRUE(close(dW.values(), rdW, B, "dense_backward_weight"));
    EXPECT_TRUE(close(db.values(), rdb, B, "dense_backward_bias"));
    EXPECT_TRUE(y.guards_intact() && dx.guards_intact() && dW.guards_intact() && db.guards_intact())
        << "write out of bounds";
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, DenseDiff, ::testing::ValuesIn(dense_cases()), dense_name);

// The MNIST shapes with MNIST-like data: pixels in [0, 1] (many exact zeros), small weights.
TEST(KernelsDense, MnistShapeWithPixelData) {
  const veridl::ops::DenseShape s{128, 784, 10};
  auto x = random_floats(s.B * s.I, 7, -1.0f, 1.0f);
  for (auto& v : x) v = v < 0.0f ? 0.0f : v;
  const auto W = random_floats(s.I * s.O, 8, -0.05f, 0.05f), b = random_floats(s.O, 9, -0.1f, 0.1f),
             dy = random_floats(s.B * s.O, 10, -0.01f, 0.01f);
  std::vector<double> ry(s.B * s.O), rdW(s.I * s.O), rdb(s.O);
  const auto xd = to_double(x), Wd = to_double(W), bd = to_double(b), dyd = to_double(dy);
  veridl::ops::dense_forward(s, xd.data(), Wd.data(), bd.data(), ry.data());
  veridl::ops::dense_backward_weight(s, xd.data(), dyd.data(), rdW.data());
  veridl::ops::dense_backward_bias(s, dyd.data(), rdb.data());
  std::vector<float> y(s.B * s.O), dW(s.I * s.O), db(s.O);
  veridl::kernels::dense_forward(s, x.data(), W.data(), b.data(), y.data());
  veridl::kernels::dense_backward_weight(s, x.data(), dy.data(), dW.data());
  veridl::kernels::dense_backward_bias(s, dy.data(), db.data());
  EXPECT_TRUE(close(y, ry, s.I, "forward"));
  EXPECT_TRUE(close(dW, rdW, s.B, "backward_weight"));
  EXPECT_TRUE(close(db, rdb, s.B, "backward_bias"));
}

// ---- softmax cross-entropy -----------------------------------------------------------------------

struct SoftmaxCase {
  size_t B, K;
  double eps;
  float scale;  // logits uniform in [-scale, scale]
};

std::string softmax_name(const ::testing::TestParamInfo<SoftmaxCase>& info) {
  const auto& c = info.param;
  return "B" + std::to_string(c.B) + "_K" + std::to_string(c.K) + (c.eps == 0.0 ? "_eps0" : "_eps0p1") + "_z" +
         std::to_string(static_cast<int>(c.scale));
}

std::vector<SoftmaxCase> softmax_cases() {
  std::vector<SoftmaxCase> cs;
  for (size_t B : {1, 3, 128, 2048})
    for (size_t K : {2, 10, 33})
      for (double eps : {0.0, 0.1})
        for (float scale : {1.0f, 30.0f}) cs.push_back({B, K, eps, scale});
  return cs;
}

std::vector<int32_t> random_labels(size_t B, size_t K, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> l(B);
  for (auto& v : l) v = static_cast<int32_t>(rng() % K);
  return l;
}

class SoftmaxCEDiff : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SoftmaxCEDiff, ForwardAndBackwardMatchReference) {
  const auto [B, K, eps, scale] = GetParam();
  const veridl::ops::SoftmaxShape s{B, K};
  const auto z = random_floats(B * K, B * 31 + K, -scale, scale);
  const auto labels = random_labels(B, K, B + K);
  const float dL = 0.75f;

  std::vector<double> rp(B * K), rdz(B * K);
  veridl::Decisions D;
  const auto zd = to_double(z);
  const double rloss = veridl::ops::softmax_ce_forward(s, eps, labels.data(), zd.data(), rp.data(), D);
  veridl::ops::softmax_ce_backward(s, eps, labels.data(), rp.data(), static_cast<double>(dL), rdz.data());

  Guarded pg(B * K), dzg(B * K);
  const float loss = veridl::kernels::softmax_ce_forward(s, static_cast<float>(eps), labels.data(), z.data(), pg.data());
  veridl::kernels::softmax_ce_backward(s, static_cast<float>(eps), labels.data(), pg.data(), dL, dzg.data());
  EXPECT_TRUE(pg.guards_intact() && dzg.guards_intact()) << "write out of bounds";
  const std::vector<float> p = pg.values(), dz = dzg.values();

  // The loss is a mean of per-row values of size up to ~2 scale computed in float.
  EXPECT_NEAR(loss, rloss, 1e-6 * (1.0 + std::fabs(rloss)) * (1.0 + scale)) << "loss";
  EXPECT_TRUE(close(p, rp, K, "p"));
  EXPECT_TRUE(close(dz, rdz, K, "dz"));
  for (size_t r = 0; r < B; ++r) {  // rows of p sum to one
    double sum = 0.0;
    for (size_t k = 0; k < K; ++k) sum += p[r * K + k];
    ASSERT_NEAR(sum, 1.0, 1e-5) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, SoftmaxCEDiff, ::testing::ValuesIn(softmax_cases()), softmax_name);

// The backward is the reference formula evaluated in float: bit-identical to ops:: with T = float.
TEST(KernelsSoftmax, BackwardIsBitIdenticalToFloatReference) {
  for (double eps : {0.0, 0.1}) {
    const veridl::ops::SoftmaxShape s{37, 10};
    const auto p = random_floats(s.B * s.K, 5, 0.0f, 1.0f);
    const auto labels = random_labels(s.B, s.K, 6);
    std::vector<float> ref(s.B * s.K), got(s.B * s.K);
    veridl::ops::softmax_ce_backward(s, eps, labels.data(), p.data(), 1.5f, ref.data());
    veridl::kernels::softmax_ce_backward(s, static_cast<float>(eps), labels.data(), p.data(), 1.5f, got.data());
    EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), ref.size() * sizeof(float))) << "eps " << eps;
  }
}

// Huge logit gaps: the shift by the row max keeps everything finite; exp underflows to 0 cleanly.
TEST(KernelsSoftmax, StableForExtremeLogits) {
  const veridl::ops::SoftmaxShape s{4, 10};
  std::vector<float> z(s.B * s.K, 0.0f);
  for (size_t k = 0; k < s.K; ++k) {
    z[0 * s.K + k] = 1e4f * static_cast<float>(k);   // one dominant logit
    z[1 * s.K + k] = -1e4f * static_cast<float>(k);  // label far below the max
    z[2 * s.K + k] = 3e38f;                          // all equal and huge
    z[3 * s.K + k] = -200.0f + static_cast<float>(k);
  }
  const std::vector<int32_t> labels{9, 9, 4, 0};
  for (double eps : {0.0, 0.1}) {
    std::vector<double> rp(s.B * s.K);
    veridl::Decisions D;
    const auto zd = to_double(z);
    const double rloss = veridl::ops::softmax_ce_forward(s, eps, labels.data(), zd.data(), rp.data(), D);
    std::vector<float> p(s.B * s.K);
    const float loss = veridl::kernels::softmax_ce_forward(s, static_cast<float>(eps), labels.data(), z.data(), p.data());
    ASSERT_TRUE(std::isfinite(loss));
    EXPECT_NEAR(loss, rloss, 1e-6 * std::fabs(rloss)) << "eps " << eps;
    EXPECT_TRUE(close(p, rp, s.K, "p"));
  }
}

// ---- softmax cross-entropy at large logits, and the smoothing convention --------------------------------

// A float softmax cross-entropy forward: (shape, eps, labels, z, p) -> mean loss.
using SoftmaxCeForward = float (*)(const veridl::ops::SoftmaxShape&, float, const int32_t*, const float*, float*);

// The forward and backward of `fwd` (and the kernel's backward on its p) against the double reference, with
// logits uniform in [-scale, scale] for scale 100 and 1e4 (and a row of ties at the maximum): the failures. Every
// value must be finite, the loss within 1e-6 (1 + max |z|) (float rounding of the logits' size), p and dz within
// the kernels' tolerance.
std::vector<std::string> large_logit_failures(SoftmaxCeForward fwd) {
  std::vector<std::string> bad;
  for (size_t B : {1, 7, 64, 2048})
    for (size_t K : {2, 10, 1000})
      for (double eps : {0.0, 0.1})
        for (float scale : {100.0f, 1e4f}) {
          const std::string at = fmt::format("B{} K{} eps{} |z|<={}", B, K, eps, scale);
          const veridl::ops::SoftmaxShape s{B, K};
          auto z = random_floats(B * K, B * 7 + K, -scale, scale);
          for (size_t k = 0; k < K; ++k) z[k] = scale;  // row 0: every logit tied at the maximum
          const auto labels = random_labels(B, K, B + 3 * K);
          std::vector<double> rp(B * K), rdz(B * K);
          veridl::Decisions D;
          const auto zd = to_double(z);
          const double rloss = veridl::ops::softmax_ce_forward(s, eps, labels.data(), zd.data(), rp.data(), D);
          veridl::ops::softmax_ce_backward(s, eps, labels.data(), rp.data(), 1.0, rdz.data());
          std::vector<float> p(B * K), dz(B * K);
          const float loss = fwd(s, static_cast<float>(eps), labels.data(), z.data(), p.data());
          veridl::kernels::softmax_ce_backward(s, static_cast<float>(eps), labels.data(), p.data(), 1.0f, dz.data());
          const bool finite = std::isfinite(loss) && std::all_of(p.begin(), p.end(), [](float v) { return std::isfinite(v); }) &&
                              std::all_of(dz.begin(), dz.end(), [](float v) { return std::isfinite(v); });
          if (!finite) {
            bad.push_back(at + ": a non-finite loss, p or dz (loss " + std::to_string(loss) + ")");
            continue;
          }
          const double tol = 1e-6 * (1.0 + scale);
          if (!(std::fabs(loss - rloss) <= tol))
            bad.push_back(fmt::format("{}: loss {} vs double {} (tolerance {})", at, loss, rloss, tol));
          if (auto r = close(p, rp, K, at + " p"); !r) bad.push_back(r.message());
          if (auto r = close(dz, rdz, K, at + " dz"); !r) bad.push_back(r.message());
        }
  return bad;
}

float kernel_softmax_ce(const veridl::ops::SoftmaxShape& s, float eps, const int32_t* labels, const float* z, float* p) {
  return veridl::kernels::softmax_ce_forward(s, eps, labels, z, p);
}

// The mutant the issue names: the same formula without the shift by the row maximum (exp(z) / sum exp(z)).
float unshifted_softmax_ce(const veridl::ops::SoftmaxShape& s, float eps, const int32_t* labels, const float* z,
                           float* p) {
  const float off = eps / static_cast<float>(s.K), on = 1.0f - eps + off;
  double total = 0.0;
  for (size_t b = 0; b < s.B; ++b) {
    float sum = 0.0f;
    for (size_t k = 0; k < s.K; ++k) sum += std::exp(z[b * s.K + k]);
    for (size_t k = 0; k < s.K; ++k) {
      p[b * s.K + k] = std::exp(z[b * s.K + k]) / sum;
      total -= (static_cast<size_t>(labels[b]) == k ? on : off) * std::log(p[b * s.K + k]);
    }
  }
  return static_cast<float>(total / static_cast<double>(s.B));
}

TEST(KernelsSoftmax, LogitsSweptTo100And1e4MatchTheDoubleReference) {
  for (const std::string& m : large_logit_failures(kernel_softmax_ce)) ADD_FAILURE() << m;
}

TEST(KernelsSoftmax, TheLargeLogitSweepCatchesASoftmaxWithoutTheMaxShift) {
  const std::vector<std::string> bad = large_logit_failures(unshifted_softmax_ce);
  // exp overflows float beyond 88.7: every one of the 48 cases has such a row (row 0, tied at the maximum).
  size_t nonfinite = 0;
  for (const std::string& m : bad) nonfinite += m.find("non-finite") != std::string::npos;
  EXPECT_EQ(nonfinite, 48u);
}

// The label-smoothing target convention, pinned with numbers worked out here (no IREE needed): t = (1 - eps)
// onehot + eps / K, so with K = 4, eps = 0.1 the label gets 0.925 and the others 0.025 (not eps / (K - 1) =
// 0.0333 off-label and 0.9 on it); loss = mean over rows of -sum_k t_k log p_k, dz = (p - t) dL / B. Both the
// double reference and the float kernel.
TEST(KernelsSoftmax, TheSmoothedTargetIsOneMinusEpsOnehotPlusEpsOverK) {
  const veridl::ops::SoftmaxShape s{2, 4};
  const std::vector<float> z{1, 2, 3, 4, 0, 0, 0, 0};
  const std::vector<int32_t> labels{0, 2};
  // log-softmax of row 0: z - log(e + e^2 + e^3 + e^4); of row 1: -log 4.
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0));
  auto expected_loss = [&](double on, double off) {
    double row0 = 0.0, row1 = 0.0;
    for (size_t k = 0; k < 4; ++k) {
      row0 -= (k == 0 ? on : off) * (z[k] - lse0);
      row1 -= (k == 2 ? on : off) * -std::log(4.0);
    }
    return (row0 + row1) / 2.0;
  };
  const double want = expected_loss(0.925, 0.025);
  const double other = expected_loss(0.9, 0.1 / 3.0);  // the eps / (K - 1) convention
  ASSERT_GT(std::fabs(want - other), 1e-3) << "the pin must tell the two conventions apart";
  std::vector<double> want_dz(8);
  for (size_t b = 0; b < 2; ++b)
    for (size_t k = 0; k < 4; ++k) {
      const double pk = b == 0 ? std::exp(z[k] - lse0) : 0.25;
      want_dz[b * 4 + k] = 0.5 * 3.0 * (pk - (static_cast<int32_t>(k) == labels[b] ? 0.925 : 0.025));  // dL = 3
    }

  std::vector<double> rp(8), rdz(8);
  veridl::Decisions D;
  const auto zd = to_double(z);
  const double rloss = veridl::ops::softmax_ce_forward(s, 0.1, labels.data(), zd.data(), rp.data(), D);
  veridl::ops::softmax_ce_backward(s, 0.1, labels.data(), rp.data(), 3.0, rdz.data());
  EXPECT_NEAR(rloss, want, 1e-12);
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(rdz[i], want_dz[i], 1e-12) << "reference dz " << i;

  std::vector<float> p(8), dz(8);
  const float loss = veridl::kernels::softmax_ce_forward(s, 0.1f, labels.data(), z.data(), p.data());
  veridl::kernels::softmax_ce_backward(s, 0.1f, labels.data(), p.data(), 3.0f, dz.data());
  EXPECT_NEAR(loss, want, 1e-6);
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(dz[i], want_dz[i], 1e-6) << "kernel dz " << i;
  // eps = 0 is the plain cross-entropy: -log p_label.
  const float plain = veridl::kernels::softmax_ce_forward(s, 0.0f, labels.data(), z.data(), p.data());
  EXPECT_NEAR(plain, ((lse0 - 1.0) + std::log(4.0)) / 2.0, 1e-6);
}

TEST(KernelsSoftmax, RejectsLabelsOutsideRange) {
  const veridl::ops::SoftmaxShape s{3, 10};
  const std::vector<float> z(s.B * s.K, 0.0f);
  std::vector<float> p(s.B * s.K), dz(s.B * s.K);
  for (int32_t bad : {-1, 10, 1000}) {
    const std::vector<int32_t> labels{0, bad, 9};
    try {
      veridl::kernels::softmax_ce_forward(s, 0.0f, labels.data(), z.data(), p.data());
      FAIL() << "forward accepted label " << bad;
    } catch (const std::out_of_range& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("row 1"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos) << msg;
    }
    EXPECT_THROW(veridl::kernels::softmax_ce_backward(s, 0.0f, labels.data(), p.data(), 1.0f, dz.data()),
                 std::out_of_range);
  }
}

// ---- determinism across thread counts ------------------------------------------------------------

struct ThreadRun {
  std::vector<float> y, dx, dW, db, p, dz;
  float loss = 0.0f;
};

ThreadRun run_all(int threads, const veridl::ops::DenseShape& s, Variant v, const std::vector<float>& x,
                  const std::vector<float>& W, const std::vector<float>& b, const std::vector<float>& dy,
                  const std::vector<int32_t>& labels) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  ThreadRun r{std::vector<float>(s.B * s.O), std::vector<float>(s.B * s.I), std::vector<float>(s.I * s.O),
              std::vector<float>(s.O), std::vector<float>(s.B * s.O), std::vector<float>(s.B * s.O), 0.0f};
  veridl::kernels::dense_forward_variant(s, x.data(), W.data(), b.data(), r.y.data(), v);
  veridl::kernels::dense_backward_input_variant(s, W.data(), dy.data(), r.dx.data(), v);
  veridl::kernels::dense_backward_weight_variant(s, x.data(), dy.data(), r.dW.data(), v);
  veridl::kernels::dense_backward_bias(s, dy.data(), r.db.data());
  const veridl::ops::SoftmaxShape ss{s.B, s.O};
  r.loss = veridl::kernels::softmax_ce_forward(ss, 0.1f, labels.data(), r.y.data(), r.p.data());
  veridl::kernels::softmax_ce_backward(ss, 0.1f, labels.data(), r.p.data(), 1.0f, r.dz.data());
  omp_set_num_threads(saved);
  return r;
}

TEST(KernelsDeterminism, BitIdenticalForOneAndTwoThreads) {
  // Shapes above the fork thresholds (and one below), including the MNIST and MLP shapes.
  const std::vector<veridl::ops::DenseShape> shapes{
      {128, 784, 10}, {128, 784, 512}, {128, 512, 512}, {128, 512, 10}, {4096, 17, 10}, {7, 17, 33}, {131, 97, 35}};
  for (const auto& s : shapes)
    for (Variant v : {Variant::Auto, Variant::WideO, Variant::NarrowO}) {
      const auto x = random_floats(s.B * s.I, 1), W = random_floats(s.I * s.O, 2), b = random_floats(s.O, 3),
                 dy = random_floats(s.B * s.O, 4);
      const auto labels = random_labels(s.B, s.O, 5);
      const ThreadRun one = run_all(1, s, v, x, W, b, dy, labels);
      const ThreadRun two = run_all(2, s, v, x, W, b, dy, labels);
      std::string at = "B";  // (appends: GCC 12 gives a false -Wrestrict on "literal" + std::string)
      at += std::to_string(s.B);
      at += " I";
      at += std::to_string(s.I);
      at += " O";
      at += std::to_string(s.O);
      at += " variant ";
      at += std::to_string(static_cast<int>(v));
      EXPECT_TRUE(same_bits(one.y, two.y)) << "forward " << at;
      EXPECT_TRUE(same_bits(one.dx, two.dx)) << "backward_input " << at;
      EXPECT_TRUE(same_bits(one.dW, two.dW)) << "backward_weight " << at;
      EXPECT_TRUE(same_bits(one.db, two.db)) << "backward_bias " << at;
      EXPECT_TRUE(same_bits(one.p, two.p)) << "softmax p " << at;
      EXPECT_TRUE(same_bits(one.dz, two.dz)) << "softmax dz " << at;
      EXPECT_EQ(0, std::memcmp(&one.loss, &two.loss, sizeof(float))) << "loss " << at;
    }
}

// ---- the region profiler (bench_kernels --regions) -----------------------------------------------------------

struct CountingProfiler : veridl::kernels::RegionProfiler {
  struct Call {
    const char* site;
    double wall;
    std::vector<double> busy;
  };
  std::vector<Call> calls;
  void add(const char* site, double wall, const std::vector<double>& busy) override {
    calls.push_back({site, wall, busy});
  }
};

struct AddTwo {
  int* hits;
  void operator()(size_t lo, size_t hi) const {
    for (size_t i = lo; i < hi; ++i) hits[i] += 2;
  }
};

// Every team for_chunks forks is reported while a profiler is installed (once per fork, under one site per loop
// body's type name, with a busy time per thread within the fork's wall time), none otherwise and none for work run on
// the calling thread; the items each chunk covers are the same either way.
TEST(KernelsParallel, TheRegionProfilerSeesEveryForkWhileInstalled) {
  namespace k = veridl::kernels;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);  // a team of two even on one core
  std::vector<int> hits(1000);
  auto body = [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) ++hits[i];
  };
  const AddTwo other{hits.data()};  // a body of another type: another site
  CountingProfiler prof;
  k::for_chunks(hits.size(), k::kParallelMinWork, body);  // not installed: nothing to see
  k::g_region_profiler.store(&prof);
  k::for_chunks(hits.size(), k::kParallelMinWork, body);
  k::for_chunks(hits.size(), k::kParallelMinWork, body);
  k::for_chunks(hits.size(), k::kParallelMinWork, other);
  k::for_chunks(hits.size(), k::kParallelMinWork - 1, other);  // too small to fork: the calling thread alone
  k::g_region_profiler.store(nullptr);
  k::for_chunks(hits.size(), k::kParallelMinWork, body);
  omp_set_num_threads(saved);
  for (int h : hits) ASSERT_EQ(h, 4 * 1 + 2 * 2);
  ASSERT_EQ(prof.calls.size(), 3u);
  EXPECT_EQ(prof.calls[0].site, prof.calls[1].site);
  EXPECT_NE(prof.calls[0].site, prof.calls[2].site);
  EXPECT_FALSE(std::string(prof.calls[0].site).empty());  // (its spelling is the compiler's: GCC's and clang's differ)
  for (const auto& c : prof.calls) {
    ASSERT_EQ(c.busy.size(), 2u);
    for (double b : c.busy) {
      EXPECT_GT(b, 0.0);
      EXPECT_LE(b, c.wall);
    }
  }
}

}  // namespace
