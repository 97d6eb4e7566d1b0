#include <gtest/gtest.h>

#include <random>
#include <type_traits>
#include <vector>

#include "veridl/calculus/dual.hpp"
#include "veridl/calculus/field.hpp"

using namespace veridl;

namespace veridl {
template <uint64_t P>
void PrintTo(const Zp<P>& z, std::ostream* os) {
  *os << z.raw() << " (mod " << P << ")";
}
}  // namespace veridl

template <class F>
class FieldTest : public ::testing::Test {};
using Fields = ::testing::Types<F61, F62>;
TYPED_TEST_SUITE(FieldTest, Fields);

// The field has == but no ordering: layer code that branches on a value cannot compile for it.
template <class T>
concept Ordered = requires(T a, T b) { a < b; };
static_assert(!Ordered<F61> && !Ordered<F62> && !Ordered<Dual<F61>>);
static_assert(Ordered<double>);

TYPED_TEST(FieldTest, FieldAxiomsOnRandomElements) {
  using F = TypeParam;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    F a = F::from_raw(rng()), b = F::from_raw(rng()), c = F::from_raw(rng());
    EXPECT_EQ((a + b) + c, a + (b + c));
    EXPECT_EQ((a * b) * c, a * (b * c));
    EXPECT_EQ(a * (b + c), a * b + a * c);
    EXPECT_EQ(a - a, F(0));
    EXPECT_EQ(a + (-a), F(0));
    if (!(b == F(0))) {
      EXPECT_EQ((a / b) * b, a);
    }
  }
}

// The fast reductions (Mersenne for F61, folding for F62 = 2^62 - 57) against the plain 128-bit remainder,
// on random elements and on the extremes where a fold could carry.
TYPED_TEST(FieldTest, MultiplicationMatchesThe128BitRemainder) {
  using F = TypeParam;
  constexpr uint64_t P = F::modulus;
  auto ref = [](uint64_t a, uint64_t b) { return static_cast<uint64_t>(static_cast<u128>(a) * b % P); };
  std::vector<uint64_t> edge = {0, 1, 2, 57, P - 1, P - 2, P - 57, P / 2, P / 2 + 1, (uint64_t{1} << 61) - 1,
                                (uint64_t{1} << 61), (uint64_t{1} << 62) - 58, (uint64_t{1} << 31), (uint64_t{1} << 32) - 1};
  for (uint64_t a : edge)
    for (uint64_t b : edge) {
      if (a >= P || b >= P) continue;
      ASSERT_EQ((F::from_raw(a) * F::from_raw(b)).raw(), ref(a, b)) << a << " * " << b;
    }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200000; ++i) {
    uint64_t a = rng() % P, b = rng() % P;
    ASSERT_EQ((F::from_raw(a) * F::from_raw(b)).raw(), ref(a, b)) << a << " * " << b;
  }
}

TYPED_TEST(FieldTest, DivisionByZeroThrows) {
  using F = TypeParam;
  EXPECT_THROW(F(1) / F(0), DivByZero);
}

TYPED_TEST(FieldTest, DoublesEmbedExactly) {
  using F = TypeParam;
  EXPECT_EQ(F(0.5) * F(2), F(1));
  EXPECT_EQ(F(0.75), F(3) / F(4));
  EXPECT_EQ(F(-2.5), -(F(5) / F(2)));
  // The double 1e-5 is a dyadic rational, not 1/100000: the field product is exact and is not 1
  // (while the double product rounds to 1). Backward code must not rely on such a rounding.
  EXPECT_NE(F(1e-5) * F(100000), F(1));
  // A 1.0001 scale is exactly different from 1: this is how the checker sees it.
  EXPECT_NE(F(1.0001), F(1));
  // 3 * 0.044715 folded in double is a different field element than F(3) * F(0.044715).
  EXPECT_NE(F(3 * 0.044715), F(3) * F(0.044715));
  EXPECT_THROW((void)F(std::numeric_limits<double>::infinity()), std::invalid_argument);
}

TYPED_TEST(FieldTest, SquareRootOfOneHalfIsExact) {
  using F = TypeParam;
  F k = F::inv_sqrt2();
  EXPECT_EQ(k * k * F(2), F(1));
}

TEST(Field, TheTwoModuliAreDifferent) {
  // 2^61 = 1 in F61 (a blind spot of one modulus) but not in F62.
  EXPECT_EQ(F61(std::ldexp(1.0, 61)), F61(1));
  EXPECT_NE(F62(std::ldexp(1.0, 61)), F62(1));
}
