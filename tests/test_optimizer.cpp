// Optimizers and the schedule against hand-computed references.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/train/optimizer.hpp"
#include "test_util.hpp"
#include "veridl/util/error.hpp"

using namespace veridl;
using namespace veridl::train;
using namespace veridl::testutil;

namespace {
net::Plan tiny_plan() {  // weight [3,2] then bias [2]
  return net::compile(net::NetBuilder("tiny").image(1, 3, 1).flatten().dense(3, 2).build(), 1);
}
}  // namespace

TEST(Schedule, WarmupThenCosinePerStep) {
  OptimConfig c;
  c.lr = 0.1;
  EXPECT_DOUBLE_EQ(lr_at(c, 5, 10, 3), 0.1);  // constant without cosine, warmup ignored
  c.warmup_epochs = 1;
  EXPECT_DOUBLE_EQ(lr_at(c, 5, 10, 3), 0.1);
  c.cosine = true;
  EXPECT_DOUBLE_EQ(lr_at(c, 5, 10, 3), 0.1 * 5 / 10);   // linear warmup over the first epoch
  EXPECT_DOUBLE_EQ(lr_at(c, 10, 10, 3), 0.1);           // end of warmup
  EXPECT_NEAR(lr_at(c, 20, 10, 3), 0.05, 1e-12);        // half way through the cosine
  EXPECT_NEAR(lr_at(c, 30, 10, 3), 0.0, 1e-12);         // the end
  c.warmup_epochs = 0;
  EXPECT_NEAR(lr_at(c, 15, 10, 3), 0.1 * 0.5 * (1 + std::cos(M_PI * 0.5)), 1e-12);
}

TEST(Optimizer, SgdMomentumAndCoupledDecayOnWeightsOnly) {
  auto plan = tiny_plan();
  OptimConfig c;
  c.momentum = 0.9;
  c.weight_decay = 0.01;
  Optimizer opt(plan, c);
  std::vector<float> p{1, 2, 3, 4, 5, 6, 7, 8}, g(8, 1.0f);
  auto g1 = g;
  opt.step(p.data(), g1.data(), 0.1f, 1);
  // weights: v = g + wd p; p -= lr v
  EXPECT_FLOAT_EQ(p[0], 1 - 0.1f * (1 + 0.01f * 1));
  EXPECT_FLOAT_EQ(p[6], 7 - 0.1f * 1);  // bias: no decay
  auto g2 = g;
  float before = p[6];
  opt.step(p.data(), g2.data(), 0.1f, 2);
  EXPECT_FLOAT_EQ(p[6], before - 0.1f * (0.9f * 1 + 1));  // heavy ball
}

TEST(Optimizer, AdamMatchesTheTextbookInDouble) {
  auto plan = tiny_plan();
  for (const char* kind : {"adam", "adamw"}) {
    OptimConfig c;
    c.kind = kind;
    c.weight_decay = 0.1;
    Optimizer opt(plan, c);
    std::vector<float> p(8, 0.5f);
    double pd = 0.5, m = 0, v = 0, pb = 0.5, mb = 0, vb = 0;  // element 0 (weight) and 7 (bias)
    for (size_t t = 1; t <= 5; ++t) {
      std::vector<float> g(8);
      for (size_t i = 0; i < 8; ++i) g[i] = 0.1f * static_cast<float>(t) + 0.01f * static_cast<float>(i);
      double gd = g[0], gb = g[7];
      if (std::string(kind) == "adam") gd += 0.1 * pd;
      m = 0.9 * m + 0.1 * gd;
      v = 0.999 * v + 0.001 * gd * gd;
      pd -= 0.01 * (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.999, t))) + 1e-8);
      if (std::string(kind) == "adamw") pd -= 0.01 * 0.1 * pd;
      mb = 0.9 * mb + 0.1 * gb;
      vb = 0.999 * vb + 0.001 * gb * gb;
      pb -= 0.01 * (mb / (1 - std::pow(0.9, t))) / (std::sqrt(vb / (1 - std::pow(0.999, t))) + 1e-8);
      opt.step(p.data(), g.data(), 0.01f, t);
    }
    EXPECT_NEAR(p[0], pd, 1e-5) << kind;
    EXPECT_NEAR(p[7], pb, 1e-5) << kind;
  }
}

// The update loops are vectorized and split over threads once a model has 2^16 parameters or more: at
// such a size (a weight [300, 257] then its bias, 77,357 parameters, an odd count so vector tails are
// exercised), every element must follow the scalar formula in optimizer.hpp, with decay on the weight
// only, and 1 and 2 threads must give the same bits.
// A dense 300 -> 257 layer's plan, random starting parameters and three random gradients (uniform in [-1, 1]).
struct WideCase {
  net::Plan plan;
  std::vector<float> p0;
  std::vector<std::vector<float>> grads;
};
WideCase wide_case(unsigned seed) {
  WideCase w{net::compile(net::NetBuilder("wide").image(1, 300, 1).flatten().dense(300, 257).build(), 1), {}, {}};
  const size_t n = w.plan.n_params;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> U(-1.0f, 1.0f);
  w.p0.resize(n);
  for (auto& x : w.p0) x = U(rng);
  w.grads.assign(3, std::vector<float>(n));
  for (auto& g : w.grads)
    for (auto& x : g) x = U(rng);
  return w;
}

TEST(Optimizer, LargeModelsFollowTheScalarFormulaOnAnyThreadCount) {
  const WideCase w = wide_case(7);
  const net::Plan& plan = w.plan;
  const std::vector<float>& p0 = w.p0;
  const std::vector<std::vector<float>>& grads = w.grads;
  const size_t n = plan.n_params, n_weight = 300 * 257;
  ASSERT_GE(n, size_t{1} << 16);
  struct Case {
    std::string kind;
    double momentum;
    bool before = false;  // adamw: torch.optim.AdamW's order
  };
  for (const Case& cs : {Case{"sgd", 0.0}, Case{"sgd", 0.9}, Case{"adam", 0.0}, Case{"adamw", 0.0}, Case{"adamw", 0.0, true}}) {
    OptimConfig c;
    c.kind = cs.kind;
    c.momentum = cs.momentum;
    if (cs.before) c.adamw_decay = "before";
    c.weight_decay = 0.05;
    const float lr = 0.01f, wd = 0.05f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    // The scalar reference, in float, element by element.
    std::vector<float> p = p0, m(n, 0.0f), v(n, 0.0f);
    for (size_t t = 1; t <= grads.size(); ++t) {
      const double bc1 = 1.0 - std::pow(0.9, static_cast<double>(t));
      const double bc2 = 1.0 - std::pow(0.999, static_cast<double>(t));
      const float step = static_cast<float>(lr / bc1), isb2 = static_cast<float>(1.0 / std::sqrt(bc2));
      for (size_t i = 0; i < n; ++i) {
        const bool decay = i < n_weight;
        float g = grads[t - 1][i];
        if (cs.kind == "sgd") {
          if (decay) g += wd * p[i];
          if (cs.momentum > 0) g = m[i] = 0.9f * m[i] + g;
          p[i] -= lr * g;
          continue;
        }
        if (cs.kind == "adam" && decay) g += wd * p[i];
        if (cs.before && decay) p[i] *= static_cast<float>(1.0 - double(lr) * 0.05);  // decay first
        m[i] = b1 * m[i] + static_cast<float>(1.0 - 0.9) * g;
        v[i] = b2 * v[i] + static_cast<float>(1.0 - 0.999) * g * g;
        p[i] -= step * m[i] / (std::sqrt(v[i]) * isb2 + eps);
        if (cs.kind == "adamw" && !cs.before && decay) p[i] -= lr * wd * p[i];
      }
    }
    std::vector<std::vector<float>> got;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      Optimizer opt(plan, c);
      std::vector<float> q = p0;
      for (size_t t = 1; t <= grads.size(); ++t) {
        std::vector<float> g = grads[t - 1];
        opt.step(q.data(), g.data(), lr, t);
      }
      got.push_back(q);
    }
    omp_set_num_threads(omp_get_num_procs());
    EXPECT_EQ(got[0], got[1]) << cs.kind << ": 1 and 2 threads differ";
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i)
      if (!(std::abs(got[1][i] - p[i]) <= 1e-6f * std::max(1.0f, std::abs(p[i])))) ++bad;
    EXPECT_EQ(bad, 0u) << cs.kind << (cs.before ? " (decay before)" : "") << " momentum " << cs.momentum
                       << ": elements off the scalar formula";
  }
}

// Adam's 1 - beta constants are PyTorch's: 1 - 0.999 in double, rounded once (0.001f), not 1 - 0.999f in float
// (0.00099998713). After one step from zero state, m = (1 - b1) g and v = (1 - b2) g^2 exactly.
TEST(Optimizer, AdamOneMinusBetaConstantsArePyTorchs) {
  auto plan = tiny_plan();
  for (const char* kind : {"adam", "adamw"}) {
    OptimConfig c;
    c.kind = kind;
    Optimizer opt(plan, c);
    std::vector<float> p(8, 0.5f), g(8);
    for (size_t i = 0; i < g.size(); ++i) g[i] = 0.37f * static_cast<float>(i + 1);
    const std::vector<float> g0 = g;
    opt.step(p.data(), g.data(), 0.01f, 1);
    auto st = opt.state();
    ASSERT_EQ(st.size(), 2u);
    const std::vector<float>& m = *st[0].second;
    const std::vector<float>& v = *st[1].second;
    const float omb1 = 0.1f, omb2 = 0.001f;  // float(1 - 0.9), float(1 - 0.999): PyTorch's scalars
    ASSERT_NE(omb2, 1.0f - 0.999f);
    // Within float rounding (4e-7) of the exact products; the float constant would be 1.3e-5 off.
    for (size_t i = 0; i < g0.size(); ++i) {
      const double gi = g0[i], wm = double(omb1) * gi, wv = double(omb2) * gi * gi;
      EXPECT_LE(std::abs(m[i] - wm), 4e-7 * std::abs(wm)) << kind << " m[" << i << "]";
      EXPECT_LE(std::abs(v[i] - wv), 4e-7 * std::abs(wv)) << kind << " v[" << i << "]";
    }
  }
}

// adamwDecay "before" is torch.optim.AdamW's order and differs from the default after one step with decay; it
// is refused for the other optimizers and for unknown values.
TEST(Optimizer, AdamwDecayOrderIsAnOptionAndChecked) {
  auto plan = tiny_plan();
  std::vector<float> res[2];
  for (int k = 0; k < 2; ++k) {
    OptimConfig c;
    c.kind = "adamw";
    c.weight_decay = 0.1;
    c.adamw_decay = k ? "before" : "after";
    validate(c);
    Optimizer opt(plan, c);
    std::vector<float> p(8, 0.75f), g(8, 0.5f);
    opt.step(p.data(), g.data(), 0.1f, 1);
    res[k] = p;
  }
  EXPECT_NE(res[0], res[1]);
  OptimConfig bad;
  bad.kind = "sgd";
  bad.adamw_decay = "before";
  EXPECT_TRUE(mentions(error_of([&] { validate(bad); }), {"before", "adamw", "sgd"}));
  bad.kind = "adamw";
  bad.adamw_decay = "first";
  EXPECT_TRUE(mentions(error_of([&] { validate(bad); }), {"'first'", "after, before"}));
}

TEST(Optimizer, GlobalNormClipping) {
  auto plan = tiny_plan();
  OptimConfig c;
  c.clip_norm = 1.0;
  Optimizer opt(plan, c);
  std::vector<float> p(8, 0.0f), g(8, 0.0f);
  g[0] = 3;
  g[7] = 4;  // norm 5
  double n = opt.step(p.data(), g.data(), 1.0f, 1);
  EXPECT_NEAR(n, 5.0, 1e-12);
  EXPECT_NEAR(p[0], -3.0 / (5 + 1e-6), 1e-6);
  EXPECT_NEAR(p[7], -4.0 / (5 + 1e-6), 1e-6);
  // the norm is summed in fixed chunks: the same bits for one and two threads, and the value of an independent
  // long double sum (lengths that end inside a chunk and inside a group of eight)
  for (size_t len : {size_t{300000}, size_t{300005}, size_t{13}}) {
    std::vector<float> big(len);
    for (size_t i = 0; i < big.size(); ++i) big[i] = std::sin(static_cast<float>(i));
    long double want = 0;
    for (float x : big) want += static_cast<long double>(x) * x;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const double one = global_norm(big.data(), big.size());
    omp_set_num_threads(2);
    const double two = global_norm(big.data(), big.size());
    omp_set_num_threads(threads);
    EXPECT_EQ(one, two) << len;
    EXPECT_NEAR(one, std::sqrt(static_cast<double>(want)), 1e-12 * std::sqrt(static_cast<double>(want))) << len;
  }
}

TEST(Optimizer, BadSettingsAreClearErrors) {
  auto plan = tiny_plan();
  OptimConfig c;
  c.kind = "lamb";
  EXPECT_THROW(Optimizer(plan, c), Error);
  c.kind = "sgd";
  c.lr = -1;
  EXPECT_THROW(Optimizer(plan, c), Error);
  c.lr = 0.1;
  c.momentum = 1.5;
  EXPECT_THROW(Optimizer(plan, c), Error);
}

// The update kernels' AVX2 and AVX-512 variants give the portable variant's bits (prims/optimizer/kernel.hpp: the
// scalar formula's operations, no FMA contraction), for every update form, so a run's bits do not depend on the
// CPU's ISA. Each variant this CPU runs; sizes with a vector tail and a parallel split.
TEST(Optimizer, EveryKernelVariantGivesThePortableBits) {
  using veridl::kernels::Isa;
  const Isa saved = veridl::kernels::active_isa();
  const WideCase w = wide_case(11);
  const net::Plan& plan = w.plan;
  const std::vector<float>& p0 = w.p0;
  const std::vector<std::vector<float>>& grads = w.grads;
  const size_t n = plan.n_params;
  for (const char* kind : {"sgd", "sgd-momentum", "adam", "adamw", "adamw-before"}) {
    OptimConfig c;
    const std::string k = kind;
    c.kind = k.substr(0, k.find('-'));
    if (k == "sgd-momentum") c.momentum = 0.9;
    if (k == "adamw-before") c.adamw_decay = "before";
    c.weight_decay = 0.05;
    std::vector<float> portable;
    for (Isa isa : veridl::kernels::supported_isas()) {
      veridl::kernels::set_active_isa(isa);
      Optimizer opt(plan, c);
      std::vector<float> q = p0;
      for (size_t t = 1; t <= grads.size(); ++t) {
        std::vector<float> g = grads[t - 1];
        opt.step(q.data(), g.data(), 0.01f, t);
      }
      if (isa == Isa::Portable)
        portable = q;
      else
        EXPECT_EQ(std::memcmp(q.data(), portable.data(), n * sizeof(float)), 0)
            << kind << ": the " << veridl::kernels::isa_name(isa) << " variant's bits differ from the portable one's";
    }
  }
  veridl::kernels::set_active_isa(saved);
}
