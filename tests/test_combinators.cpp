// Records built from records: the combinators' own backwards are checked by the same checker.
#include <gtest/gtest.h>

#include "veridl/prims/dense/mutants.hpp"
#include "veridl/prims/dense/reference.hpp"
#include "veridl/prims/softmaxCE/mutants.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"
#include "veridl/vjp/check.hpp"
#include "veridl/vjp/combinators.hpp"

using namespace veridl;

namespace {
CheckResult check(const Vjp& f, TapeSource t = TapeSource::Real) {
  CheckOptions o;
  o.tape = t;
  o.sample = Sample::Ties;
  return check_vjp(f, o);
}
Vjp dense(size_t B, size_t I, size_t O) { return make_vjp("dense", ops::DenseOp{{B, I, O}}); }
Vjp softmax(size_t B, size_t K) { return make_vjp("softmax", ops::SoftmaxOp{{B, K}}); }
}  // namespace

TEST(Combinators, CompositionIsChecked) {
  Vjp f = vjp_comp(dense(2, 3, 4), softmax(2, 4));
  EXPECT_EQ(f.in_sizes, (std::vector<size_t>{6, 12, 4}));
  EXPECT_TRUE(check(f).pass) << check(f).failure;
  EXPECT_TRUE(check(f, TapeSource::Random).pass);
  // Three deep, parameters appended in order.
  Vjp g = vjp_comp(vjp_comp(dense(2, 3, 5), dense(2, 5, 4)), softmax(2, 4));
  EXPECT_EQ(g.in_names, (std::vector<std::string>{"x", "W", "b", "W", "b"}));
  EXPECT_TRUE(check(g).pass);
}

TEST(Combinators, CompositionWithABrokenPartIsRejected) {
  Vjp bad = make_vjp("dense[bad]", ops::DenseMutantOp{{ops::DenseShape{2, 3, 4}}, "dx_scale_1.0001"});
  EXPECT_FALSE(check(vjp_comp(bad, softmax(2, 4))).pass);
}

TEST(Combinators, BiPathAdditiveFanIn) {
  // residual: f(x) + x, with f = softmax (same input, same output size)
  Vjp r = bi_path(softmax(3, 4), identity(12));
  EXPECT_TRUE(check(r).pass) << check(r).failure;
  Vjp bad = make_vjp("softmax[bad]", ops::SoftmaxMutantOp{{ops::SoftmaxShape{3, 4}}, "missing_dot"});
  EXPECT_FALSE(check(bi_path(bad, identity(12))).pass);
}

TEST(Combinators, ElemwiseProductMultiplicativeFanIn) {
  // squeeze-excitation shape: x (.) gate(x)
  Vjp se = elemwise_product(identity(8), softmax(2, 4));
  EXPECT_TRUE(check(se).pass) << check(se).failure;
  EXPECT_TRUE(check(se, TapeSource::Random).pass);
}

TEST(Combinators, IdentityAndReindex) {
  EXPECT_TRUE(check(identity(5)).pass);
  // transpose of a 2x3 matrix, a slice, and a broadcast (index used twice)
  EXPECT_TRUE(check(reindex(6, {0, 3, 1, 4, 2, 5})).pass);
  EXPECT_TRUE(check(reindex(6, {1, 2})).pass);
  Vjp bc = reindex(2, {0, 0, 1, 1, 1});
  EXPECT_TRUE(check(bc).pass);
  EXPECT_TRUE(check(vjp_comp(bc, softmax(1, 5))).pass);
}

TEST(Combinators, ShapeMismatchesAreClearErrors) {
  EXPECT_THROW(vjp_comp(dense(2, 3, 4), softmax(2, 5)), std::invalid_argument);
  EXPECT_THROW(bi_path(softmax(2, 3), identity(5)), std::invalid_argument);
  EXPECT_THROW(reindex(3, {0, 3}), std::invalid_argument);
}
