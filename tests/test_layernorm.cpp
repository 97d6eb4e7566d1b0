// LayerNorm and LayerScale (book ch. 9, ConvNeXt): their contracts verified across their sweeps with every
// mutant rejected, hand-worked values against a naive computation written here (not the reference), the
// NetSpec fields and their one-line errors, the constant initialisation of LayerScale's gamma, the fast
// kernels against the references on odd shapes and for any thread count, and both in a network (fast vs
// reference through the executor, the whole-network check).
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "contract_testutil.hpp"
#include "kernel_testutil.hpp"
#include "net_testutil.hpp"
#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/layerNorm/kernel.hpp"
#include "veridl/prims/layerNorm/mutants.hpp"
#include "veridl/prims/layerNorm/primitive.hpp"
#include "veridl/prims/layerNorm/reference.hpp"
#include "veridl/prims/layerScale/kernel.hpp"
#include "veridl/prims/layerScale/mutants.hpp"
#include "veridl/prims/layerScale/primitive.hpp"
#include "veridl/prims/layerScale/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/vjp/check.hpp"
#include "veridl/vjp/registry.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

const std::vector<std::string> kLayerNormContracts = {"layerNorm_has_vjp_correct", "layerScale_has_vjp_correct"};

// LayerNorm written the plain way, independently of ops::layernorm_*: x as [rows][C][inner] in double,
// statistics with std::sqrt, y = gamma (x - mean) / sqrt(var + eps) + beta.
std::vector<double> naive_layernorm(size_t rows, size_t C, size_t inner, double eps, const std::vector<double>& x,
                                    const std::vector<double>& gamma, const std::vector<double>& beta) {
  std::vector<double> y(x.size());
  for (size_t o = 0; o < rows; ++o)
    for (size_t i = 0; i < inner; ++i) {
      auto X = [&](size_t c) { return x[(o * C + c) * inner + i]; };
      double mean = 0;
      for (size_t c = 0; c < C; ++c) mean += X(c);
      mean /= double(C);
      double var = 0;
      for (size_t c = 0; c < C; ++c) var += (X(c) - mean) * (X(c) - mean);
      var /= double(C);
      for (size_t c = 0; c < C; ++c) y[(o * C + c) * inner + i] = gamma[c] * (X(c) - mean) / std::sqrt(var + eps) + beta[c];
    }
  return y;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<double> normal_doubles(size_t n, uint64_t seed, double sd = 1.0, double mean = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(mean, sd);
  std::vector<double> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

// A primitive's fields through the table, as the NetSpec lowering reads them.
struct ParsedFields {
  std::shared_ptr<void> attrs;
  nlohmann::json normalised;
};
ParsedFields parse(const std::string& prim, const nlohmann::json& j, const graph::Where& w) {
  const prims::OpDef& d = *prims::find(prim);
  graph::Fields f(j, w);
  ParsedFields p;
  p.attrs = d.parse(f);
  f.finish();
  p.normalised = nlohmann::json::object();
  d.to_json(p.attrs.get(), p.normalised);
  return p;
}

}  // namespace

// ---- the contracts -------------------------------------------------------------------------------------

TEST(LayerNormContracts, RegisteredUnderTheBooksNamesAndChapters) {
  for (const std::string& name : kLayerNormContracts) {
    const Contract& c = builtin_contract(name);
    EXPECT_EQ(c.chapter, 9) << name;
    EXPECT_TRUE(c.wrt.empty()) << name << ": one contract for every input";
    EXPECT_GE(c.mutants.size(), std::string(name) == "layerNorm_has_vjp_correct" ? 4u : 3u) << name;
    bool production = false, batch1 = false, batchN = false, channels = false, last = false, tokens = false;
    for (const auto& cs : c.sweep) {
      production |= cs.production;
      batch1 |= cs.config.rfind("B=1 ", 0) == 0;
      batchN |= cs.config.rfind("B=3 ", 0) == 0;
      channels |= cs.config.find("channels [5,3,3]") != std::string::npos;  // odd C and odd H, W
      last |= cs.config.find("last [5]") != std::string::npos;
      tokens |= cs.config.find("last [2,5]") != std::string::npos;
    }
    EXPECT_TRUE(production && batch1 && batchN && channels && last && tokens) << name;
  }
  // Both axes at production size, ConvNeXt's eps among the configurations.
  size_t prod = 0, eps6 = 0;
  for (const auto& cs : builtin_contract("layerNorm_has_vjp_correct").sweep) {
    prod += cs.production;
    eps6 += cs.config.find("eps=1e-06") != std::string::npos;
  }
  EXPECT_EQ(prod, 2u);
  EXPECT_GT(eps6, 10u);
  EXPECT_EQ(prims::find("layerNorm")->contracts(), std::vector<std::string>{"layerNorm_has_vjp_correct"});
  EXPECT_EQ(prims::find("layerScale")->contracts(), std::vector<std::string>{"layerScale_has_vjp_correct"});
  EXPECT_FALSE(prims::find("layerNorm")->is_activation);
  EXPECT_FALSE(prims::find("layerScale")->is_activation);
}

TEST(LayerNormContracts, VerifiedAcrossTheirSweeps) {
  expect_contracts_verified(kLayerNormContracts);
}

TEST(LayerNormContracts, EveryMutantIsRejectedForEverySeed) {
  expect_mutants_rejected(kLayerNormContracts, {1, 2, 3, 1234567});
}

TEST(LayerNormContracts, TheDefaultEpsMutantIsInvisibleAtTheDefaultEpsAndCaughtAtConvNeXts) {
  // r recomputed with 1e-5: the same oracle value when the layer's eps is 1e-5, another one at 1e-6.
  const ops::LayerNormShape s{2, 1, 3, 4};
  CheckOptions o;
  EXPECT_TRUE(check_vjp(make_vjp("ln", ops::LayerNormMutantOp{{s, 1e-5}, "dx_default_eps"}), o).pass);
  EXPECT_TRUE(check_vjp(make_vjp("ln", ops::LayerNormOp{s, 1e-6}), o).pass);
  const Vjp wrong = make_vjp("ln", ops::LayerNormMutantOp{{s, 1e-6}, "dx_default_eps"});
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    CheckOptions co;
    co.seed = seed;
    co.trials = 1;
    EXPECT_FALSE(check_vjp(wrong, co).pass) << "seed " << seed;
    // A ~1e-6 relative error in dx: below finite differences' tolerance.
    FdOptions fo;
    fo.seed = seed;
    fo.wrt = {"x"};
    EXPECT_TRUE(fd_gradcheck(wrong, fo).pass) << "seed " << seed;
  }
}

// ---- LayerNorm: values -----------------------------------------------------------------------------------

TEST(LayerNorm, HandWorkedRowAndANaiveComputationOnBothAxes) {
  // One row {1, 2, 3, 4}: mean 2.5, biased variance 1.25; with gamma {1, 2, 1, 1}, beta {0, 0, 0, 10}.
  {
    const ops::LayerNormShape s{1, 1, 4, 1};
    const std::vector<double> x{1, 2, 3, 4}, gamma{1, 2, 1, 1}, beta{0, 0, 0, 10};
    std::vector<double> y(4), r(1), xhat(4);
    ops::layernorm_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), y.data(), r.data(), xhat.data());
    const double rr = 1.0 / std::sqrt(1.25 + 1e-5);
    EXPECT_NEAR(r[0], rr, 1e-15);
    const std::vector<double> want{-1.5 * rr, 2 * -0.5 * rr, 0.5 * rr, 1.5 * rr + 10};
    EXPECT_LT(max_abs_diff(y, want), 1e-12);
  }
  // Channels first: at every pixel of a [3, 2, 2] example the three channel values are normalised, which is
  // not what a normalisation over the whole example or over H x W gives.
  {
    const size_t C = 3, H = 2, W = 2;
    const std::vector<double> x{1, 5, -2, 0,    // channel 0
                                3, 5, 4, 0.5,   // channel 1
                                8, 5, 1, -0.5}; // channel 2
    const std::vector<double> gamma{1.5, -1, 0.5}, beta{0.25, 0, -1};
    const ops::LayerNormShape s{1, 1, C, H * W};
    std::vector<double> y(x.size()), r(H * W), xhat(x.size());
    ops::layernorm_forward(s, 1e-6, x.data(), gamma.data(), beta.data(), y.data(), r.data(), xhat.data());
    EXPECT_LT(max_abs_diff(y, naive_layernorm(1, C, H * W, 1e-6, x, gamma, beta)), 1e-12);
    // Pixel (0, 0): {1, 3, 8}, mean 4, variance (9 + 1 + 16) / 3 = 26/3.
    EXPECT_NEAR(y[0], 1.5 * (1 - 4) / std::sqrt(26.0 / 3 + 1e-6) + 0.25, 1e-12);
    // Pixel (0, 1): all three equal 5: xhat = 0, y = beta (r = 1/sqrt(eps)).
    EXPECT_EQ(y[1], 0.25);
    EXPECT_EQ(y[4 + 1], 0.0);
    EXPECT_EQ(y[8 + 1], -1.0);
    EXPECT_NEAR(r[1], 1000.0, 1e-9);
  }
  // Random shapes, both axes, against the naive loop (forward) and its central-difference Jacobian
  // (backward: dx, dgamma, dbeta).
  struct Case {
    size_t rows, C, inner;
    double eps;
  };
  for (const Case& k : {Case{2, 5, 3, 1e-6}, Case{3, 4, 1, 1e-5}, Case{1, 7, 2, 0.1}, Case{2, 2, 5, 1e-5}}) {
    SCOPED_TRACE(fmt::format("rows={} C={} inner={} eps={}", k.rows, k.C, k.inner, k.eps));
    const ops::LayerNormShape s{k.rows, 1, k.C, k.inner};
    const size_t n = s.count();
    const std::vector<double> x = normal_doubles(n, 1 + n, 2.0, 0.5), gamma = normal_doubles(k.C, 2 + n),
                              beta = normal_doubles(k.C, 3 + n), dy = normal_doubles(n, 4 + n);
    std::vector<double> y(n), r(s.positions()), xhat(n);
    ops::layernorm_forward(s, k.eps, x.data(), gamma.data(), beta.data(), y.data(), r.data(), xhat.data());
    EXPECT_LT(max_abs_diff(y, naive_layernorm(k.rows, k.C, k.inner, k.eps, x, gamma, beta)), 1e-12);
    std::vector<double> dx(n), dg(k.C), db(k.C);
    ops::layernorm_backward(s, gamma.data(), r.data(), xhat.data(), dy.data(), dx.data(), dg.data(), db.data());
    // <dy, (f(v + h e) - f(v - h e)) / 2h> for every coordinate e of x, gamma, beta.
    auto loss = [&](const std::vector<double>& xv, const std::vector<double>& gv, const std::vector<double>& bv) {
      const std::vector<double> f = naive_layernorm(k.rows, k.C, k.inner, k.eps, xv, gv, bv);
      double acc = 0;
      for (size_t i = 0; i < n; ++i) acc += dy[i] * f[i];
      return acc;
    };
    const double h = 1e-6;
    // The central difference of loss along one coordinate of x, gamma or beta (copies perturbed).
    auto fd = [&](int which, size_t i) {
      std::vector<double> v[3] = {x, gamma, beta};
      v[which][i] += h;
      const double up = loss(v[0], v[1], v[2]);
      v[which][i] -= 2 * h;
      return (up - loss(v[0], v[1], v[2])) / (2 * h);
    };
    for (size_t i = 0; i < n; ++i) {
      const double g = fd(0, i);
      EXPECT_NEAR(dx[i], g, 1e-5 * (1 + std::fabs(g))) << "dx " << i;
    }
    for (size_t c = 0; c < k.C; ++c) {
      const double dgamma_fd = fd(1, c), dbeta_fd = fd(2, c);
      EXPECT_NEAR(dg[c], dgamma_fd, 1e-5 * (1 + std::fabs(dgamma_fd))) << "dgamma " << c;
      EXPECT_NEAR(db[c], dbeta_fd, 1e-5 * (1 + std::fabs(dbeta_fd))) << "dbeta " << c;
    }
  }
}

TEST(LayerNorm, TrainAndEvalComputeTheSameAndEvalWritesNoSavedBuffers) {
  // Through the table's dispatch, as the executor calls it: no running state, the same y in both modes.
  const prims::OpDef& d = *prims::find("layerNorm");
  const graph::Where w{"t", "", {}};
  const nlohmann::json fields{{"eps", 1e-6}};
  ParsedFields p = parse("layerNorm", fields, w);
  const std::vector<graph::VShape> in{{{4, 3, 3}}};
  d.infer(p.attrs.get(), in, w);
  graph::Decl decl;
  d.declare(p.attrs.get(), decl);
  EXPECT_TRUE(decl.state.empty());
  ASSERT_EQ(decl.saved.size(), 2u);
  EXPECT_EQ(decl.saved[0].per_example, 9u);   // r: one per pixel
  EXPECT_EQ(decl.saved[1].per_example, 36u);  // xhat
  ASSERT_EQ(decl.params.size(), 2u);
  EXPECT_EQ(decl.params[0].name, "gamma");
  EXPECT_EQ(decl.params[0].init, graph::Init::One);
  EXPECT_EQ(decl.params[1].name, "beta");
  EXPECT_TRUE(decl.params[1].bias);
  const size_t op = prims::index_of("layerNorm");
  std::vector<float> x = random_floats(2 * 36, 5), gamma = random_floats(4, 6), beta = random_floats(4, 7);
  std::vector<float> y1(72), y2(72), r(18), xhat(72);
  graph::Call<float> c;
  c.n = 2;
  c.in = {x.data()};
  c.p = {gamma.data(), beta.data()};
  c.saved = {r.data(), xhat.data()};
  c.out = y1.data();
  c.mode = graph::Mode::Train;
  prims::forward_fn<float, graph::Fast>(op)(p.attrs.get(), c);
  c.out = y2.data();
  c.mode = graph::Mode::Eval;
  c.saved = {nullptr, nullptr};  // an inference executor holds none
  prims::forward_fn<float, graph::Fast>(op)(p.attrs.get(), c);
  EXPECT_TRUE(same_bits(y1, y2));
  std::vector<double> yd(72);
  graph::Call<double> cd;
  std::vector<double> xd = to_double(x), gd = to_double(gamma), bd = to_double(beta);
  cd.n = 2;
  cd.in = {xd.data()};
  cd.p = {gd.data(), bd.data()};
  cd.saved = {nullptr, nullptr};
  cd.out = yd.data();
  cd.mode = graph::Mode::Eval;
  prims::forward_fn<double, graph::Ref>(op)(p.attrs.get(), cd);
  EXPECT_TRUE(close(y2, yd, 4, "eval forward, fast vs reference"));
}

// ---- fields and errors --------------------------------------------------------------------------------------

TEST(LayerNorm, FieldsAndErrors) {
  const prims::OpDef& d = *prims::find("layerNorm");
  const graph::Where w{"c.json", "layer 4 (layerNorm): ", {}};
  EXPECT_EQ(parse("layerNorm", nlohmann::json::object(), w).normalised, (nlohmann::json{{"eps", 1e-5}}));
  EXPECT_EQ(parse("layerNorm", {{"axis", "channels"}, {"eps", 1e-6}}, w).normalised,
            (nlohmann::json{{"axis", "channels"}, {"eps", 1e-6}}));
  EXPECT_EQ(parse("layerNorm", {{"axis", "last"}}, w).normalised, (nlohmann::json{{"axis", "last"}, {"eps", 1e-5}}));
  // Bad fields: one line naming the file, the layer and the field.
  for (const nlohmann::json& bad : {nlohmann::json{{"axis", "rows"}}, nlohmann::json{{"axis", 1}}}) {
    const std::string m = error_of([&] { parse("layerNorm", bad, w); });
    EXPECT_TRUE(mentions(m, {"c.json", "layer 4 (layerNorm)", "'axis'"})) << m;
  }
  EXPECT_TRUE(mentions(error_of([&] { parse("layerNorm", {{"axis", "rows"}}, w); }), {"\"channels\" or \"last\""}));
  for (const nlohmann::json& bad : {nlohmann::json{{"eps", 0}}, nlohmann::json{{"eps", -1e-5}}, nlohmann::json{{"eps", "1e-5"}},
                                    nlohmann::json{{"eps", std::numeric_limits<double>::infinity()}},
                                    nlohmann::json{{"eps", std::numeric_limits<double>::quiet_NaN()}}}) {
    const std::string m = error_of([&] { parse("layerNorm", bad, w); });
    EXPECT_TRUE(mentions(m, {"c.json", "layer 4 (layerNorm)", "'eps'"})) << bad.dump() << ": " << m;
  }
  EXPECT_TRUE(mentions(error_of([&] { parse("layerNorm", {{"epsilon", 1e-6}}, w); }), {"layer 4 (layerNorm)", "epsilon", "axis", "eps"}));
  // The axis resolved by the input's rank; "channels" needs C x H x W.
  auto shape_of = [&](const nlohmann::json& j, const graph::VShape& in) {
    ParsedFields p = parse("layerNorm", j, w);
    const std::vector<graph::VShape> ins{in};
    EXPECT_EQ(d.infer(p.attrs.get(), ins, w), in);
    return static_cast<const prims::LayerNorm::Attrs*>(p.attrs.get())->shape;
  };
  auto dims = [](const ops::LayerNormShape& s) { return std::vector<size_t>{s.P, s.C, s.inner}; };
  EXPECT_EQ(dims(shape_of(nlohmann::json::object(), {{96, 7, 5}})), (std::vector<size_t>{1, 96, 35}));
  EXPECT_EQ(dims(shape_of(nlohmann::json::object(), {{197, 192}})), (std::vector<size_t>{197, 192, 1}));
  EXPECT_EQ(dims(shape_of(nlohmann::json::object(), {{768}})), (std::vector<size_t>{1, 768, 1}));
  EXPECT_EQ(dims(shape_of({{"axis", "last"}}, {{4, 3, 5}})), (std::vector<size_t>{12, 5, 1}));
  for (const graph::VShape& flat : {graph::VShape{{197, 192}}, graph::VShape{{12}}}) {
    const std::string m = error_of([&] { shape_of({{"axis", "channels"}}, flat); });
    EXPECT_TRUE(mentions(m, {"c.json", "layer 4 (layerNorm)", "'axis'", "channels", flat.str()})) << m;
  }
  // The same through a NetSpec: the error names the layer by its index.
  const std::string net = error_of([] {
    net::NetBuilder("bad").image(4, 4, 2).flatten().layer("layerNorm", {{"axis", "channels"}}).dense(32, 3).build();
  });
  EXPECT_TRUE(mentions(net, {"NetBuilder(bad)", "layer 1 (layerNorm)", "'axis'"})) << net;
}

TEST(LayerScale, FieldsErrorsAndTheChannelAxis) {
  const prims::OpDef& d = *prims::find("layerScale");
  const graph::Where w{"c.json", "layer 7 (layerScale): ", {}};
  EXPECT_EQ(parse("layerScale", nlohmann::json::object(), w).normalised, (nlohmann::json{{"init", 1e-6}}));
  EXPECT_EQ(parse("layerScale", {{"init", 0.1}}, w).normalised, (nlohmann::json{{"init", 0.1}}));
  for (const nlohmann::json& bad : {nlohmann::json{{"init", "small"}},
                                    nlohmann::json{{"init", std::numeric_limits<double>::infinity()}},
                                    nlohmann::json{{"init", std::numeric_limits<double>::quiet_NaN()}}}) {
    const std::string m = error_of([&] { parse("layerScale", bad, w); });
    EXPECT_TRUE(mentions(m, {"c.json", "layer 7 (layerScale)", "'init'"})) << m;
  }
  auto shape_of = [&](const graph::VShape& in) {
    ParsedFields p = parse("layerScale", nlohmann::json::object(), w);
    const std::vector<graph::VShape> ins{in};
    EXPECT_EQ(d.infer(p.attrs.get(), ins, w), in);
    graph::Decl decl;
    d.declare(p.attrs.get(), decl);
    EXPECT_EQ(decl.params.size(), 1u);
    EXPECT_EQ(decl.params[0].init, graph::Init::Const);
    EXPECT_EQ(decl.params[0].value, 1e-6f);
    EXPECT_EQ(decl.bwd_reads_input, std::vector<bool>{true});
    const auto& s = static_cast<const prims::LayerScale::Attrs*>(p.attrs.get())->shape;
    EXPECT_EQ(decl.params[0].shape, std::vector<int64_t>{int64_t(s.C)});
    return std::vector<size_t>{s.P, s.C, s.inner};
  };
  EXPECT_EQ(shape_of({{96, 56, 56}}), (std::vector<size_t>{1, 96, 56 * 56}));  // NCHW: the first axis
  EXPECT_EQ(shape_of({{197, 192}}), (std::vector<size_t>{197, 192, 1}));        // tokens: the last axis
  EXPECT_EQ(shape_of({{384}}), (std::vector<size_t>{1, 384, 1}));
}

// ---- LayerScale: values and initialisation ---------------------------------------------------------------

TEST(LayerScale, HandWorkedOnBothChannelAxes) {
  // [2, 1, 3] channels first: gamma {2, -3} scales channel 0's three values by 2 and channel 1's by -3.
  {
    const ops::LayerScaleShape s{1, 1, 2, 3};
    const std::vector<double> x{1, 2, 3, 4, 5, 6}, gamma{2, -3}, dy{1, 0, -1, 2, 2, 0.5};
    std::vector<double> y(6), dx(6), dg(2);
    ops::layerscale_forward(s, x.data(), gamma.data(), y.data());
    EXPECT_EQ(y, (std::vector<double>{2, 4, 6, -12, -15, -18}));
    ops::layerscale_backward(s, x.data(), gamma.data(), dy.data(), dx.data(), dg.data());
    EXPECT_EQ(dx, (std::vector<double>{2, 0, -2, -6, -6, -1.5}));
    EXPECT_EQ(dg, (std::vector<double>{1 - 3, 8 + 10 + 3}));
  }
  // [2, 3] tokens: gamma per last-axis entry, dgamma summed over the tokens and the batch (2 examples).
  {
    const ops::LayerScaleShape s{2, 2, 3, 1};
    const std::vector<double> x{1, 2, 3, 4, 5, 6, -1, -2, -3, 0, 1, 0}, gamma{10, 0.5, -1};
    const std::vector<double> dy(12, 1.0);
    std::vector<double> y(12), dx(12), dg(3);
    ops::layerscale_forward(s, x.data(), gamma.data(), y.data());
    EXPECT_EQ(y, (std::vector<double>{10, 1, -3, 40, 2.5, -6, -10, -1, 3, 0, 0.5, 0}));
    ops::layerscale_backward(s, x.data(), gamma.data(), dy.data(), dx.data(), dg.data());
    EXPECT_EQ(dx, (std::vector<double>{10, 0.5, -1, 10, 0.5, -1, 10, 0.5, -1, 10, 0.5, -1}));
    EXPECT_EQ(dg, (std::vector<double>{1 + 4 - 1 + 0, 2 + 5 - 2 + 1, 3 + 6 - 3 + 0}));
  }
}

// The network of these tests: testutil::layernorm_net (tests/net_testutil.hpp), every new layer in its three
// forms (LayerNorm over the channels, over the last axis of a 3-D value, on flat features; LayerScale on
// channels first and on flat features).

TEST(LayerScale, GammaStartsAtItsInitFieldAndLayerNormAtOneAndZero) {
  const net::Plan p = net::compile(layernorm_net(), 2);
  std::vector<float> params(p.n_params, -7.0f);
  train::he_init(p, 3, params.data());
  size_t seen = 0;
  for (const auto& t : p.params) {
    float want = std::numeric_limits<float>::quiet_NaN();
    if (t.name == "ls.gamma") want = 0.5f;
    if (t.name == "layers.10.gamma") want = 2.0f;
    if (t.name == "ln.gamma" || t.name == "layers.6.gamma" || t.name == "layers.9.gamma") want = 1.0f;
    if (t.name == "ln.beta" || t.name == "layers.6.beta" || t.name == "layers.9.beta") want = 0.0f;
    if (std::isnan(want)) continue;
    ++seen;
    for (size_t i = 0; i < t.size; ++i) ASSERT_EQ(params[t.offset + i], want) << t.name << " " << i;
  }
  EXPECT_EQ(seen, 8u);
  // The He streams of the weights are unchanged by the constant tensors between them: the stem's weights are
  // the first He tensor's draws whatever follows.
  const net::Plan q = net::compile(net::NetBuilder("plain").image(6, 6, 3)
                                       .layer("conv2d", {{"ic", 3}, {"oc", 8}, {"k", 3}, {"activation", "identity"}})
                                       .layer("globalAvgPool").dense(8, 4).build(),
                                   2);
  std::vector<float> qp(q.n_params);
  train::he_init(q, 3, qp.data());
  for (size_t i = 0; i < q.params[0].size; ++i) ASSERT_EQ(qp[i], params[i]) << i;
  // The default init is ConvNeXt's 1e-6.
  const net::Plan d = net::compile(net::NetBuilder("d").image(2, 2, 3).layer("layerScale").layer("globalAvgPool").dense(3, 2).build(), 1);
  std::vector<float> dp(d.n_params);
  train::he_init(d, 1, dp.data());
  ASSERT_EQ(d.params[0].name, "layers.0.gamma");
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(dp[i], 1e-6f);
}

// ---- the fast kernels ---------------------------------------------------------------------------------------

namespace {
// Runs f with the OpenMP team set to `threads`, then restores it.
template <class F>
void with_threads(int threads, F&& f) {
  const int keep = omp_get_max_threads();
  omp_set_num_threads(threads);
  f();
  omp_set_num_threads(keep);
}
}  // namespace

TEST(LayerNorm, FastKernelsMatchTheReferenceOnOddShapesAndAreThreadIndependent) {
  const std::vector<ops::LayerNormShape> shapes{
      {1, 1, 1, 1},   {1, 1, 7, 1},    {3, 1, 5, 7},  {2, 1, 3, 63}, {2, 1, 70, 81}, {2, 7, 9, 1},
      {1, 197, 192, 1}, {3, 1, 2, 129}, {4, 1, 96, 56 * 56}};  // the last: ConvNeXt-T stage 1, forks the team
  uint64_t seed = 10;
  for (const ops::LayerNormShape& s : shapes) {
    SCOPED_TRACE(s.str());
    const size_t n = s.count();
    std::vector<float> x = random_floats(n, ++seed, -3.0f, 5.0f), gamma = random_floats(s.C, ++seed),
                       beta = random_floats(s.C, ++seed), dy = random_floats(n, ++seed);
    const std::vector<double> xd = to_double(x), gd = to_double(gamma), bd = to_double(beta), dyd = to_double(dy);
    std::vector<double> yr(n), rr(s.positions()), hr(n), dxr(n), dgr(s.C), dbr(s.C);
    ops::layernorm_forward(s, 1e-6, xd.data(), gd.data(), bd.data(), yr.data(), rr.data(), hr.data());
    std::vector<float> y(n, NAN), r(s.positions(), NAN), h(n, NAN), dx(n, NAN), dg(s.C, NAN), db(s.C, NAN);
    kernels::layernorm_forward(s, 1e-6, x.data(), gamma.data(), beta.data(), y.data(), r.data(), h.data());
    EXPECT_TRUE(close(y, yr, s.C, "y"));
    EXPECT_TRUE(close(h, hr, s.C, "xhat"));
    EXPECT_TRUE(close(r, rr, s.C, "r"));
    // The backward from the reference's saved values rounded to float (what the kernel gets in training).
    const std::vector<float> rf(rr.begin(), rr.end()), hf(hr.begin(), hr.end());
    const std::vector<double> rfd = to_double(rf), hfd = to_double(hf);
    ops::layernorm_backward(s, gd.data(), rfd.data(), hfd.data(), dyd.data(), dxr.data(), dgr.data(), dbr.data());
    kernels::layernorm_backward(s, gamma.data(), rf.data(), hf.data(), dy.data(), dx.data(), dg.data(), db.data());
    EXPECT_TRUE(close(dx, dxr, s.C, "dx"));
    EXPECT_TRUE(close(dg, dgr, s.positions(), "dgamma"));
    EXPECT_TRUE(close(db, dbr, s.positions(), "dbeta"));
    // Any subset of the gradients.
    std::vector<float> dg2(s.C, NAN), dx2(n, NAN);
    kernels::layernorm_backward(s, gamma.data(), rf.data(), hf.data(), dy.data(), nullptr, dg2.data(), nullptr);
    kernels::layernorm_backward(s, gamma.data(), rf.data(), hf.data(), dy.data(), dx2.data(), nullptr, nullptr);
    EXPECT_TRUE(same_bits(dg2, dg));
    EXPECT_TRUE(same_bits(dx2, dx));
    // Bit-identical on 1 and 3 threads; the forward without saved buffers gives the same y.
    for (int threads : {1, 3}) {
      with_threads(threads, [&] {
        std::vector<float> y1(n), r1(s.positions()), h1(n), y0(n), dx1(n), dg1(s.C), db1(s.C);
        kernels::layernorm_forward(s, 1e-6, x.data(), gamma.data(), beta.data(), y1.data(), r1.data(), h1.data());
        kernels::layernorm_forward(s, 1e-6, x.data(), gamma.data(), beta.data(), y0.data(), nullptr, nullptr);
        kernels::layernorm_backward(s, gamma.data(), rf.data(), hf.data(), dy.data(), dx1.data(), dg1.data(), db1.data());
        EXPECT_TRUE(same_bits(y1, y) && same_bits(r1, r) && same_bits(h1, h) && same_bits(y0, y)) << threads;
        EXPECT_TRUE(same_bits(dx1, dx) && same_bits(dg1, dg) && same_bits(db1, db)) << threads;
      });
    }
  }
}

TEST(LayerScale, FastKernelsMatchTheReferenceAndAreThreadIndependent) {
  const std::vector<ops::LayerScaleShape> shapes{{1, 1, 1, 1},  {3, 1, 5, 7},     {2, 7, 9, 1},
                                                 {1, 1, 300, 9}, {2, 197, 192, 1}, {4, 1, 96, 56 * 56}};
  uint64_t seed = 40;
  for (const ops::LayerScaleShape& s : shapes) {
    SCOPED_TRACE(s.str());
    const size_t n = s.count();
    const std::vector<float> x = random_floats(n, ++seed), gamma = random_floats(s.C, ++seed),
                             dy = random_floats(n, ++seed);
    // y and dx: one multiply each, bit for bit the reference at float.
    std::vector<float> yr(n), dxr(n), dgf(s.C), y(n, NAN), dx(n, NAN), dg(s.C, NAN);
    ops::layerscale_forward(s, x.data(), gamma.data(), yr.data());
    ops::layerscale_backward(s, x.data(), gamma.data(), dy.data(), dxr.data(), dgf.data());
    kernels::layerscale_forward(s, x.data(), gamma.data(), y.data());
    kernels::layerscale_backward(s, x.data(), gamma.data(), dy.data(), dx.data(), dg.data());
    EXPECT_TRUE(same_bits(y, yr));
    EXPECT_TRUE(same_bits(dx, dxr));
    // dgamma: summed in double, against the double reference.
    const std::vector<double> xd = to_double(x), gd = to_double(gamma), dyd = to_double(dy);
    std::vector<double> dgd(s.C);
    ops::layerscale_backward(s, xd.data(), gd.data(), dyd.data(), static_cast<double*>(nullptr), dgd.data());
    EXPECT_TRUE(close(dg, dgd, n / s.C, "dgamma"));
    for (int threads : {1, 3}) {
      with_threads(threads, [&] {
        std::vector<float> y1 = x, dx1(n), dg1(s.C), g = dy;
        kernels::layerscale_forward(s, y1.data(), gamma.data(), y1.data());  // in place
        kernels::layerscale_backward(s, x.data(), gamma.data(), dy.data(), dx1.data(), dg1.data());
        EXPECT_TRUE(same_bits(y1, y) && same_bits(dx1, dx) && same_bits(dg1, dg)) << threads;
        std::vector<float> dg2(s.C);
        kernels::layerscale_backward(s, x.data(), gamma.data(), g.data(), g.data(), dg2.data());  // dx over dy
        EXPECT_TRUE(same_bits(g, dx) && same_bits(dg2, dg)) << threads;
      });
    }
  }
}

// ---- in a network ---------------------------------------------------------------------------------------

TEST(LayerNormNet, LowersWithBothAxesAndTheFastKernelsMatchTheReference) {
  const net::Plan p = net::compile(layernorm_net(), 2);
  std::vector<std::string> nodes;
  for (const auto& n : p.nodes) nodes.push_back(n.name + ":" + prims::table()[n.op].name + ":" + p.values[n.output].shape.str());
  EXPECT_EQ(nodes, (std::vector<std::string>{"stem:conv2d:8x6x6", "ln:layerNorm:8x6x6", "layers.2:conv2d:16x6x6",
                                             "layers.2.relu:relu:16x6x6", "layers.3:conv2d:8x6x6",
                                             "ls:layerScale:8x6x6", "res:add:8x6x6", "layers.6:layerNorm:8x6x6",
                                             "layers.7:conv2d:8x6x6", "layers.7.relu:relu:8x6x6",
                                             "layers.8:globalAvgPool:8", "layers.9:layerNorm:8",
                                             "layers.10:layerScale:8", "layers.11:dense:4", "loss:softmaxCE:1"}));
  expect_fast_kernels_match_reference(layernorm_net(), 1e-4);
}

TEST(LayerNormNet, TheWholeNetworkIsVerified) {
  const net::Plan p = net::compile(layernorm_net(), 2, 0.1);
  const NetCheckReport ok = verify_plan(p, 1, 2);
  EXPECT_TRUE(ok.pass) << ok.failure;
  EXPECT_EQ(ok.trials, 2);
  EXPECT_EQ(ok.params, p.n_params);
}
