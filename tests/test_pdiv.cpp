// The book's foundation rules (Proofs/Foundation/Tensor.lean) as property tests of the mechanical
// pdiv, on random functions built from atoms. Over the prime field the rules hold exactly, so every
// comparison below is an equality, over many random cases and both moduli.
#include <gtest/gtest.h>

#include <random>

#include "veridl/calculus/atoms.hpp"
#include "veridl/calculus/pdiv.hpp"

using namespace veridl;

namespace {

// f_j(x) = sum_t c_t * atom_t(sum_i a_ti x_i + d_t) * x_{k_t}  (+ a rational term)
struct RandomFn {
  size_t n_in = 0, n_out = 0;
  struct Term {
    int atom;
    std::vector<double> a;
    double d, c;
    size_t k;
  };
  std::vector<std::vector<Term>> terms;

  RandomFn(size_t in, size_t out, std::mt19937_64& rng) : n_in(in), n_out(out), terms(out) {
    std::uniform_int_distribution<int> small(-8, 8), atom(0, 7), nterms(1, 3);
    std::uniform_int_distribution<size_t> idx(0, in - 1);
    for (auto& ts : terms)
      for (int t = nterms(rng); t > 0; --t) {
        Term term{atom(rng), std::vector<double>(in), small(rng) / 4.0, small(rng) / 4.0 + 0.125, idx(rng)};
        for (auto& ai : term.a) ai = small(rng) / 8.0;
        ts.push_back(term);
      }
  }

  template <class T>
  std::vector<T> operator()(const std::vector<T>& x) const {
    std::vector<T> y(n_out, T(0));
    for (size_t j = 0; j < n_out; ++j)
      for (const Term& t : terms[j]) {
        T u = T(t.d);
        for (size_t i = 0; i < n_in; ++i) u += T(t.a[i]) * x[i];
        T v;
        switch (t.atom) {
          case 0: v = aexp(u); break;
          case 1: v = atanh_(u); break;
          case 2: v = asigmoid(u); break;
          case 3: v = aerf(u); break;
          case 4: v = alog(T(1) + u * u); break;
          case 5: v = arsqrt(T(1) + u * u); break;
          case 6: v = asqrt(T(1) + u * u); break;
          default: v = T(1) / (T(2) + u * u); break;
        }
        y[j] += T(t.c) * v * x[t.k];
      }
    return y;
  }
};

template <class F>
std::vector<F> random_point(size_t n, std::mt19937_64& rng) {
  std::vector<F> x(n);
  for (auto& e : x) e = F::from_raw(rng());
  return x;
}

}  // namespace

template <class F>
class FoundationRules : public ::testing::Test {};
using Fields = ::testing::Types<F61, F62>;
TYPED_TEST_SUITE(FoundationRules, Fields);

constexpr int kCases = 200;

TYPED_TEST(FoundationRules, Identity) {
  using F = TypeParam;
  std::mt19937_64 rng(1);
  for (int c = 0; c < kCases; ++c) {
    auto x = random_point<F>(4, rng);
    for (size_t i = 0; i < 4; ++i)
      for (size_t j = 0; j < 4; ++j)
        EXPECT_EQ(pdiv([](const auto& v) { return v; }, x, i, j), F(i == j ? 1 : 0));
  }
}

TYPED_TEST(FoundationRules, Constant) {
  using F = TypeParam;
  std::mt19937_64 rng(2);
  for (int c = 0; c < kCases; ++c) {
    auto x = random_point<F>(3, rng);
    auto cst = [](const auto& v) {
      using D = typename std::decay_t<decltype(v)>::value_type;
      return std::vector<D>{D(0.75), D(-2.0)};
    };
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 2; ++j) EXPECT_EQ(pdiv(cst, x, i, j), F(0));
  }
}

TYPED_TEST(FoundationRules, Reindex) {  // permutation, reshape, slice, broadcast
  using F = TypeParam;
  std::mt19937_64 rng(3);
  for (int c = 0; c < kCases; ++c) {
    std::vector<size_t> sigma(6);
    for (auto& s : sigma) s = rng() % 5;
    auto g = [&](const auto& v) {
      std::decay_t<decltype(v)> y(sigma.size());
      for (size_t k = 0; k < sigma.size(); ++k) y[k] = v[sigma[k]];
      return y;
    };
    auto x = random_point<F>(5, rng);
    for (size_t i = 0; i < 5; ++i)
      for (size_t j = 0; j < 6; ++j) EXPECT_EQ(pdiv(g, x, i, j), F(i == sigma[j] ? 1 : 0));
  }
}

TYPED_TEST(FoundationRules, SumAndProduct) {
  using F = TypeParam;
  std::mt19937_64 rng(4);
  for (int c = 0; c < kCases; ++c) {
    Oracle::key() = rng();
    RandomFn f(3, 2, rng), g(3, 2, rng);
    auto x = random_point<F>(3, rng);
    auto sum = [&](const auto& v) {
      auto a = f(v), b = g(v);
      for (size_t k = 0; k < a.size(); ++k) a[k] += b[k];
      return a;
    };
    auto prod = [&](const auto& v) {
      auto a = f(v), b = g(v);
      for (size_t k = 0; k < a.size(); ++k) a[k] *= b[k];
      return a;
    };
    auto fx = f(x), gx = g(x);
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 2; ++j) {
        EXPECT_EQ(pdiv(sum, x, i, j), pdiv(f, x, i, j) + pdiv(g, x, i, j));                        // pdiv_add
        EXPECT_EQ(pdiv(prod, x, i, j), pdiv(f, x, i, j) * gx[j] + fx[j] * pdiv(g, x, i, j));      // pdiv_mul
      }
  }
}

TYPED_TEST(FoundationRules, ChainRule) {  // pdiv_comp
  using F = TypeParam;
  std::mt19937_64 rng(5);
  for (int c = 0; c < kCases; ++c) {
    Oracle::key() = rng();
    RandomFn f(3, 4, rng), g(4, 2, rng);
    auto x = random_point<F>(3, rng);
    auto gf = [&](const auto& v) { return g(f(v)); };
    auto fx = f(x);
    for (size_t i = 0; i < 3; ++i)
      for (size_t k = 0; k < 2; ++k) {
        F rhs(0);
        for (size_t j = 0; j < 4; ++j) rhs += pdiv(f, x, i, j) * pdiv(g, fx, j, k);
        EXPECT_EQ(pdiv(gf, x, i, k), rhs);
      }
  }
}

TYPED_TEST(FoundationRules, FiniteSum) {  // pdiv_finset_sum
  using F = TypeParam;
  std::mt19937_64 rng(6);
  for (int c = 0; c < 50; ++c) {
    Oracle::key() = rng();
    std::vector<RandomFn> fs;
    for (int s = 0; s < 4; ++s) fs.emplace_back(3, 2, rng);
    auto total = [&](const auto& v) {
      auto acc = fs[0](v);
      for (size_t s = 1; s < fs.size(); ++s) {
        auto b = fs[s](v);
        for (size_t k = 0; k < acc.size(); ++k) acc[k] += b[k];
      }
      return acc;
    };
    auto x = random_point<F>(3, rng);
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 2; ++j) {
        F rhs(0);
        for (const auto& f : fs) rhs += pdiv(f, x, i, j);
        EXPECT_EQ(pdiv(total, x, i, j), rhs);
      }
  }
}

TEST(FoundationRulesReal, ChainRuleInDoubleMatchesFiniteDifferences) {
  std::mt19937_64 rng(7);
  for (int c = 0; c < 50; ++c) {
    RandomFn f(3, 2, rng);
    std::normal_distribution<double> n(0, 0.5);
    std::vector<double> x{n(rng), n(rng), n(rng)};
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 2; ++j) {
        auto xp = x, xm = x;
        xp[i] += 1e-6;
        xm[i] -= 1e-6;
        double fd = (f(xp)[j] - f(xm)[j]) / 2e-6;
        EXPECT_NEAR(pdiv(f, x, i, j), fd, 1e-5 * (1 + std::fabs(fd)));
      }
  }
}

// A dual number with a broken product rule (it forgets a.v * b.d). The product-rule property test
// must fail for it: the property tests cannot pass on a broken rule.
namespace {
template <class T>
struct ForgetfulDual {
  T v{}, d{};
  ForgetfulDual() = default;
  ForgetfulDual(T a, T b) : v(a), d(b) {}
  friend ForgetfulDual operator+(const ForgetfulDual& a, const ForgetfulDual& b) { return {a.v + b.v, a.d + b.d}; }
  friend ForgetfulDual operator*(const ForgetfulDual& a, const ForgetfulDual& b) { return {a.v * b.v, a.d * b.v}; }
};
template <template <class> class D, class F>
F pdiv_with(const std::function<std::vector<D<F>>(const std::vector<D<F>>&)>& f, const std::vector<F>& x, size_t i,
            size_t j) {
  std::vector<D<F>> xd(x.size());
  for (size_t k = 0; k < x.size(); ++k) xd[k] = D<F>(x[k], F(k == i ? 1 : 0));
  return f(xd)[j].d;
}
template <template <class> class D>
int product_rule_violations(std::mt19937_64& rng) {
  using Fn = std::function<std::vector<D<F61>>(const std::vector<D<F61>>&)>;
  Fn f = [](const auto& v) { return std::vector<D<F61>>{v[0] * v[1] + v[2]}; };
  Fn g = [](const auto& v) { return std::vector<D<F61>>{v[1] * v[2] + v[0]}; };
  Fn fg = [&](const auto& v) { return std::vector<D<F61>>{f(v)[0] * g(v)[0]}; };
  int bad = 0;
  for (int c = 0; c < 100; ++c) {
    auto x = random_point<F61>(3, rng);
    F61 fx = x[0] * x[1] + x[2], gx = x[1] * x[2] + x[0];
    for (size_t i = 0; i < 3; ++i)
      bad += !(pdiv_with<D>(fg, x, i, 0) == pdiv_with<D>(f, x, i, 0) * gx + fx * pdiv_with<D>(g, x, i, 0));
  }
  return bad;
}
}  // namespace

TEST(FoundationRulesBroken, ABrokenProductRuleFailsTheProperty) {
  std::mt19937_64 rng(8);
  EXPECT_EQ(product_rule_violations<Dual>(rng), 0);
  EXPECT_GE(product_rule_violations<ForgetfulDual>(rng), 150);  // 2 of the 3 partials, every case
}
