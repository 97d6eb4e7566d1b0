// The decision tape and the conventions that live in it.
#include <gtest/gtest.h>

#include "veridl/calculus/decisions.hpp"

using namespace veridl;

TEST(Decisions, ReluDerivativeAtZeroIsZero) {
  Decisions d;
  EXPECT_FALSE(d.gt(0.0));  // strict: ReLU'(0) = 0
  EXPECT_TRUE(d.gt(1e-300));
  EXPECT_FALSE(d.gt(-0.0));
}

TEST(Decisions, ArgmaxTiesGoToTheLowestIndex) {
  Decisions d;
  std::vector<double> v{1, 3, 3, 2, 3};
  EXPECT_EQ(d.argmax(5, [&](uint32_t i) { return v[i]; }), 1u);
  std::vector<double> w{4, 4, 4};
  EXPECT_EQ(d.argmax(3, [&](uint32_t i) { return w[i]; }), 0u);
}

TEST(Decisions, RecordThenReplayInTheField) {
  Decisions rec(Decisions::Mode::Record);
  std::vector<double> v{0.5, 2.0, -1.0};
  EXPECT_TRUE(rec.gt(0.3));
  EXPECT_EQ(rec.argmax(3, [&](uint32_t i) { return v[i]; }), 1u);
  Decisions rep = Decisions::replay(rec);
  EXPECT_TRUE(rep.gt(F61(12345)));  // the field value is irrelevant: the tape decides
  EXPECT_EQ(rep.argmax(3, [](uint32_t) { return F61(0); }), 1u);
  EXPECT_NO_THROW(rep.finish());
}

TEST(Decisions, AFieldRunCannotDecideWithoutATape) {
  Decisions live;
  EXPECT_THROW(live.gt(F61(1)), TapeError);
}

TEST(Decisions, DesynchronisedTapesAreErrors) {
  Decisions rec(Decisions::Mode::Record);
  rec.gt(1.0);
  rec.gt(-1.0);
  {
    Decisions rep = Decisions::replay(rec);
    rep.gt(F61(0));
    EXPECT_THROW(rep.finish(), TapeError);  // one entry left over
  }
  {
    Decisions rep = Decisions::replay(rec);
    EXPECT_THROW(rep.argmax(2, [](uint32_t) { return F61(0); }), TapeError);  // wrong kind
  }
  {
    Decisions rep = Decisions::replay(rec);
    rep.gt(F61(0));
    rep.gt(F61(0));
    EXPECT_THROW(rep.gt(F61(0)), TapeError);  // exhausted
  }
  {
    Decisions r2(Decisions::Mode::Record);
    std::vector<double> v{1, 2, 3};
    r2.argmax(3, [&](uint32_t i) { return v[i]; });
    Decisions rep = Decisions::replay(r2);
    EXPECT_THROW(rep.argmax(4, [](uint32_t) { return F61(0); }), TapeError);  // width differs
  }
}

TEST(Decisions, RandomTapesAreRecordedAndCoverBothBranches) {
  Decisions rnd(Decisions::Mode::Random, 42);
  int on = 0;
  for (int i = 0; i < 200; ++i) on += rnd.gt(F61(0));  // no value needed: drawn at random
  EXPECT_GT(on, 50);
  EXPECT_LT(on, 150);
  Decisions rep = Decisions::replay(rnd);
  int on2 = 0;
  for (int i = 0; i < 200; ++i) on2 += rep.gt(0.0);
  EXPECT_EQ(on, on2);
  rep.finish();
}
