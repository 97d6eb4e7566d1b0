// The trusted base: each of the seven derivative rules audited against central differences in double.
#include <gtest/gtest.h>

#include "veridl/calculus/audit.hpp"

using namespace veridl;

TEST(Atoms, EveryRuleAgreesWithCentralDifferences) {
  auto audits = audit_all_atoms(1000);
  ASSERT_EQ(audits.size(), 7u);
  for (const auto& a : audits) {
    EXPECT_EQ(a.points, 1000);
    EXPECT_LT(a.max_rel_error, 1e-6) << a.atom;
  }
}

TEST(Atoms, ABrokenRuleFailsTheAudit) {
  // tanh' written as 1 + t^2 instead of 1 - t^2: the exact check would accept backwards "fixed" to
  // match it, so the audit must catch it.
  auto broken = audit_atom_rule(
      "tanh (broken)", [](double x) { return std::tanh(x); },
      [](Dual<double> x) {
        double t = std::tanh(x.v);
        return Dual<double>(t, (1 + t * t) * x.d);
      },
      -4, 4);
  EXPECT_GT(broken.max_rel_error, 0.1);
  // And a subtle one: sigmoid' = s(1-s) scaled by 1.001.
  auto subtle = audit_atom_rule(
      "sigmoid (scaled)", [](double x) { return asigmoid(x); },
      [](Dual<double> x) {
        double s = asigmoid(x.v);
        return Dual<double>(s, 1.001 * s * (1 - s) * x.d);
      },
      -8, 8);
  EXPECT_GT(subtle.max_rel_error, 1e-4);
}

TEST(Atoms, FieldAtomsAreUninterpretedButDeterministic) {
  Oracle::key() = 12345;
  F61 a(3), b(5);
  EXPECT_EQ(aexp(a), aexp(a));
  EXPECT_NE(aexp(a + b), aexp(a) * aexp(b));  // no identity between atoms holds
  EXPECT_NE(aexp(a), atanh_(a));              // different atoms, different functions
  F61 first = aexp(a);
  Oracle::key() = 999;
  EXPECT_NE(aexp(a), first);  // a fresh key is a fresh function
}

TEST(Atoms, DualRulesUseTheAtomsOwnValue) {
  Oracle::key() = 7;
  Dual<F61> x(F61(11), F61(1));
  F61 e = aexp(F61(11));
  EXPECT_EQ(aexp(x).d, e);
  F61 t = atanh_(F61(11));
  EXPECT_EQ(atanh_(x).d, F61(1) - t * t);
  F61 r = arsqrt(F61(11));
  EXPECT_EQ(arsqrt(x).d, -(r * r * r) / F61(2));
}
