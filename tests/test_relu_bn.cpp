// ReLU (book ch. 3) and BatchNorm (ch. 5): contracts verified across their sweeps, every mutant
// rejected, the ReLU'(0) = 0 convention, BN eval/train consistency, the running-stat EMA, and the
// finite-difference second opinion.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "contract_testutil.hpp"
#include "veridl/prims/batchNorm/mutants.hpp"
#include "veridl/prims/batchNorm/reference.hpp"
#include "veridl/prims/relu/mutants.hpp"
#include "veridl/prims/relu/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/vjp/check.hpp"
#include "veridl/vjp/registry.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

const std::vector<std::string> kReluBnContracts = {"relu_has_vjp_correct", "bn_input_grad_correct",
                                                   "bn_gamma_grad_correct", "bn_beta_grad_correct"};

}  // namespace

TEST(ReluBnContracts, RegisteredUnderTheBooksNamesAndChapters) {
  EXPECT_EQ(builtin_contract("relu_has_vjp_correct").chapter, 3);
  for (const char* name : {"bn_input_grad_correct", "bn_gamma_grad_correct", "bn_beta_grad_correct"})
    EXPECT_EQ(builtin_contract(name).chapter, 5) << name;
  EXPECT_EQ(builtin_contract("bn_input_grad_correct").wrt, std::vector<std::string>{"x"});
  EXPECT_EQ(builtin_contract("bn_gamma_grad_correct").wrt, std::vector<std::string>{"gamma"});
  EXPECT_EQ(builtin_contract("bn_beta_grad_correct").wrt, std::vector<std::string>{"beta"});
  for (const std::string& name : kReluBnContracts) {
    const Contract& c = builtin_contract(name);
    EXPECT_GE(c.mutants.size(), 3u) << name;
    bool production = false, ties = false;
    for (const auto& cs : c.sweep) {
      production |= cs.production;
      ties |= cs.sample == Sample::Ties;
    }
    EXPECT_TRUE(production) << name;
    if (c.chapter == 3) {
      EXPECT_TRUE(ties) << name;  // exact zeros at the kink
    }
  }
  // The BN sweep: B in {1,2,3}, C in {1,2}, H, W in {1,2,3} with B*H*W >= 2, eps in {1e-5, 0.1}; three shapes with
  // the fused ReLU; the two production shapes (without and with the ReLU).
  EXPECT_EQ(builtin_contract("bn_input_grad_correct").sweep.size(), 104u + 3u + 2u);
}

TEST(ReluBnContracts, VerifiedAcrossTheirSweeps) {
  expect_contracts_verified(kReluBnContracts);
}

TEST(ReluBnContracts, EveryMutantIsRejectedForEverySeed) {
  expect_mutants_rejected(kReluBnContracts, {1, 2, 3, 1234567});
}

TEST(ReluBnContracts, DroppedEpsIsDiagnosedAsARealMismatch) {
  CheckOptions o;
  o.wrt = {"x"};
  CheckResult r = check_vjp(
      make_vjp("bn[eps]", ops::BatchNormMutantOp{{ops::BatchNormShape{2, 2, 2, 3}, 1e-5}, "dx_eps_dropped"}), o);
  EXPECT_FALSE(r.pass);
  EXPECT_FALSE(r.same_atoms_suspect) << r.failure;
  EXPECT_GT(r.real_rel_error, 1e-9);
}

// ---- ReLU: the convention at the kink --------------------------------------------------------------

TEST(Relu, DerivativeAtZeroIsZero) {
  const ops::ReluShape s{5};
  const std::vector<double> x{0.0, -0.0, 1e-300, -1e-300, 2.0};
  std::vector<double> y(5), dx(5);
  std::vector<uint8_t> mask(5);
  Decisions D;
  ops::relu_forward(s, x.data(), y.data(), mask.data(), D);
  EXPECT_EQ(mask, (std::vector<uint8_t>{0, 0, 1, 0, 1}));
  EXPECT_EQ(y, (std::vector<double>{0.0, 0.0, 1e-300, 0.0, 2.0}));
  const std::vector<double> dy{1.0, 1.0, 1.0, 1.0, 1.0};
  ops::relu_backward(s, mask.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<double>{0.0, 0.0, 1.0, 0.0, 1.0}));  // relu'(0) = 0
}

TEST(Relu, BackwardReadsTheMaskAndNeverReDecides) {
  // The record keeps one decision per element and replays them; the backward of a replayed field run
  // passes dy exactly where the recorded real run had x > 0.
  const ops::ReluOp op{{4}};
  Decisions rec(Decisions::Mode::Record);
  Ctx<double> cr = op.forward<double>({{-1.0, 0.0, 3.0, 0.5}}, rec);
  EXPECT_EQ(cr.dec, (std::vector<uint32_t>{0, 0, 1, 1}));
  Decisions rep = Decisions::replay(rec);
  Ctx<F61> cf = op.forward<F61>({{F61(7), F61(7), F61(7), F61(7)}}, rep);
  rep.finish();
  Ins<F61> g = op.backward<F61>({}, cf, {F61(11), F61(12), F61(13), F61(14)});
  EXPECT_EQ(g[0], (Vec<F61>{F61(0), F61(0), F61(13), F61(14)}));
}

namespace {
// ReLU'(0) = 1: the forward decides x >= 0 (as !(0 > x), through the tape). A convention change, not
// an inconsistency: the backward still uses the forward's mask.
struct ReluGeZeroOp : ops::ReluOp {
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.n);
    for (size_t i = 0; i < s.n; ++i) {
      const bool on = !D.gt(-in[0][i]);
      c.dec.push_back(on ? 1u : 0u);
      c.out[i] = on ? in[0][i] : T(0);
    }
    return c;
  }
};
}  // namespace

TEST(Relu, AConventionChangeIsInvisibleToTheIdentityCheckSoTheConventionHasItsOwnTest) {
  // verification.md 4.3: the check passes the x >= 0 forward too (with exact zeros planted) ...
  Vjp ge = make_vjp("relu[x>=0]", ReluGeZeroOp{{{9}}});
  CheckOptions o;
  o.sample = Sample::Ties;
  EXPECT_TRUE(check_vjp(ge, o).pass);
  // ... and only the convention test tells the two apart.
  Decisions d1, d2;
  Ctx<double> real = ops::ReluOp{{1}}.forward<double>({{0.0}}, d1);
  Ctx<double> other = ReluGeZeroOp{{{1}}}.forward<double>({{0.0}}, d2);
  EXPECT_EQ(real.dec[0], 0u);
  EXPECT_EQ(other.dec[0], 1u);
}

// ---- BatchNorm ---------------------------------------------------------------------------------------

namespace {
std::vector<double> ramp(size_t n, double a, double b) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = a + b * std::sin(1.7 * static_cast<double>(i) + 0.3);
  return v;
}
}  // namespace

TEST(BatchNorm, TrainStatisticsAreBiasedPerChannelOverNHW) {
  // N=2 C=2 H=1 W=2: channel 0 holds {1, 3, 5, 7}, channel 1 holds {0, 0, 2, 2}.
  const ops::BatchNormShape s{2, 2, 1, 2};
  const std::vector<double> x{1, 3, 0, 0, 5, 7, 2, 2}, gamma{1, 1}, beta{0, 0};
  std::vector<double> y(8), mean(2), var(2), r(2), xhat(8);
  ops::batchnorm_train_forward(s, 0.0, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), var.data(),
                               r.data(), xhat.data());
  EXPECT_EQ(mean, (std::vector<double>{4.0, 1.0}));
  EXPECT_EQ(var, (std::vector<double>{5.0, 1.0}));  // /n, not /(n-1): 20/4 and 4/4
  EXPECT_DOUBLE_EQ(r[0], 1.0 / std::sqrt(5.0));
  EXPECT_EQ(r[1], 1.0);
  EXPECT_EQ(xhat[2], -1.0);
  EXPECT_EQ(xhat[7], 1.0);
}

TEST(BatchNorm, EvalWithTheBatchStatisticsReproducesTheTrainForward) {
  for (double eps : {1e-5, 0.1}) {
    const ops::BatchNormShape s{3, 4, 2, 5};
    const auto x = ramp(s.count(), 0.5, 2.0), gamma = ramp(s.C, 1.0, 0.5), beta = ramp(s.C, 0.0, 0.3);
    std::vector<double> y(s.count()), mean(s.C), var(s.C), r(s.C), xhat(s.count()), ye(s.count());
    ops::batchnorm_train_forward(s, eps, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), var.data(),
                                 r.data(), xhat.data());
    ops::batchnorm_eval_forward(s, eps, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), ye.data());
    EXPECT_EQ(y, ye) << "eps " << eps;  // same arithmetic: exactly equal
    // With other statistics the eval output differs (it really uses the given ones).
    std::vector<double> mean2 = mean;
    mean2[1] += 0.25;
    ops::batchnorm_eval_forward(s, eps, x.data(), gamma.data(), beta.data(), mean2.data(), var.data(), ye.data());
    EXPECT_NE(y, ye);
  }
}

TEST(BatchNorm, EvalAndTrainAgreeInTheField) {
  // The same identity over F61: eval(x; batch mean, batch var) == train(x) as field elements.
  const ops::BatchNormShape s{2, 3, 2, 2};
  std::vector<F61> x(s.count()), gamma(s.C), beta(s.C);
  for (size_t i = 0; i < x.size(); ++i) x[i] = F61(static_cast<int64_t>(i * i + 3));
  for (size_t c = 0; c < s.C; ++c) {
    gamma[c] = F61(static_cast<int64_t>(c + 2));
    beta[c] = F61(static_cast<int64_t>(5 * c + 1));
  }
  std::vector<F61> y(s.count()), mean(s.C), var(s.C), r(s.C), xhat(s.count()), ye(s.count());
  ops::batchnorm_train_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), var.data(),
                               r.data(), xhat.data());
  ops::batchnorm_eval_forward(s, 1e-5, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), ye.data());
  EXPECT_EQ(y, ye);
}

TEST(BatchNorm, RunningStatisticsFollowTheEma) {
  const size_t C = 3;
  const std::vector<double> bm1{1.0, -2.0, 0.5}, bv1{4.0, 0.25, 1.0}, bm2{3.0, 0.0, -0.5}, bv2{2.0, 1.0, 9.0};
  std::vector<double> rm(C, 0.0), rv(C, 0.0);  // the original initialises running stats to 0
  // Step 1: m = 1.0, the running statistics become the first batch's exactly.
  EXPECT_EQ(ops::running_stat_momentum(1), 1.0);
  ops::batchnorm_update_running(C, ops::running_stat_momentum(1), bm1.data(), bv1.data(), rm.data(), rv.data());
  EXPECT_EQ(rm, bm1);
  EXPECT_EQ(rv, bv1);
  // Step 2: m = 0.1: running = 0.9 running + 0.1 batch.
  EXPECT_EQ(ops::running_stat_momentum(2), 0.1);
  EXPECT_EQ(ops::running_stat_momentum(7, 0.01), 0.01);
  ops::batchnorm_update_running(C, ops::running_stat_momentum(2), bm2.data(), bv2.data(), rm.data(), rv.data());
  for (size_t c = 0; c < C; ++c) {
    EXPECT_DOUBLE_EQ(rm[c], (1.0 - 0.1) * bm1[c] + 0.1 * bm2[c]) << c;
    EXPECT_DOUBLE_EQ(rv[c], (1.0 - 0.1) * bv1[c] + 0.1 * bv2[c]) << c;
  }
  EXPECT_DOUBLE_EQ(rm[0], 1.2);
  EXPECT_DOUBLE_EQ(rv[2], 1.8);
  // Exact arithmetic: with m = 1/4 over the field, (3/4) r + (1/4) b is the exact weighted mean.
  std::vector<F61> frm{F61(8)}, frv{F61(4)};
  const std::vector<F61> fbm{F61(16)}, fbv{F61(0)};
  ops::batchnorm_update_running(1, 0.25, fbm.data(), fbv.data(), frm.data(), frv.data());
  EXPECT_EQ(frm[0], F61(10));
  EXPECT_EQ(frv[0], F61(3));
}

TEST(BatchNorm, FdGradcheckPasses) {
  for (double eps : {1e-5, 0.1})
    for (auto s : {ops::BatchNormShape{2, 2, 2, 3}, ops::BatchNormShape{3, 1, 1, 1}, ops::BatchNormShape{1, 3, 3, 2}}) {
      FdOptions o;
      FdResult r = fd_gradcheck(make_vjp("batchnorm", ops::BatchNormOp{s, eps}), o);
      EXPECT_TRUE(r.pass) << "N=" << s.N << " C=" << s.C << " eps " << eps << ": max rel " << r.max_rel_error;
    }
}

TEST(BatchNorm, FdMissesTheDroppedEpsThatTheFieldCheckCatches) {
  // verification.md 3.3 (the LayerNorm row, here for BN): eps 1e-5 dropped from the backward's r is a
  // ~1e-5 relative error, below gradcheck's rtol; the field check rejects it on every seed.
  Vjp f = make_vjp("bn[eps]", ops::BatchNormMutantOp{{ops::BatchNormShape{2, 2, 2, 3}, 1e-5}, "dx_eps_dropped"});
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    FdOptions fo;
    fo.seed = seed;
    fo.wrt = {"x"};
    EXPECT_TRUE(fd_gradcheck(f, fo).pass) << "seed " << seed;
    CheckOptions co;
    co.seed = seed;
    co.wrt = {"x"};
    co.trials = 1;
    EXPECT_FALSE(check_vjp(f, co).pass) << "seed " << seed;
  }
}

namespace {
// A BN backward that recomputes r^2 (x - mu) as (x - mu)/(var + eps): correct over R, but it needs
// r^2 (var + eps) = 1, an identity between an atom value and its argument.
struct BnDividesByVarOp : ops::BatchNormOp {
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    const size_t HW = s.H * s.W;
    const T n = T(static_cast<int64_t>(s.per_channel()));
    const Vec<T>& x = in[0];
    const Vec<T>& gamma = in[1];
    Ins<T> g{Vec<T>(s.count()), Vec<T>(s.C), Vec<T>(s.C)};
    for (size_t ch = 0; ch < s.C; ++ch) {
      const T mu = c.saved[kMean][ch], v = c.saved[kVar][ch], rc = c.saved[kR][ch];
      T sd = T(0), sdx = T(0);
      for (size_t b = 0; b < s.N; ++b)
        for (size_t k = 0; k < HW; ++k) {
          const size_t i = (b * s.C + ch) * HW + k;
          sd += gamma[ch] * dy[i];
          sdx += (x[i] - mu) * gamma[ch] * dy[i];
        }
      for (size_t b = 0; b < s.N; ++b)
        for (size_t k = 0; k < HW; ++k) {
          const size_t i = (b * s.C + ch) * HW + k;
          g[0][i] = rc * (gamma[ch] * dy[i] - sd / n - (x[i] - mu) / (v + T(eps)) * sdx / n);
        }
    }
    return g;
  }
};
}  // namespace

TEST(BatchNorm, ReDerivingRSquaredIsDiagnosedAsASameAtomsViolation) {
  CheckOptions o;
  o.wrt = {"x"};
  CheckResult r = check_vjp(make_vjp("bn[(x-mu)/(var+eps)]", BnDividesByVarOp{{ops::BatchNormShape{2, 2, 2, 2}, 0.1}}), o);
  EXPECT_FALSE(r.pass);
  EXPECT_TRUE(r.same_atoms_suspect) << r.failure;
}
