// Data-parallel training's pieces that need no MPI (docs/distributed.md): synchronized BatchNorm's contracts and
// mutants, its sharded forward against the global one (exactly, over a prime field), its float kernels run by
// threads standing in for ranks against the one-process kernels, the shards of a batch, and the start-up check.
// The runs under mpirun are tests/distributed.py (ctest Distributed_*).
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "contract_testutil.hpp"
#include "test_util.hpp"
#include "veridl/calculus/field.hpp"
#include "veridl/prims/batchNorm/kernel.hpp"
#include "veridl/prims/batchNorm/sync.hpp"
#include "veridl/prims/batchNorm/sync_reference.hpp"
#include "veridl/train/dist.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

const std::vector<std::string> kSyncBnContracts = {"sync_bn_input_grad_correct", "sync_bn_gamma_grad_correct",
                                                   "sync_bn_beta_grad_correct"};

// R threads standing in for R ranks: sum() adds every thread's values in thread order, as dist::Group does.
class ThreadSum {
 public:
  explicit ThreadSum(size_t ranks) : slots_(ranks), bar_(static_cast<std::ptrdiff_t>(ranks)) {}
  struct Rank final : graph::Collective {
    ThreadSum* all = nullptr;
    size_t r = 0;
    void sum(double* x, size_t n) const override {
      all->slots_[r].assign(x, x + n);
      all->bar_.arrive_and_wait();
      for (size_t i = 0; i < n; ++i) {
        double s = all->slots_[0][i];
        for (size_t q = 1; q < all->slots_.size(); ++q) s += all->slots_[q][i];
        x[i] = s;
      }
      all->bar_.arrive_and_wait();
    }
    size_t parties() const override { return all->slots_.size(); }
  };
  Rank rank(size_t r) {
    Rank k;
    k.all = this;
    k.r = r;
    return k;
  }

 private:
  std::vector<std::vector<double>> slots_;
  std::barrier<> bar_;
};

}  // namespace

TEST(SyncBatchNormContracts, RegisteredWithRealisticMutants) {
  for (const std::string& name : kSyncBnContracts) {
    const Contract& c = builtin_contract(name);
    EXPECT_EQ(c.chapter, 5) << name;
    EXPECT_GE(c.mutants.size(), 2u) << name;
    bool unequal = false, production = false;
    for (const auto& cs : c.sweep) {
      unequal |= cs.config.find("B=3 over 2") != std::string::npos;
      production |= cs.production;
    }
    EXPECT_TRUE(unequal) << name << ": the sweep needs shards of different sizes";
    EXPECT_TRUE(production) << name;
  }
  EXPECT_EQ(builtin_contract("sync_bn_input_grad_correct").mutants.size(), 6u);
}

TEST(SyncBatchNormContracts, VerifiedAcrossTheirSweeps) { expect_contracts_verified(kSyncBnContracts); }

TEST(SyncBatchNormContracts, EveryMutantIsRejectedForEverySeed) {
  expect_mutants_rejected(kSyncBnContracts, {1, 2, 3, 1234567});
}

// The ranks' forward (partial sums, all-reduced) is the global batch's BatchNorm, exactly: in a field addition is
// associative, so the sharded sums equal the global ones and the forward the contract differentiates is the ranks'.
TEST(SyncBatchNorm, ShardedForwardIsTheGlobalForwardExactly) {
  std::mt19937_64 rng(7);
  for (auto [N, R] : {std::pair<size_t, size_t>{5, 2}, {4, 3}, {8, 4}}) {
    const ops::BatchNormShape s{N, 3, 2, 3};
    std::vector<F61> x(s.count()), g(s.C), b(s.C);
    for (auto& v : x) v = F61::from_raw(rng() >> 4);
    for (auto& v : g) v = F61::from_raw(rng() >> 4);
    for (auto& v : b) v = F61::from_raw(rng() >> 4);
    std::vector<F61> y1(s.count()), y2(s.count()), xh1(s.count()), xh2(s.count());
    std::vector<F61> m1(s.C), m2(s.C), v1(s.C), v2(s.C), r1(s.C), r2(s.C);
    ops::batchnorm_train_forward(s, 1e-5, x.data(), g.data(), b.data(), y1.data(), m1.data(), v1.data(), r1.data(),
                                 xh1.data());
    ops::sync_batchnorm_forward_sharded(s, ops::shard_sizes(N, R), 1e-5, x.data(), g.data(), b.data(), y2.data(),
                                        m2.data(), v2.data(), r2.data(), xh2.data());
    EXPECT_TRUE(y1 == y2 && m1 == m2 && v1 == v2 && r1 == r2 && xh1 == xh2) << "N=" << N << " R=" << R;
  }
}

// The float kernels on R threads (each its shard) against the one-process kernels on the whole batch, without and
// with the fused ReLU (net/fuse.hpp; its mask the same on the shards as on the whole batch for this data).
TEST(SyncBatchNorm, KernelsOnShardsMatchTheOneProcessKernels) {
  for (bool relu : {false, true})
  for (auto [N, R] : {std::pair<size_t, size_t>{6, 2}, {7, 3}}) {
    const ops::BatchNormShape s{N, 4, 3, 5};
    const size_t per = s.C * s.H * s.W;
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.5f, 2.0f);
    std::vector<float> x(s.count()), dy(s.count()), g(s.C), b(s.C);
    for (auto& v : x) v = nd(rng);
    for (auto& v : dy) v = nd(rng);
    for (auto& v : g) v = nd(rng);
    for (auto& v : b) v = nd(rng);
    std::vector<float> y(s.count()), dx(s.count()), mean(s.C), var(s.C), r(s.C), dg(s.C), db(s.C);
    std::vector<double> stats(2 * s.C);
    std::vector<uint8_t> mask(s.count()), masks(s.count());
    uint8_t* const m = relu ? mask.data() : nullptr;
    kernels::batchnorm_train_forward(s, 1e-5, x.data(), g.data(), b.data(), y.data(), mean.data(), var.data(), r.data(),
                                     stats.data(), m);
    kernels::batchnorm_backward(s, g.data(), r.data(), stats.data(), x.data(), dy.data(), dx.data(), dg.data(),
                                db.data(), m);

    std::vector<float> ys(s.count()), dxs(s.count());
    std::vector<std::vector<float>> means(R, std::vector<float>(s.C)), vars = means, rs = means, dgs = means,
                                    dbs = means;
    std::vector<std::vector<double>> statss(R, std::vector<double>(2 * s.C));
    ThreadSum all(R);
    const std::vector<size_t> sizes = ops::shard_sizes(N, R);
    std::vector<std::thread> ranks;
    for (size_t q = 0, first = 0; q < R; first += sizes[q++]) {
      ranks.emplace_back([&, q, first] {
        ops::BatchNormShape sh = s;
        sh.N = sizes[q];
        const ThreadSum::Rank me = all.rank(q);
        const size_t o = first * per;
        uint8_t* const ms = relu ? masks.data() + o : nullptr;
        kernels::sync_batchnorm_train_forward(sh, 1e-5, me, x.data() + o, g.data(), b.data(), ys.data() + o,
                                              means[q].data(), vars[q].data(), rs[q].data(), statss[q].data(), ms);
        kernels::sync_batchnorm_backward(sh, me, g.data(), rs[q].data(), statss[q].data(), x.data() + o, dy.data() + o,
                                         dxs.data() + o, dgs[q].data(), dbs[q].data(), ms);
      });
    }
    for (auto& t : ranks) t.join();
    EXPECT_EQ(masks, mask);
    if (relu) {
      EXPECT_NE(std::count(mask.begin(), mask.end(), uint8_t{1}), 0);
    }
    auto close = [](float a, float e, float scale) { return std::fabs(a - e) <= 2e-5f * std::max(1.0f, scale); };
    for (size_t q = 0; q < R; ++q)
      for (size_t c = 0; c < s.C; ++c) {
        EXPECT_EQ(means[q][c], means[0][c]);  // every rank the same statistics, bit for bit
        EXPECT_EQ(statss[q][c], statss[0][c]);
        EXPECT_EQ(statss[q][s.C + c], statss[0][s.C + c]);
        EXPECT_TRUE(close(means[q][c], mean[c], std::fabs(mean[c]))) << c;
        EXPECT_TRUE(close(vars[q][c], var[c], var[c])) << c;
      }
    float ymax = 0, dxmax = 0;
    for (size_t i = 0; i < s.count(); ++i) {
      ymax = std::max(ymax, std::fabs(y[i]));
      dxmax = std::max(dxmax, std::fabs(dx[i]));
    }
    for (size_t i = 0; i < s.count(); ++i) {
      EXPECT_TRUE(close(ys[i], y[i], ymax)) << i << ": " << ys[i] << " vs " << y[i];
      EXPECT_TRUE(close(dxs[i], dx[i], dxmax)) << i << ": " << dxs[i] << " vs " << dx[i];
    }
    for (size_t c = 0; c < s.C; ++c) {  // the gradient all-reduce adds the ranks' parameter gradients
      float sg = 0, sb = 0;
      for (size_t q = 0; q < R; ++q) {
        sg += dgs[q][c];
        sb += dbs[q][c];
      }
      EXPECT_TRUE(close(sg, dg[c], std::fabs(dg[c]))) << c;
      EXPECT_TRUE(close(sb, db[c], std::fabs(db[c]))) << c;
    }
    // Per-rank statistics (each shard normalised alone) would be far off: the test can tell them apart.
    std::vector<float> y0(sizes[0] * per), m0(s.C), v0(s.C), r0(s.C);
    std::vector<double> st0(2 * s.C);
    ops::BatchNormShape s0 = s;
    s0.N = sizes[0];
    kernels::batchnorm_train_forward(s0, 1e-5, x.data(), g.data(), b.data(), y0.data(), m0.data(), v0.data(), r0.data(),
                                     st0.data(), nullptr);
    bool differs = false;
    for (size_t i = 0; i < y0.size(); ++i) differs |= !close(y0[i], y[i], ymax);
    EXPECT_TRUE(differs);
  }
}

TEST(Distributed, ShardsCoverTheBatchWithTheFirstRanksTakingTheRemainder) {
  for (size_t B : {1, 2, 7, 128, 719})
    for (int N : {1, 2, 3, 4}) {
      if (B < static_cast<size_t>(N)) continue;
      size_t next = 0;
      for (int r = 0; r < N; ++r) {
        const dist::Shard s = dist::shard_of(B, N, r);
        EXPECT_EQ(s.first, next) << B << " " << N << " " << r;
        EXPECT_EQ(s.count, B / size_t(N) + (size_t(r) < B % size_t(N) ? 1 : 0));
        EXPECT_EQ(s.count, ops::shard_sizes(B, size_t(N))[size_t(r)]);
        next += s.count;
      }
      EXPECT_EQ(next, B);
    }
}

TEST(Distributed, NotLaunchedByMpirunMeansNoGroupAndNoMpi) {
  if (dist::launched_size() != 0) GTEST_SKIP() << "running under mpirun";
  EXPECT_EQ(dist::join(), nullptr);
}

// The data-parallel settings that need mpirun are refused without it, in one line and before any data is read
// (train::check_data_parallel, which train() runs too).
TEST(Distributed, SyncBatchNormWithoutMpirunIsRefusedBeforeAnyWork) {
  if (dist::launched_size() != 0) GTEST_SKIP() << "running under mpirun";
  // (data that does not exist: read first, it would be the error)
  const Cmd c = sh("train --spec " + repo("specs/mnist_cnn_bn.json") +
                   " --data /nonexistent/veridl-data --data-mismatch-ok --epochs 1 --no-run-dir --sync-bn 2>&1");
  EXPECT_NE(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("error: --sync-bn: synchronized BatchNorm needs a data-parallel run (mpirun -np N veridl train "
                       "...)"),
            std::string::npos)
      << c.out;
  EXPECT_EQ(std::count(c.out.begin(), c.out.end(), '\n'), 1) << c.out;
  train::TrainConfig cfg;
  cfg.sync_bn = true;
  EXPECT_THROW(train::check_data_parallel(cfg), Error);
  cfg.sync_bn = false;
  EXPECT_NO_THROW(train::check_data_parallel(cfg));
}

TEST(Distributed, HashSeesEveryByte) {
  std::vector<unsigned char> a(1000, 7);
  const uint64_t h = dist::hash_bytes(a.data(), a.size());
  for (size_t i : {size_t(0), size_t(7), size_t(8), size_t(999)}) {
    auto b = a;
    b[i] ^= 1;
    EXPECT_NE(dist::hash_bytes(b.data(), b.size()), h) << i;
  }
  EXPECT_NE(dist::hash_bytes(a.data(), a.size() - 1), h);
}
