// The fan-in (biPath), the elementwise product with channel broadcast (elemwiseProduct) and the fan-out
// (book ch. 6 and 8): the fast float32 kernels (src/veridl/prims/{add,mul}/kernel.hpp) against the
// templated references (src/veridl/prims/{add,mul,fanout}/reference.hpp) over many shapes, with and
// without each gradient, in place, and for one and two threads; the three contracts verified across their sweeps and every mutant
// rejected; and add_into, with which the executor accumulates fan-out gradients.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "contract_testutil.hpp"
#include "kernel_testutil.hpp"
#include "veridl/prims/add/kernel.hpp"
#include "veridl/prims/add/mutants.hpp"
#include "veridl/prims/add/reference.hpp"
#include "veridl/prims/fanout/mutants.hpp"
#include "veridl/prims/fanout/reference.hpp"
#include "veridl/prims/mul/kernel.hpp"
#include "veridl/prims/mul/mutants.hpp"
#include "veridl/prims/mul/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/vjp/registry.hpp"

namespace {

using veridl::ops::AddShape;
using veridl::ops::FanoutShape;
using veridl::ops::MulShape;
using namespace veridl::testutil;

// ---- the fast kernels against the reference --------------------------------------------------------

const size_t kAddSizes[] = {0, 1, 2, 3, 7, 8, 9, 17, 33, 1000, (size_t(1) << 16) - 1, (size_t(1) << 16) + 5, 401408};

TEST(ElementwiseKernels, AddMatchesTheReference) {
  for (size_t n : kAddSizes) {
    const AddShape s{n};
    const auto a = random_floats(n, n + 1, -3.0f, 3.0f), b = random_floats(n, n + 2), dy = random_floats(n, n + 3);
    std::vector<float> y(n, 7.0f), da(n, 7.0f), db(n, 7.0f);
    veridl::kernels::add_forward(s, a.data(), b.data(), y.data());
    veridl::kernels::add_backward(s, dy.data(), da.data(), db.data());
    const auto ad = to_double(a), bd = to_double(b), dyd = to_double(dy);
    std::vector<double> ry(n), rda(n), rdb(n);
    veridl::ops::add_forward(s, ad.data(), bd.data(), ry.data());
    veridl::ops::add_backward(s, dyd.data(), rda.data(), rdb.data());
    EXPECT_TRUE(close(y, ry, 1, fmt::format("add y n={}", n)));
    EXPECT_TRUE(close(da, rda, 1, fmt::format("add da n={}", n)));
    EXPECT_TRUE(close(db, rdb, 1, fmt::format("add db n={}", n)));
    // One rounding per element, as the reference at T = float; the gradients are copies.
    std::vector<float> fy(n);
    veridl::ops::add_forward(s, a.data(), b.data(), fy.data());
    EXPECT_TRUE(same_bits(y, fy)) << n;
    EXPECT_TRUE(same_bits(da, dy)) << n;
    EXPECT_TRUE(same_bits(db, dy)) << n;

    // Only one gradient wanted (the other nullptr).
    std::vector<float> da2(n, 7.0f), db2(n, 7.0f);
    veridl::kernels::add_backward(s, dy.data(), da2.data(), nullptr);
    veridl::kernels::add_backward(s, dy.data(), nullptr, db2.data());
    EXPECT_TRUE(same_bits(da2, dy)) << n;
    EXPECT_TRUE(same_bits(db2, dy)) << n;
    veridl::kernels::add_backward(s, dy.data(), nullptr, nullptr);  // nothing wanted: a no-op
  }
}

std::vector<MulShape> mul_shapes() {
  std::vector<MulShape> v;
  for (size_t B : {1, 2, 3, 5})
    for (size_t C : {1, 2, 3, 16})
      for (size_t inner : {1, 2, 4, 7, 9, 49}) v.push_back({B, C, inner});
  v.push_back({128, 16, 196});    // squeeze-excitation on 14x14, above the fork threshold
  v.push_back({64, 1024, 1});     // plain elementwise product, above the fork threshold
  v.push_back({32, 64, 16 * 16});
  return v;
}

TEST(ElementwiseKernels, MulMatchesTheReference) {
  for (const MulShape& m : mul_shapes()) {
    const std::string at = fmt::format("B={} C={} inner={}", m.B, m.C, m.inner);
    const size_t N = m.count(), R = m.scales();
    const uint64_t seed = m.B * 1000003 + m.C * 1009 + m.inner;
    const auto a = random_floats(N, seed, -2.0f, 2.0f), s = random_floats(R, seed + 1, 0.0f, 1.0f),
               dy = random_floats(N, seed + 2);
    std::vector<float> y(N, 7.0f), da(N, 7.0f), ds(R, 7.0f);
    veridl::kernels::mul_forward(m, a.data(), s.data(), y.data());
    veridl::kernels::mul_backward(m, a.data(), s.data(), dy.data(), da.data(), ds.data());
    const auto ad = to_double(a), sd = to_double(s), dyd = to_double(dy);
    std::vector<double> ry(N), rda(N), rds(R);
    veridl::ops::mul_forward(m, ad.data(), sd.data(), ry.data());
    veridl::ops::mul_backward(m, ad.data(), sd.data(), dyd.data(), rda.data(), rds.data());
    EXPECT_TRUE(close(y, ry, 1, "y " + at));
    EXPECT_TRUE(close(da, rda, 1, "da " + at));
    EXPECT_TRUE(close(ds, rds, m.inner, "ds " + at));
    // The products are one rounding, as the reference at T = float.
    std::vector<float> fy(N), fda(N);
    veridl::ops::mul_forward(m, a.data(), s.data(), fy.data());
    veridl::ops::mul_backward(m, a.data(), s.data(), dy.data(), fda.data(), static_cast<float*>(nullptr));
    EXPECT_TRUE(same_bits(y, fy)) << at;
    EXPECT_TRUE(same_bits(da, fda)) << at;

    // Only one gradient wanted: the wanted one is the same bits.
    std::vector<float> da2(N, 7.0f), ds3(R, 7.0f);
    veridl::kernels::mul_backward(m, a.data(), s.data(), dy.data(), da2.data(), nullptr);
    veridl::kernels::mul_backward(m, a.data(), s.data(), dy.data(), nullptr, ds3.data());
    EXPECT_TRUE(same_bits(da2, da)) << at;
    EXPECT_TRUE(same_bits(ds3, ds)) << at;
    veridl::kernels::mul_backward(m, a.data(), s.data(), dy.data(), nullptr, nullptr);  // a no-op
  }
}

TEST(ElementwiseKernels, ReferenceSkipsTheGradientsNotWanted) {
  const MulShape m{2, 3, 4};
  const auto a = to_double(random_floats(m.count(), 1)), s = to_double(random_floats(m.scales(), 2)),
             dy = to_double(random_floats(m.count(), 3));
  std::vector<double> da(m.count(), 7.0), ds(m.scales(), 7.0);
  veridl::ops::mul_backward(m, a.data(), s.data(), dy.data(), da.data(), static_cast<double*>(nullptr));
  for (double x : ds) EXPECT_EQ(x, 7.0);
  veridl::ops::mul_backward(m, a.data(), s.data(), dy.data(), static_cast<double*>(nullptr), ds.data());
  EXPECT_NE(ds[0], 7.0);
  std::vector<double> db(5, 7.0);
  veridl::ops::add_backward(AddShape{5}, dy.data(), static_cast<double*>(nullptr), db.data());
  for (size_t i = 0; i < db.size(); ++i) EXPECT_EQ(db[i], dy[i]);
}

TEST(ElementwiseKernels, InPlace) {
  const size_t n = 1001;
  const auto a = random_floats(n, 1), b = random_floats(n, 2), dy = random_floats(n, 3);
  std::vector<float> y(n), da(n), db(n);
  veridl::kernels::add_forward({n}, a.data(), b.data(), y.data());
  std::vector<float> ya = a, yb = b;
  veridl::kernels::add_forward({n}, ya.data(), b.data(), ya.data());
  veridl::kernels::add_forward({n}, a.data(), yb.data(), yb.data());
  EXPECT_TRUE(same_bits(ya, y));
  EXPECT_TRUE(same_bits(yb, y));
  std::vector<float> g = dy;
  veridl::kernels::add_backward({n}, g.data(), g.data(), db.data());
  EXPECT_TRUE(same_bits(g, dy));
  EXPECT_TRUE(same_bits(db, dy));

  for (const MulShape& m : {MulShape{7, 11, 13}, MulShape{3, 333, 1}}) {
    const size_t N = m.count(), R = m.scales();
    const auto x = random_floats(N, 4), s = random_floats(R, 5), g0 = random_floats(N, 6);
    std::vector<float> my(N), mda(N), mds(R);
    veridl::kernels::mul_forward(m, x.data(), s.data(), my.data());
    veridl::kernels::mul_backward(m, x.data(), s.data(), g0.data(), mda.data(), mds.data());
    std::vector<float> xy = x;
    veridl::kernels::mul_forward(m, xy.data(), s.data(), xy.data());
    EXPECT_TRUE(same_bits(xy, my));
    std::vector<float> gg = g0, ds1(R), xa = x, ds2(R);
    veridl::kernels::mul_backward(m, x.data(), s.data(), gg.data(), gg.data(), ds1.data());  // da over dy
    veridl::kernels::mul_backward(m, xa.data(), s.data(), g0.data(), xa.data(), ds2.data());  // da over a
    EXPECT_TRUE(same_bits(gg, mda));
    EXPECT_TRUE(same_bits(ds1, mds));
    EXPECT_TRUE(same_bits(xa, mda));
    EXPECT_TRUE(same_bits(ds2, mds));
  }
}

TEST(ElementwiseKernels, AddIntoAccumulates) {
  for (size_t n : kAddSizes) {
    const auto g1 = random_floats(n, n + 11), g2 = random_floats(n, n + 12), g3 = random_floats(n, n + 13);
    std::vector<float> acc = g1;
    veridl::kernels::add_into(n, g2.data(), acc.data());
    veridl::kernels::add_into(n, g3.data(), acc.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(acc[i], (g1[i] + g2[i]) + g3[i]) << "n=" << n << " i=" << i;
  }
  // The fan-out's backward is the first gradient plus the second: add_into over a copy of the first.
  const FanoutShape fs{37};
  const auto dy = random_floats(2 * fs.n, 99);
  std::vector<float> ref(fs.n), dx(dy.begin(), dy.begin() + static_cast<std::ptrdiff_t>(fs.n));
  veridl::ops::fanout_backward(fs, dy.data(), ref.data());
  veridl::kernels::add_into(fs.n, dy.data() + fs.n, dx.data());
  EXPECT_TRUE(same_bits(dx, ref));
  // Fixed values, exactly representable.
  std::vector<float> d{1.0f, -2.0f, 0.5f}, s{3.0f, 2.0f, -0.5f};
  veridl::kernels::add_into(3, s.data(), d.data());
  EXPECT_EQ(d, (std::vector<float>{4.0f, 0.0f, 0.0f}));
}

struct EwRun {
  std::vector<float> y, da, db, my, mda, mds, acc;
};

EwRun run_all(int threads, size_t n, const MulShape& m) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  const auto a = random_floats(n, 1), b = random_floats(n, 2), dy = random_floats(n, 3);
  const auto ma = random_floats(m.count(), 4), ms = random_floats(m.scales(), 5), mdy = random_floats(m.count(), 6);
  EwRun r{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n), std::vector<float>(m.count()),
        std::vector<float>(m.count()), std::vector<float>(m.scales()), a};
  veridl::kernels::add_forward({n}, a.data(), b.data(), r.y.data());
  veridl::kernels::add_backward({n}, dy.data(), r.da.data(), r.db.data());
  veridl::kernels::mul_forward(m, ma.data(), ms.data(), r.my.data());
  veridl::kernels::mul_backward(m, ma.data(), ms.data(), mdy.data(), r.mda.data(), r.mds.data());
  veridl::kernels::add_into(n, b.data(), r.acc.data());
  omp_set_num_threads(saved);
  return r;
}

TEST(ElementwiseKernels, BitIdenticalForOneAndThreeThreads) {
  for (const MulShape& m : {MulShape{128, 16, 196}, MulShape{64, 2048, 1}, MulShape{3, 5, 7}}) {
    const size_t n = m.count();
    const EwRun one = run_all(1, n, m), three = run_all(3, n, m);
    const std::string at = fmt::format("B={} C={} inner={}", m.B, m.C, m.inner);
    EXPECT_TRUE(same_bits(one.y, three.y)) << at;
    EXPECT_TRUE(same_bits(one.da, three.da)) << at;
    EXPECT_TRUE(same_bits(one.db, three.db)) << at;
    EXPECT_TRUE(same_bits(one.my, three.my)) << at;
    EXPECT_TRUE(same_bits(one.mda, three.mda)) << at;
    EXPECT_TRUE(same_bits(one.mds, three.mds)) << at;
    EXPECT_TRUE(same_bits(one.acc, three.acc)) << at;
  }
}

// ---- the contracts -------------------------------------------------------------------------------

using veridl::Contract;

const std::vector<std::string> kElementwiseContracts = {"biPath_has_vjp", "elemwiseProduct_has_vjp", "fanout_has_vjp"};

TEST(ElementwiseContracts, RegisteredUnderTheBooksNamesAndChapters) {
  EXPECT_EQ(builtin_contract("biPath_has_vjp").chapter, 6);
  EXPECT_EQ(builtin_contract("fanout_has_vjp").chapter, 6);
  EXPECT_EQ(builtin_contract("elemwiseProduct_has_vjp").chapter, 8);
  for (const std::string& name : kElementwiseContracts) {
    const Contract& c = builtin_contract(name);
    EXPECT_TRUE(c.wrt.empty()) << name;  // every input's gradient
    EXPECT_GE(c.mutants.size(), 3u) << name;
    int production = 0;
    for (const auto& cs : c.sweep) production += cs.production;
    EXPECT_EQ(production, 1) << name;
    EXPECT_GE(c.sweep.size(), 7u) << name;
  }
}

TEST(ElementwiseContracts, VerifiedAcrossTheirSweeps) {
  veridl::RunOptions opt;
  opt.production = false;
  expect_contracts_verified(kElementwiseContracts, opt);
}

TEST(ElementwiseContracts, EveryMutantIsRejected) {
  veridl::RunOptions opt;
  opt.production = false;
  expect_mutants_rejected(kElementwiseContracts, {1, 2, 1234567}, opt);
}

TEST(ElementwiseContracts, AnUnknownMutantIsAnError) {
  veridl::Vjp f = veridl::make_vjp("add[?]", veridl::ops::AddMutantOp{{AddShape{3}}, "no_such_bug"});
  veridl::CheckOptions o;
  const veridl::CheckResult r = veridl::check_vjp(f, o);  // the checker reports the throw as a failure
  EXPECT_FALSE(r.pass);
  EXPECT_NE(r.failure.find("unknown add mutant"), std::string::npos) << r.failure;
}

}  // namespace
