// The activations on prims/activation/elementwise.hpp (sigmoid, swish, gelu, geluErf, hardSwish): their
// contracts verified across the sweeps with every mutant rejected, the wrong-constant mutants invisible to
// finite differences and caught by the field check, values and derivatives against formulas written here
// in double (and published values), hard-swish's convention at its kinks, the vectorizable float math
// (kernels/vmath.hpp) against libm, the fast kernels against the references for any thread count, and the
// activations in a network (the "activation" field, convBnActivation, fast vs reference, the whole-network
// check).
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "contract_testutil.hpp"
#include "net_testutil.hpp"
#include "veridl/kernels/vmath.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/gelu/primitive.hpp"
#include "veridl/prims/geluErf/primitive.hpp"
#include "veridl/prims/hardSwish/primitive.hpp"
#include "veridl/prims/sigmoid/primitive.hpp"
#include "veridl/prims/swish/primitive.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/vjp/check.hpp"
#include "veridl/vjp/registry.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

struct Expect {
  const char* prim;
  const char* contract;
  int chapter;
};
const Expect kActivations[] = {{"sigmoid", "sigmoid_has_vjp_correct", 8},
                               {"swish", "swish_has_vjp_correct", 8},
                               {"gelu", "gelu_has_vjp_correct", 9},
                               {"geluErf", "geluErf_has_vjp_correct", 9},
                               {"hardSwish", "hardSwish_has_vjp_at", 7}};

std::vector<std::string> activation_contracts() {
  std::vector<std::string> names;
  for (const Expect& e : kActivations) names.push_back(e.contract);
  return names;
}

// The functions written the textbook way in double, independently of the policies.
double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }
const std::function<double(double)> kFormula[] = {
    sig,
    [](double x) { return x * sig(x); },
    [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); },
    [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); },
    [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }};

template <class F>
void value_and_derivative(double x, double& y, double& d) {
  Decisions D;
  uint8_t r = 0;
  if constexpr (F::kRegions > 1) r = F::region(x, D);
  y = F::value(x, r);
  d = F::derivative(x, r);
}
void value_and_derivative(size_t k, double x, double& y, double& d) {
  switch (k) {
    case 0: return value_and_derivative<prims::SigmoidFn>(x, y, d);
    case 1: return value_and_derivative<prims::SwishFn>(x, y, d);
    case 2: return value_and_derivative<prims::GeluFn>(x, y, d);
    case 3: return value_and_derivative<prims::GeluErfFn>(x, y, d);
    default: return value_and_derivative<prims::HardSwishFn>(x, y, d);
  }
}

}  // namespace

// ---- the contracts -------------------------------------------------------------------------------------------

TEST(ActivationContracts, RegisteredUnderTheBooksNamesWithProductionShapesAndMutants) {
  for (const Expect& e : kActivations) {
    SCOPED_TRACE(e.prim);
    const prims::OpDef* d = prims::find(e.prim);
    ASSERT_NE(d, nullptr);
    EXPECT_TRUE(d->is_activation) << "may be named in another layer's activation field";
    EXPECT_EQ(d->contracts(), std::vector<std::string>{e.contract});
    const Contract& c = builtin_contract(e.contract);
    EXPECT_EQ(c.chapter, e.chapter);
    EXPECT_GE(c.mutants.size(), 5u);  // the two shared ones and at least three of its own
    size_t production = 0, ties = 0;
    for (const auto& cs : c.sweep) {
      production += cs.production;
      ties += cs.sample == Sample::Ties;
    }
    EXPECT_GE(production, 1u);
    EXPECT_GE(ties, 7u);
  }
}

TEST(ActivationContracts, VerifiedAcrossTheirSweeps) {
  expect_contracts_verified(activation_contracts());
}

TEST(ActivationContracts, EveryMutantIsRejectedForEverySeed) {
  RunOptions opt;
  opt.production = false;
  expect_mutants_rejected(activation_contracts(), {1, 2, 3, 99}, opt);
}

TEST(ActivationContracts, WrongConstantsPassFiniteDifferencesButNotTheFieldCheck) {
  // A GELU backward whose sqrt(2/pi) is 0.7979 or whose cubic constant is 0.0447, and a geluErf whose
  // 1/sqrt(2 pi) is 0.3989: gradients off by ~1e-5 relative, which a float gradcheck cannot tell from
  // rounding; over the prime fields the constant is another field element and the identity fails.
  const std::vector<std::pair<Vjp, std::string>> wrong = {
      {make_elementwise_variant<prims::GeluFn>(16, "sqrt_2_over_pi_0.7979"), "gelu sqrt(2/pi)"},
      {make_elementwise_variant<prims::GeluFn>(16, "cubic_0.0447"), "gelu cubic"},
      {make_elementwise_variant<prims::GeluErfFn>(16, "pdf_constant_0.3989"), "geluErf 1/sqrt(2 pi)"}};
  for (const auto& [f, what] : wrong)
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      CheckOptions co;
      co.seed = seed;
      co.trials = 1;
      EXPECT_FALSE(check_vjp(f, co).pass) << what << " seed " << seed;
      FdOptions fo;
      fo.seed = seed;
      EXPECT_TRUE(fd_gradcheck(f, fo).pass) << what << " seed " << seed << ": finite differences should miss it";
    }
  // The real ones pass both.
  for (const Vjp& f : {make_elementwise_variant<prims::GeluFn>(16, ""), make_elementwise_variant<prims::GeluErfFn>(16, "")}) {
    EXPECT_TRUE(check_vjp(f, CheckOptions{}).pass) << f.name;
    EXPECT_TRUE(fd_gradcheck(f, FdOptions{}).pass) << f.name;
  }
}

// ---- values --------------------------------------------------------------------------------------------------

TEST(Activations, ValuesAndDerivativesMatchIndependentFormulasAndPublishedValues) {
  // Published values (PyTorch: torch.sigmoid, F.silu, F.gelu(approximate='tanh'), F.gelu, F.hardswish at 1).
  const double at1[] = {0.7310585786300049, 0.7310585786300049, 0.8411919906082768, 0.8413447460685429, 2.0 / 3.0};
  for (size_t k = 0; k < 5; ++k) {
    SCOPED_TRACE(kActivations[k].prim);
    double y, d;
    value_and_derivative(k, 1.0, y, d);
    EXPECT_NEAR(y, at1[k], 1e-15);
    // Away from hard-swish's kinks, the derivative is the central difference of the formula written above.
    for (double x : {-7.5, -2.9, -1.0, -0.3, 0.0, 0.2, 1.7, 2.9, 4.0, 9.0}) {
      value_and_derivative(k, x, y, d);
      EXPECT_NEAR(y, kFormula[k](x), 1e-14 * (1 + std::fabs(y))) << "x = " << x;
      const double h = 1e-5, fd = (kFormula[k](x + h) - kFormula[k](x - h)) / (2 * h);
      EXPECT_NEAR(d, fd, 1e-8) << "x = " << x;
    }
  }
}

TEST(HardSwish, TheKinksBelongToTheMiddlePieceAsInPyTorch) {
  // PyTorch's hardswish_backward: x < -3: 0; -3 <= x <= 3: x/3 + 1/2; x > 3: 1.
  const std::vector<std::pair<double, double>> want = {{-3.5, 0.0}, {-3.0, -0.5}, {0.0, 0.5}, {3.0, 1.5}, {3.25, 1.0}};
  for (const auto& [x, g] : want) {
    double y, d;
    value_and_derivative(4, x, y, d);
    EXPECT_DOUBLE_EQ(d, g) << "reference at x = " << x;
    const uint8_t r = prims::HardSwishFn::region_f(float(x));
    EXPECT_FLOAT_EQ(prims::HardSwishFn::derivative_f(float(x), r), float(g)) << "float kernel at x = " << x;
    EXPECT_FLOAT_EQ(prims::HardSwishFn::value_f(float(x), r), float(kFormula[4](x))) << "x = " << x;
  }
  // The convention is invisible to the identity check (both conventions are consistent backwards of their
  // own forward decisions), which is why it is pinned here: a tape that puts x = 3 in the high piece is
  // verified just as well.
  Decisions D;
  EXPECT_EQ(prims::HardSwishFn::region(3.0, D), prims::HardSwishFn::kMid);
  EXPECT_EQ(prims::HardSwishFn::region(-3.0, D), prims::HardSwishFn::kMid);
  EXPECT_EQ(prims::HardSwishFn::region(3.0000001, D), prims::HardSwishFn::kHigh);
  EXPECT_EQ(prims::HardSwishFn::region(-3.0000001, D), prims::HardSwishFn::kLow);
}

TEST(Vmath, TheVectorizableFunctionsAreWithinTheirStatedErrorsOfLibm) {
  using namespace kernels::vmath;
  double e_exp = 0, e_sig = 0, e_pair = 0, e_erf = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const float x = float(i) * 0.0005f;  // [-100, 100]
    const double xd = x;
    if (std::fabs(xd) <= 87.0) e_exp = std::max(e_exp, std::fabs(vexp(x) - std::exp(xd)) / std::exp(xd));
    e_sig = std::max(e_sig, std::fabs(vsigmoid(x) - 1.0 / (1.0 + std::exp(-xd))));
    float s, c;
    vsigmoid_pair(x, s, c);
    const double cref = 1.0 / (1.0 + std::exp(xd));  // 1 - sigmoid(x), relative error: no cancellation
    if (cref > 1e-37) e_pair = std::max(e_pair, std::fabs(c - cref) / cref);
    e_erf = std::max(e_erf, std::fabs(verf(x) - std::erf(xd)));
  }
  EXPECT_LT(e_exp, 4e-7);
  EXPECT_LT(e_sig, 1e-7);
  EXPECT_LT(e_pair, 1e-6);
  EXPECT_LT(e_erf, 5e-7);
  // Far out: no inf or NaN, the right limits.
  EXPECT_LT(vsigmoid(-1e30f), 1e-38f);
  EXPECT_EQ(vsigmoid(1e30f), 1.0f);
  EXPECT_EQ(verf(1e30f), 1.0f);
  EXPECT_EQ(verf(-1e30f), -1.0f);
  EXPECT_TRUE(std::isfinite(vexp(1e30f)));
}

// ---- the fast kernels ----------------------------------------------------------------------------------------

template <class F>
void fast_matches_reference(const char* name) {
  SCOPED_TRACE(name);
  for (size_t n : {size_t{1}, size_t{7}, size_t{33}, size_t{1} << 15}) {  // the last one is split across threads
    std::mt19937_64 rng(n);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> x(n), dy(n);
    for (auto& v : x) v = nd(rng);
    for (auto& v : dy) v = nd(rng);
    if (n > 8) x[1] = -3.0f, x[2] = 3.0f, x[3] = 0.0f, x[4] = 60.0f, x[5] = -60.0f;  // kinks, zero, saturation
    std::vector<double> xd(x.begin(), x.end()), dyd(dy.begin(), dy.end()), yr(n), dxr(n);
    std::vector<uint8_t> rr(n), rf(n);
    Decisions D;
    ops::elementwise_forward<F>(n, xd.data(), yr.data(), rr.data(), D);
    ops::elementwise_backward<F>(n, xd.data(), rr.data(), dyd.data(), dxr.data());
    std::vector<float> y1(n), dx1(n);
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> y(n), dx(n);
      kernels::elementwise_forward<F>(n, x.data(), y.data(), rf.data());
      kernels::elementwise_backward<F>(n, x.data(), rf.data(), dy.data(), dx.data());
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(y[i], yr[i], 1e-6 * (1 + std::fabs(yr[i]))) << "y, n=" << n << " i=" << i << " x=" << x[i];
        ASSERT_NEAR(dx[i], dxr[i], 1e-6 * (1 + std::fabs(dxr[i]))) << "dx, n=" << n << " i=" << i << " x=" << x[i];
        if constexpr (F::kRegions > 1) {
          ASSERT_EQ(rf[i], rr[i]) << "piece, i=" << i << " x=" << x[i];
        }
      }
      if (threads == 1) {
        y1 = y;
        dx1 = dx;
      } else {
        EXPECT_EQ(y, y1) << "the result depends on the thread count";
        EXPECT_EQ(dx, dx1) << "the result depends on the thread count";
      }
    }
    omp_set_num_threads(2);
  }
}

TEST(Activations, FastKernelsMatchTheReferenceAndAreThreadIndependent) {
  fast_matches_reference<prims::SigmoidFn>("sigmoid");
  fast_matches_reference<prims::SwishFn>("swish");
  fast_matches_reference<prims::GeluFn>("gelu");
  fast_matches_reference<prims::GeluErfFn>("geluErf");
  fast_matches_reference<prims::HardSwishFn>("hardSwish");
}

// ---- in a network ----------------------------------------------------------------------------------------------

TEST(ActivationNet, TheActivationFieldsLowerToTheirPrimitives) {
  const net::Plan p = net::compile(testutil::activation_net(), 2);
  std::vector<std::string> ops;
  for (const auto& n : p.nodes) ops.push_back(prims::table()[n.op].name);
  EXPECT_EQ(ops, (std::vector<std::string>{"conv2d", "batchNorm", "swish", "conv2d", "hardSwish", "conv2d", "gelu",
                                           "conv2d", "geluErf", "globalAvgPool", "sigmoid", "dense", "softmaxCE"}));
  // An unknown activation is one line naming the layer and listing the supported ones.
  try {
    net::parse_netspec(R"({"name": "x", "layers": [{"type": "flatten"},
        {"type": "dense", "fanIn": 784, "fanOut": 10, "activation": "silu"}]})",
                       "a.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("a.json: layer 1 (dense): activation 'silu' is not supported (supported: identity, relu, relu6, "
                     "sigmoid, swish, hardSwish, gelu, geluErf)"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(ActivationNet, FastKernelsMatchTheReferenceAndTheWholeNetworkIsVerified) {
  testutil::expect_fast_kernels_match_reference(testutil::activation_net(), 1e-4);
  const net::Plan p = net::compile(testutil::activation_net(), 2, 0.1);
  const NetCheckReport ok = verify_plan(p, 1, 2);
  EXPECT_TRUE(ok.pass) << ok.failure;
  EXPECT_EQ(ok.params, p.n_params);
}
