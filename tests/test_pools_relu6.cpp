// ReLU6 (book ch. 7), avg-pool and the global average pool (ch. 6): their contracts verified across their
// sweeps with every mutant rejected, the conventions (ReLU6 at exactly 0 and 6; the avg-pool divisor k^2 with
// "same" padding), hand-worked values, the fast kernels against the references bit for bit, and the three in
// a network (NetSpec fields and errors, the activation field, the whole-network check, fast vs reference).
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "contract_testutil.hpp"
#include "kernel_testutil.hpp"
#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/activation/elementwise.hpp"
#include "veridl/prims/avgPool/kernel.hpp"
#include "veridl/prims/avgPool/mutants.hpp"
#include "veridl/prims/avgPool/reference.hpp"
#include "veridl/prims/globalAvgPool/kernel.hpp"
#include "veridl/prims/globalAvgPool/mutants.hpp"
#include "veridl/prims/globalAvgPool/reference.hpp"
#include "veridl/prims/relu6/kernel.hpp"
#include "veridl/prims/relu6/mutants.hpp"
#include "veridl/prims/relu6/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/vjp/check.hpp"
#include "veridl/vjp/combinators.hpp"
#include "veridl/vjp/registry.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

const std::vector<std::string> kPoolsRelu6Contracts = {"relu6_has_vjp_at", "avgPool_has_vjp_correct", "globalAvgPoolFlat_has_vjp_correct"};

const ContractCase& sweep_case(const Contract& c, const std::string& config) {
  for (const auto& cs : c.sweep)
    if (cs.config == config) return cs;
  throw std::logic_error("no config '" + config + "' in the sweep of " + c.name);
}

}  // namespace

// ---- the contracts -------------------------------------------------------------------------------------

TEST(PoolsRelu6Contracts, RegisteredUnderTheBooksNamesAndChapters) {
  EXPECT_EQ(builtin_contract("relu6_has_vjp_at").chapter, 7);
  EXPECT_EQ(builtin_contract("avgPool_has_vjp_correct").chapter, 6);
  EXPECT_EQ(builtin_contract("globalAvgPoolFlat_has_vjp_correct").chapter, 6);
  for (const std::string& name : kPoolsRelu6Contracts) {
    const Contract& c = builtin_contract(name);
    EXPECT_GE(c.mutants.size(), 3u) << name;
    bool production = false;
    for (const auto& cs : c.sweep) production |= cs.production;
    EXPECT_TRUE(production) << name;
  }
  // The table lists them as the primitives' contracts, and relu6 is an activation.
  EXPECT_EQ(prims::find("relu6")->contracts(), std::vector<std::string>{"relu6_has_vjp_at"});
  EXPECT_TRUE(prims::find("relu6")->is_activation);
  EXPECT_EQ(prims::find("avgPool")->contracts(), std::vector<std::string>{"avgPool_has_vjp_correct"});
  EXPECT_FALSE(prims::find("avgPool")->is_activation);
  EXPECT_EQ(prims::find("globalAvgPool")->contracts(), std::vector<std::string>{"globalAvgPoolFlat_has_vjp_correct"});
}

TEST(PoolsRelu6Contracts, VerifiedAcrossTheirSweeps) {
  expect_contracts_verified(kPoolsRelu6Contracts);
}

TEST(PoolsRelu6Contracts, EveryMutantIsRejectedForEverySeed) {
  expect_mutants_rejected(kPoolsRelu6Contracts, {1, 2, 3, 1234567});
}

TEST(PoolsRelu6Contracts, TheAvgPoolSweepCoversBothPadStylesStridesAndOverlaps) {
  const Contract& c = builtin_contract("avgPool_has_vjp_correct");
  bool xla = false, symmetric = false, valid = false, overlap = false, gaps = false, batch = false, even = false,
       odd = false, border = false;
  for (const auto& cs : c.sweep) {
    xla |= cs.config.find("(same, xla)") != std::string::npos;
    symmetric |= cs.config.find("(same, symmetric)") != std::string::npos;
    valid |= cs.config.find("(valid)") != std::string::npos;
    overlap |= cs.config.find("k=3x3 s=1") != std::string::npos || cs.config.find("k=3x3 s=2") != std::string::npos;
    gaps |= cs.config.find("k=2x2 s=3") != std::string::npos;
    batch |= cs.config.rfind("B=2", 0) == 0;
    even |= cs.config.find("k=2x2") != std::string::npos;
    odd |= cs.config.find("k=3x3") != std::string::npos;
    border |= cs.config.find("b1") != std::string::npos || cs.config.find("r1") != std::string::npos;
  }
  EXPECT_TRUE(xla && symmetric && valid && overlap && gaps && batch && even && odd && border);
}

// ---- ReLU6: the convention at both kinks -----------------------------------------------------------------

TEST(Relu6, GradientPassesOnlyStrictlyBetweenZeroAndSix) {
  // relu6_has_vjp_at: dx = dy iff 0 < x < 6; at exactly 0 and exactly 6 the gradient is 0.
  const std::vector<double> x{0.0, -0.0, 6.0, 1e-300, -1e-300, std::nextafter(6.0, 0.0), std::nextafter(6.0, 7.0),
                              3.0, -4.0, 9.0};
  const ops::Relu6Shape s{x.size()};
  std::vector<double> y(x.size()), dx(x.size());
  std::vector<uint8_t> mask(x.size());
  Decisions D;
  ops::relu6_forward(s, x.data(), y.data(), mask.data(), D);
  EXPECT_EQ(mask, (std::vector<uint8_t>{0, 0, 0, 1, 0, 1, 0, 1, 0, 0}));
  EXPECT_EQ(y, (std::vector<double>{0.0, 0.0, 6.0, 1e-300, 0.0, std::nextafter(6.0, 0.0), 6.0, 3.0, 0.0, 6.0}));
  const std::vector<double> dy(x.size(), 1.0);
  ops::relu6_backward(s, mask.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<double>{0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0}));  // relu6'(0) = relu6'(6) = 0

  // The regions the record keeps: 0 dead, 6 saturated.
  Decisions rec(Decisions::Mode::Record);
  Ctx<double> c = ops::Relu6Op{{4}}.forward<double>({{0.0, 6.0, 2.5, -1.0}}, rec);
  EXPECT_EQ(c.dec, (std::vector<uint32_t>{0, 2, 1, 0}));
  // Two decisions for an element above 0 (x > 0, then 6 > x), one for an element at or below it.
  EXPECT_EQ(rec.size(), 1u + 2u + 2u + 1u);

  // The float kernel agrees at the kinks.
  const std::vector<float> xf{0.0f, -0.0f, 6.0f, std::nextafter(6.0f, 0.0f), std::nextafter(6.0f, 7.0f),
                              std::numeric_limits<float>::denorm_min()};
  std::vector<float> yf(xf.size()), dxf(xf.size());
  std::vector<uint8_t> mf(xf.size());
  kernels::relu6_forward({xf.size()}, xf.data(), yf.data(), mf.data());
  EXPECT_EQ(mf, (std::vector<uint8_t>{0, 0, 0, 1, 0, 1}));
  EXPECT_EQ(yf, (std::vector<float>{0.0f, 0.0f, 6.0f, std::nextafter(6.0f, 0.0f), 6.0f,
                                    std::numeric_limits<float>::denorm_min()}));
  const std::vector<float> dyf(xf.size(), 2.0f);
  kernels::relu6_backward({xf.size()}, mf.data(), dyf.data(), dxf.data());
  EXPECT_EQ(dxf, (std::vector<float>{0.0f, 0.0f, 0.0f, 2.0f, 0.0f, 2.0f}));
}

TEST(Relu6, BackwardReadsTheMaskAndNeverReDecides) {
  // A field run replays the real run's regions: dy passes exactly where the real x was in (0, 6).
  const ops::Relu6Op op{{5}};
  Decisions rec(Decisions::Mode::Record);
  op.forward<double>({{-1.0, 0.0, 3.0, 6.0, 7.5}}, rec);
  Decisions rep = Decisions::replay(rec);
  Ctx<F61> cf = op.forward<F61>({{F61(7), F61(7), F61(7), F61(7), F61(7)}}, rep);
  rep.finish();
  EXPECT_EQ(cf.out, (Vec<F61>{F61(0), F61(0), F61(7), F61(6), F61(6)}));  // the replayed regions' values
  Ins<F61> g = op.backward<F61>({}, cf, {F61(11), F61(12), F61(13), F61(14), F61(15)});
  EXPECT_EQ(g[0], (Vec<F61>{F61(0), F61(0), F61(13), F61(0), F61(0)}));
}

namespace {
// ReLU6 with the other convention at a kink: x = 6 on the linear piece (0 < x <= 6, deciding !(x > 6)), or
// x = 0 on it (0 <= x < 6, deciding !(0 > x)). Consistent: the backward uses the forward's own mask.
struct Relu6OtherKinkOp : ops::Relu6Op {
  bool six_inclusive = true;  // else: zero inclusive
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.n);
    for (size_t i = 0; i < s.n; ++i) {
      const T& x = in[0][i];
      ops::Relu6Region r;
      if (six_inclusive) {
        r = !D.gt(x) ? ops::Relu6Region::Dead : (!D.gt(x, 6.0) ? ops::Relu6Region::Linear : ops::Relu6Region::Saturated);
      } else {
        r = D.gt(-x) ? ops::Relu6Region::Dead
                     : (D.gt(-x, -6.0) ? ops::Relu6Region::Linear : ops::Relu6Region::Saturated);
      }
      c.dec.push_back(static_cast<uint32_t>(r));
      c.out[i] = ops::relu6_value(x, r);
    }
    return c;
  }
};
}  // namespace

TEST(Relu6, AConventionChangeAtEitherKinkIsInvisibleToTheIdentityCheckSoTheConventionHasItsOwnTest) {
  // verification.md 4.3: with exact 0s and 6s planted (ties behind x -> 3x), the check passes both other
  // conventions too ...
  for (bool six : {true, false}) {
    Relu6OtherKinkOp op;
    op.s = {9};
    op.six_inclusive = six;
    Vjp v = vjp_comp(make_vjp("times3", ops::ScaleOp{9, 3.0}), make_vjp("relu6[other kink]", op));
    CheckOptions o;
    o.sample = Sample::Ties;
    EXPECT_TRUE(check_vjp(v, o).pass) << (six ? "0 < x <= 6" : "0 <= x < 6");
    // ... and only the convention test tells them apart: the real op puts 0 and 6 off the linear piece.
    Decisions d1, d2;
    const double kink = six ? 6.0 : 0.0;
    Ctx<double> real = ops::Relu6Op{{1}}.forward<double>({{kink}}, d1);
    Relu6OtherKinkOp one = op;  // the same convention on one element
    one.s = {1};
    Ctx<double> other = one.forward<double>({{kink}}, d2);
    EXPECT_NE(real.dec[0], static_cast<uint32_t>(ops::Relu6Region::Linear)) << kink;
    EXPECT_EQ(other.dec[0], static_cast<uint32_t>(ops::Relu6Region::Linear)) << kink;
  }
}

TEST(Relu6, TheSweepReachesTheUpperKinkOnTheRealTapeAndOnRandomTapes) {
  // Sample::Ties never reaches 6 by itself; behind x -> 3x it plants exact 6s, so a backward that ignores
  // the upper clamp is rejected on the real-run tape ...
  const Contract& c = builtin_contract("relu6_has_vjp_at");
  const ContractCase& scaled = sweep_case(c, "n=32 ties behind x -> 3x (exact 0 and 6 on the real tape)");
  ASSERT_EQ(scaled.sample, Sample::Ties);
  CheckOptions real;
  real.sample = Sample::Ties;
  real.tape = TapeSource::Real;
  EXPECT_TRUE(check_vjp(scaled.make(""), real).pass);
  EXPECT_FALSE(check_vjp(scaled.make("upper_kink_ignored"), real).pass);
  EXPECT_FALSE(check_vjp(scaled.make("upper_mask_inverted"), real).pass);
  // ... and the real tape there does contain saturated elements at exactly 6 (3 x 2).
  {
    Vjp f = scaled.make("");
    std::vector<double> x(32);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(static_cast<int>(i % 5) - 2);
    Decisions rec(Decisions::Mode::Record);
    Ctx<double> cx = f.forward<double>({x}, rec);
    size_t at_six = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i] == 2.0) {
        EXPECT_EQ(cx.out[i], 6.0);
        EXPECT_EQ(cx.sub[1].dec[i], static_cast<uint32_t>(ops::Relu6Region::Saturated));
        ++at_six;
      }
    EXPECT_GT(at_six, 0u);
  }
  // On a plain N(0,1) sample the real tape never saturates (the mutant passes there), but the random tape
  // draws saturated elements and rejects it.
  const ContractCase& plain = sweep_case(c, "n=17");
  CheckOptions normal;
  EXPECT_TRUE(check_vjp(plain.make("upper_kink_ignored"), normal).pass);
  CheckOptions random;
  random.tape = TapeSource::Random;
  EXPECT_FALSE(check_vjp(plain.make("upper_kink_ignored"), random).pass);
}

TEST(Relu6, FastKernelIsBitIdenticalToTheReferenceAndThreadIndependent) {
  // Values around both kinks: exact 0, -0, 6, their neighbours, infinities, NaN, and a spread over [-8, 8].
  const size_t n = 3 * (size_t{1} << 16) + 7;  // large enough to fork the team
  std::vector<float> x = random_floats(n, 17, -8.0f, 8.0f);
  const float specials[] = {0.0f, -0.0f, 6.0f, std::nextafter(6.0f, 0.0f), std::nextafter(6.0f, 7.0f),
                            std::nextafter(0.0f, 1.0f), std::nextafter(0.0f, -1.0f),
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  for (size_t i = 0; i < std::size(specials); ++i) x[i * 1009] = specials[i];
  const ops::Relu6Shape s{n};
  std::vector<float> yk(n), yr(n), dxk(n), dxr(n);
  std::vector<uint8_t> mk(n), mr(n);
  const std::vector<float> dy = random_floats(n, 18);
  Decisions D;
  ops::relu6_forward(s, x.data(), yr.data(), mr.data(), D);
  ops::relu6_backward(s, mr.data(), dy.data(), dxr.data());
  kernels::relu6_forward(s, x.data(), yk.data(), mk.data());
  kernels::relu6_backward(s, mk.data(), dy.data(), dxk.data());
  EXPECT_TRUE(same_bits(yk, yr));
  EXPECT_EQ(mk, mr);
  EXPECT_TRUE(same_bits(dxk, dxr));
  // In place (y aliasing x, dx aliasing dy), and on one thread.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<float> inplace = x, g = dy;
  std::vector<uint8_t> m1(n);
  kernels::relu6_forward(s, inplace.data(), inplace.data(), m1.data());
  kernels::relu6_backward(s, m1.data(), g.data(), g.data());
  omp_set_num_threads(threads);
  EXPECT_TRUE(same_bits(inplace, yr));
  EXPECT_EQ(m1, mr);
  EXPECT_TRUE(same_bits(g, dxr));
}

// ---- avg-pool --------------------------------------------------------------------------------------------

namespace {
// Through the table, as a NetSpec layer: parse its fields, infer under the pad style, run the fast kernel.
std::vector<float> pool_via_table(const nlohmann::json& fields, const graph::VShape& in, graph::PadStyle style,
                                  const std::vector<float>& x, graph::VShape& out) {
  const prims::OpDef& d = *prims::find("avgPool");
  const graph::Where w{"test", "", {style}};
  graph::Fields f(fields, w);
  auto attrs = d.parse(f);
  f.finish();
  const std::vector<graph::VShape> shapes{in};
  out = d.infer(attrs.get(), shapes, w);
  std::vector<float> y(out.size()), xin = x;
  graph::Call<float> c;
  c.n = 1;
  c.in = {xin.data()};
  c.out = y.data();
  Decisions D;
  c.D = &D;
  prims::forward_fn<float, graph::Fast>(prims::index_of("avgPool"))(attrs.get(), c);
  return y;
}
}  // namespace

TEST(AvgPool, SamePaddingCountsPaddedCellsInTheDivisor) {
  // 3x3 input 1..9, 2x2 stride 2 "same", XLA style: output ceil(3/2) = 2, pads (0, 1) at the bottom/right.
  //   window (0,0): 1+2+4+5 = 12 -> 12/4 = 3      window (0,1): 3+6 (+2 pads) = 9 -> 9/4 = 2.25
  //   window (1,0): 7+8 = 15 -> 3.75               window (1,1): 9 -> 2.25
  // (count_include_pad=False would give 3, 4.5, 7.5, 9.)
  const std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8, 9};
  graph::VShape out;
  const std::vector<float> y = pool_via_table({{"size", 2}, {"padding", "same"}}, {{1, 3, 3}}, graph::PadStyle::XlaSame, x, out);
  EXPECT_EQ(out, (graph::VShape{{1, 2, 2}}));
  EXPECT_EQ(y, (std::vector<float>{3.0f, 2.25f, 3.75f, 2.25f}));
  // The reference agrees, and its backward spreads dy/4 over each window's in-range cells.
  const ops::AvgPoolShape s = ops::avgpool_shape(1, 1, 3, 3, 2, 2, ops::Padding::Same, ops::PadStyle::XlaSame);
  EXPECT_EQ(s.pad_top + s.pad_left, 0u);
  EXPECT_EQ(s.pad_bottom + s.pad_right, 2u);
  std::vector<double> yr(4), dx(9);
  const std::vector<double> xd(x.begin(), x.end());
  ops::avgpool_forward(s, xd.data(), yr.data());
  EXPECT_EQ(yr, (std::vector<double>{3.0, 2.25, 3.75, 2.25}));
  const std::vector<double> dy{1, 2, 3, 4};
  ops::avgpool_backward(s, dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<double>{0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.75, 0.75, 1.0}));

  // 3x3 stride 1 "same", symmetric (PyTorch's avg_pool2d(x, 3, 1, 1)), on ones: a corner window holds 4
  // in-range cells, an edge window 6, the centre 9, all divided by 9.
  const std::vector<float> ones(9, 1.0f);
  const std::vector<float> ys =
      pool_via_table({{"size", 3}, {"stride", 1}, {"padding", "same"}}, {{1, 3, 3}}, graph::PadStyle::Symmetric, ones, out);
  EXPECT_EQ(out, (graph::VShape{{1, 3, 3}}));
  const float c = 4.0f / 9.0f, e = 6.0f / 9.0f;
  for (size_t i = 0; i < 9; ++i) {
    const float want = i == 4 ? 1.0f : (i % 2 == 0 ? c : e);
    EXPECT_FLOAT_EQ(ys[i], want) << i;
  }
}

TEST(AvgPool, ValidWindowsAreMeansAndOverlapsAccumulate) {
  // 1 x 4 x 4, 3x3 stride 1 valid: four overlapping windows.
  std::vector<double> x(16);
  for (size_t i = 0; i < 16; ++i) x[i] = static_cast<double>(i);
  const ops::AvgPoolShape s = ops::avgpool_shape(1, 1, 4, 4, 3, 1, ops::Padding::Valid);
  std::vector<double> y(4), dx(16);
  ops::avgpool_forward(s, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<double>{5.0, 6.0, 9.0, 10.0}));  // the window centres
  const std::vector<double> dy(4, 9.0);
  ops::avgpool_backward(s, dy.data(), dx.data());
  // Each cell gets 1 per window containing it: corners 1, edges 2, centre 4.
  EXPECT_EQ(dx, (std::vector<double>{1, 2, 2, 1, 2, 4, 4, 2, 2, 4, 4, 2, 1, 2, 2, 1}));
  // Stride past the window: 2x2 stride 3 valid on 1 x 5 x 5 reads rows/columns 0,1,3,4; row and column 2 get 0.
  const ops::AvgPoolShape g = ops::avgpool_shape(1, 1, 5, 5, 2, 3, ops::Padding::Valid);
  std::vector<double> dg(25);
  const std::vector<double> d4(4, 4.0);
  ops::avgpool_backward(g, d4.data(), dg.data());
  for (size_t h = 0; h < 5; ++h)
    for (size_t w = 0; w < 5; ++w) EXPECT_EQ(dg[h * 5 + w], h == 2 || w == 2 ? 0.0 : 1.0) << h << "," << w;
}

TEST(AvgPool, FastKernelsAreBitIdenticalToTheReferenceAndThreadIndependent) {
  std::vector<ops::AvgPoolShape> shapes;
  for (ops::PadStyle style : {ops::PadStyle::XlaSame, ops::PadStyle::Symmetric})
    for (size_t k : {1, 2, 3, 4})
      for (size_t stride : {1, 2, 3})
        for (ops::Padding p : {ops::Padding::Valid, ops::Padding::Same})
          shapes.push_back(ops::avgpool_shape(2, 3, 7 + k % 2, 6 + stride % 2, k, stride, p, style));
  shapes.push_back({1, 2, 5, 7, 2, 3, 1, 1, 0, 0, 2});  // non-square, asymmetric pads
  shapes.push_back(ops::avgpool_shape(4, 64, 32, 32, 3, 2, ops::Padding::Same));  // large enough to fork the team
  uint64_t seed = 1;
  for (const ops::AvgPoolShape& s : shapes) {
    SCOPED_TRACE(s.str());
    const std::vector<float> x = random_floats(s.x_size(), ++seed), dy = random_floats(s.y_size(), ++seed);
    std::vector<float> yr(s.y_size()), yk(s.y_size(), NAN), dxr(s.x_size()), dxk(s.x_size(), NAN);
    ops::avgpool_forward(s, x.data(), yr.data());
    ops::avgpool_backward(s, dy.data(), dxr.data());
    kernels::avgpool_forward(s, x.data(), yk.data());
    kernels::avgpool_backward(s, dy.data(), dxk.data());
    EXPECT_TRUE(same_bits(yk, yr));
    EXPECT_TRUE(same_bits(dxk, dxr));
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<float> y1(s.y_size()), dx1(s.x_size());
    kernels::avgpool_forward(s, x.data(), y1.data());
    kernels::avgpool_backward(s, dy.data(), dx1.data());
    omp_set_num_threads(threads);
    EXPECT_TRUE(same_bits(y1, yk));
    EXPECT_TRUE(same_bits(dx1, dxk));
  }
}

TEST(AvgPool, FieldsAndErrors) {
  const prims::OpDef& d = *prims::find("avgPool");
  const graph::Where w{"p.json", "layer 2 (avgPool): ", {}};
  auto parse = [&](const nlohmann::json& j) {
    graph::Fields f(j, w);
    auto a = d.parse(f);
    f.finish();
    nlohmann::json out = nlohmann::json::object();
    d.to_json(a.get(), out);
    return out;
  };
  EXPECT_EQ(parse({{"size", 3}}), (nlohmann::json{{"size", 3}, {"stride", 3}, {"padding", "valid"}}));
  EXPECT_EQ(parse({{"size", 3}, {"stride", 2}, {"padding", "same"}}),
            (nlohmann::json{{"size", 3}, {"stride", 2}, {"padding", "same"}}));
  EXPECT_TRUE(mentions(error_of([&] { parse({{"size", 2}, {"padding", "full"}}); }), {"p.json", "layer 2 (avgPool)", "padding"}));
  EXPECT_TRUE(mentions(error_of([&] { parse(nlohmann::json::object()); }), {"layer 2 (avgPool)", "size"}));
  const nlohmann::json size2{{"size", 2}};  // Fields keeps a reference: not a temporary
  graph::Fields f(size2, w);
  auto a = d.parse(f);
  const std::vector<graph::VShape> flat{{{12}}}, tiny{{{1, 1, 3}}};
  EXPECT_TRUE(mentions(error_of([&] { d.infer(a.get(), flat, w); }), {"layer 2 (avgPool)", "image input"}));
  EXPECT_TRUE(mentions(error_of([&] { d.infer(a.get(), tiny, w); }), {"layer 2 (avgPool)", "window 2x2", "1x1x3"}));
}

// ---- the global average pool -----------------------------------------------------------------------------

TEST(GlobalAvgPool, HandWorkedMeansAndTheirGradient) {
  // B = 1, C = 2, 2 x 3 planes: {1..6} has mean 3.5, {-1, 0, 1, 2, 3, 7} mean 2.
  const ops::GlobalAvgPoolShape s{1, 2, 2, 3};
  const std::vector<double> x{1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 3, 7};
  std::vector<double> y(2), dx(12);
  ops::global_avgpool_forward(s, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<double>{3.5, 2.0}));
  const std::vector<double> dy{6.0, -12.0};
  ops::global_avgpool_backward(s, dy.data(), dx.data());
  for (size_t k = 0; k < 12; ++k) EXPECT_EQ(dx[k], k < 6 ? 1.0 : -2.0) << k;  // dy[c] / (H W)
  const std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
  std::vector<float> yf(2), dxf(12);
  kernels::global_avgpool_forward(s, xf.data(), yf.data());
  kernels::global_avgpool_backward(s, dyf.data(), dxf.data());
  EXPECT_EQ(yf, (std::vector<float>{3.5f, 2.0f}));
  EXPECT_EQ(dxf, std::vector<float>(dx.begin(), dx.end()));
}

TEST(GlobalAvgPool, FastKernelsAreBitIdenticalToTheReferenceAndThreadIndependent) {
  for (const ops::GlobalAvgPoolShape& s : {ops::GlobalAvgPoolShape{1, 1, 1, 1}, {3, 5, 7, 7}, {2, 3, 1, 9},
                                          {16, 512, 7, 7}}) {
    SCOPED_TRACE(s.str());
    const std::vector<float> x = random_floats(s.x_size(), s.x_size()), dy = random_floats(s.planes(), s.planes() + 1);
    std::vector<float> yr(s.planes()), yk(s.planes()), dxr(s.x_size()), dxk(s.x_size());
    ops::global_avgpool_forward(s, x.data(), yr.data());
    ops::global_avgpool_backward(s, dy.data(), dxr.data());
    kernels::global_avgpool_forward(s, x.data(), yk.data());
    kernels::global_avgpool_backward(s, dy.data(), dxk.data());
    EXPECT_TRUE(same_bits(yk, yr));
    EXPECT_TRUE(same_bits(dxk, dxr));
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<float> y1(s.planes()), dx1(s.x_size());
    kernels::global_avgpool_forward(s, x.data(), y1.data());
    kernels::global_avgpool_backward(s, dy.data(), dx1.data());
    omp_set_num_threads(threads);
    EXPECT_TRUE(same_bits(y1, yk));
    EXPECT_TRUE(same_bits(dx1, dxk));
  }
}

// ---- in a network --------------------------------------------------------------------------------------

namespace {
// conv2d with a relu6 activation -> avgPool 3/2 same -> avgPool 2/2 valid -> conv2d relu6 -> GAP -> dense.
net::NetSpec pools_net(net::PadStyle style) {
  return net::NetBuilder("PoolsRelu6")
      .image(9, 9, 1)
      .pad_style(style)
      .layer("conv2d", {{"ic", 1}, {"oc", 3}, {"k", 3}, {"activation", "relu6"}})
      .layer("avgPool", {{"size", 3}, {"stride", 2}, {"padding", "same"}})
      .layer("avgPool", {{"size", 2}})
      .layer("conv2d", {{"ic", 3}, {"oc", 4}, {"k", 1}, {"activation", "relu6"}})
      .layer("globalAvgPool")
      .layer("dense", {{"fanIn", 4}, {"fanOut", 3}})
      .build();
}
}  // namespace

TEST(PoolsRelu6Net, LowersWithTheActivationFieldAndTheFlatPoolOutput) {
  const net::Plan p = net::compile(pools_net(net::PadStyle::XlaSame), 2);
  std::vector<std::string> nodes;
  for (const auto& n : p.nodes) nodes.push_back(n.name + ":" + prims::table()[n.op].name + ":" + p.values[n.output].shape.str());
  EXPECT_EQ(nodes, (std::vector<std::string>{"layers.0:conv2d:3x9x9", "layers.0.relu6:relu6:3x9x9",
                                             "layers.1:avgPool:3x5x5", "layers.2:avgPool:3x2x2",
                                             "layers.3:conv2d:4x2x2", "layers.3.relu6:relu6:4x2x2",
                                             "layers.4:globalAvgPool:4", "layers.5:dense:3", "loss:softmaxCE:1"}))
      << [&] {
           std::string all;
           for (const auto& x : nodes) all += x + " ";
           return all;
         }();
}

TEST(PoolsRelu6Net, AFlatInputToTheGlobalPoolIsAOneLineErrorNamingTheLayer) {
  const std::string msg = error_of([] {
    net::NetBuilder("bad").image(4, 4, 2).flatten().layer("globalAvgPool").dense(2, 3).build();
  });
  EXPECT_TRUE(mentions(msg, {"NetBuilder(bad)", "layer 1 (globalAvgPool)", "needs an image input", "32"})) << msg;
  const std::string pool = error_of([] {
    net::NetBuilder("bad").image(4, 4, 2).flatten().layer("avgPool", {{"size", 2}}).dense(8, 3).build();
  });
  EXPECT_TRUE(mentions(pool, {"layer 1 (avgPool)", "needs an image input"})) << pool;
  const std::string act = error_of([] {
    net::NetBuilder("bad").image(4, 4, 1).layer("conv2d", {{"ic", 1}, {"oc", 2}, {"k", 3}, {"activation", "relu7"}})
        .flatten().dense(32, 3).build();
  });
  EXPECT_TRUE(mentions(act, {"relu7", "relu6"})) << act;  // the supported list names relu6
}

TEST(PoolsRelu6Net, FastKernelsMatchTheReferenceAndTheWholeNetworkIsVerified) {
  for (net::PadStyle style : {net::PadStyle::XlaSame, net::PadStyle::Symmetric}) {
    const net::Plan p = net::compile(pools_net(style), 2, 0.1);
    net::Executor<float, net::FastKernels> fast(p);
    net::Executor<double, net::RefKernels> ref(p);
    std::mt19937_64 rng(5);
    std::normal_distribution<float> nd(0.0f, 3.0f);  // wide: the relu6s see both kinks' sides
    for (size_t i = 0; i < p.n_params; ++i) ref.params()[i] = fast.params()[i] = nd(rng);
    std::vector<float> x(2 * p.input_width());
    for (auto& e : x) e = nd(rng);
    const std::vector<double> xd(x.begin(), x.end());
    std::vector<int32_t> y{1, 2};
    Decisions d1, d2;
    const float lf = fast.forward_loss(x.data(), y.data(), 2, d1);
    const double lr = ref.forward_loss(xd.data(), y.data(), 2, d2);
    EXPECT_NEAR(lf, lr, 1e-4 * (1 + std::fabs(lr)));
    fast.backward(1.0f, true);
    ref.backward(1.0, true);
    double gmax = 0;
    for (double g : ref.grads()) gmax = std::max(gmax, std::fabs(g));
    EXPECT_GT(gmax, 0.0);
    for (size_t i = 0; i < p.n_params; ++i) ASSERT_NEAR(fast.grads()[i], ref.grads()[i], 1e-4 * (1 + gmax)) << i;
    const auto gx = fast.input_grad();
    const auto rx = ref.input_grad();
    for (size_t i = 0; i < gx.size(); ++i) ASSERT_NEAR(gx[i], rx[i], 1e-4 * (1 + gmax)) << i;

    const NetCheckReport ok = verify_plan(p, 1, 2);
    EXPECT_TRUE(ok.pass) << ok.failure;
    EXPECT_EQ(ok.trials, 2);
    EXPECT_EQ(ok.params, p.n_params);
  }
}
