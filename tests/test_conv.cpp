// Chapter 4: the conv2d and max-pool contracts verified across their sweeps, every mutant rejected,
// the conventions the identity check cannot see (max-pool ties, padded cells), the SAME/VALID shape
// helpers, and clear errors for impossible shapes. Chapter 7: the same for grouped and depthwise convs
// (conv2d's "groups"), and the NetSpec field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "contract_testutil.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/prims/conv2d/mutants.hpp"
#include "veridl/prims/conv2d/reference.hpp"
#include "veridl/prims/maxPool/mutants.hpp"
#include "veridl/prims/maxPool/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/vjp/check.hpp"
#include "veridl/vjp/registry.hpp"

using namespace veridl;
using namespace veridl::testutil;
using ops::Conv2dShape;
using ops::MaxPoolShape;
using ops::Padding;
using ops::PadStyle;

namespace {
const char* const kChapter4[] = {"conv2d_has_vjp3_correct", "conv2d_weight_grad_has_vjp", "conv2d_bias_grad_has_vjp",
                                 "maxPool2_has_vjp3_correct"};
}

// ---- contracts and mutants ---------------------------------------------------------------------------

TEST(ConvContracts, RegisteredUnderTheBooksNames) {
  const Registry& r = builtin_contracts();
  for (const char* name : kChapter4) {
    const Contract* c = r.find(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_EQ(c->chapter, 4);
    EXPECT_GE(c->mutants.size(), 3u) << name;
    EXPECT_EQ(c->wrt.size(), 1u) << name;
    size_t production = 0;
    for (const auto& cs : c->sweep) production += cs.production;
    EXPECT_GE(production, 1u) << name;
    EXPECT_LE(c->sweep.size(), 300u) << name << ": the sweep must stay tiny";
  }
  EXPECT_EQ(r.find("conv2d_has_vjp3_correct")->wrt, std::vector<std::string>{"x"});
  EXPECT_EQ(r.find("conv2d_weight_grad_has_vjp")->wrt, std::vector<std::string>{"W"});
  EXPECT_EQ(r.find("conv2d_bias_grad_has_vjp")->wrt, std::vector<std::string>{"b"});
}

// The sweep is part of the spec: it must reach every index path it claims to.
TEST(ConvContracts, SweepsCoverTheIndexPaths) {
  const Registry& r = builtin_contracts();
  auto has = [](const Contract& c, const std::string& needle) {
    for (const auto& cs : c.sweep)
      if (!cs.production && cs.config.find(needle) != std::string::npos) return true;
    return false;
  };
  const Contract& conv = *r.find("conv2d_has_vjp3_correct");
  for (int s = 1; s <= 3; ++s) EXPECT_TRUE(has(conv, " s=" + std::to_string(s) + " ")) << "stride " << s;
  for (int k = 1; k <= 5; ++k) EXPECT_TRUE(has(conv, " k=" + std::to_string(k) + "x" + std::to_string(k))) << "k " << k;
  for (int p = 0; p <= 2; ++p) {
    const std::string q = std::to_string(p);
    EXPECT_TRUE(has(conv, "pad=(t" + q + ",l" + q + ",b" + q + ",r" + q + ")")) << "pad " << p;
  }
  EXPECT_TRUE(has(conv, "(SAME, xla)"));
  EXPECT_TRUE(has(conv, "(SAME, symmetric)"));
  EXPECT_TRUE(has(conv, "k=4x4 s=4 pad=(t0,l0,b0,r0)"));  // ConvNeXt's patchify stem
  EXPECT_TRUE(has(conv, "k=2x2 s=2 pad=(t0,l0,b0,r0)"));  // and downsample
  EXPECT_TRUE(has(conv, "B=1 "));
  EXPECT_TRUE(has(conv, "B=2 "));
  EXPECT_TRUE(has(conv, "no-bias"));
  std::set<std::pair<int, int>> parity;  // (H mod 2, W mod 2): odd and even extents in every combination
  for (const auto& cs : conv.sweep) {
    const size_t h = cs.config.find(" H="), w = cs.config.find(" W=");
    ASSERT_NE(h, std::string::npos) << cs.config;
    ASSERT_NE(w, std::string::npos) << cs.config;
    parity.insert({std::stoi(cs.config.substr(h + 3)) % 2, std::stoi(cs.config.substr(w + 3)) % 2});
  }
  EXPECT_EQ(parity.size(), 4u);
  for (int c = 1; c <= 3; ++c) {
    EXPECT_TRUE(has(conv, " C=" + std::to_string(c) + " ")) << "C " << c;
    EXPECT_TRUE(has(conv, " O=" + std::to_string(c) + " ")) << "O " << c;
  }
  const Contract& pool = *r.find("maxPool2_has_vjp3_correct");
  for (int s = 1; s <= 3; ++s) EXPECT_TRUE(has(pool, " s=" + std::to_string(s) + " ")) << "stride " << s;
  for (int k = 1; k <= 3; ++k) EXPECT_TRUE(has(pool, " k=" + std::to_string(k) + "x" + std::to_string(k))) << "k " << k;
  EXPECT_TRUE(has(pool, "pad=(t1,l1,b1,r1)"));
  EXPECT_TRUE(has(pool, "B=2 "));
  size_t ties = 0;
  for (const auto& cs : pool.sweep) ties += cs.sample == Sample::Ties;
  EXPECT_GE(ties, pool.sweep.size() / 3) << "tie-heavy inputs must be planted";
}

TEST(ConvContracts, EveryContractIsVerifiedAcrossItsSweep) {
  expect_contracts_verified({std::begin(kChapter4), std::end(kChapter4)});
}

TEST(ConvContracts, EveryMutantIsRejected) {
  expect_mutants_rejected({std::begin(kChapter4), std::end(kChapter4)}, {1, 7});
}

// Coverage is a property of the config set (verification.md 4.4): "stride applied to the kernel
// offset" is the correct program at stride 1 and only a stride >= 2 config exposes it.
TEST(ConvContracts, StrideBugsNeedStridedConfigs) {
  CheckOptions o;
  o.wrt = {"x"};
  const Conv2dShape s1{2, 2, 5, 6, 3, 3, 3, 1, 1, 1, 1, 1, true};
  Conv2dShape s2 = s1;
  s2.stride = 2;
  EXPECT_TRUE(check_vjp(make_vjp("m", ops::Conv2dMutantOp{{s1}, "dx_stride_on_kernel_offset"}), o).pass);
  EXPECT_FALSE(check_vjp(make_vjp("m", ops::Conv2dMutantOp{{s2}, "dx_stride_on_kernel_offset"}), o).pass);
}

// An independent second opinion in double, branches frozen by the tape (ties are then harmless).
TEST(ConvContracts, FiniteDifferencesAgree) {
  FdOptions o;
  EXPECT_TRUE(fd_gradcheck(make_vjp("conv", ops::Conv2dOp{{2, 2, 5, 4, 3, 3, 2, 2, 1, 0, 1, 1, true}}), o).pass);
  o.sample = Sample::Ties;
  EXPECT_TRUE(fd_gradcheck(make_vjp("pool", ops::MaxPoolOp{{2, 2, 5, 6, 3, 3, 2, 1, 1, 1, 1}}), o).pass);
}

// ---- conventions (invisible to the identity check) ---------------------------------------------------

TEST(MaxPoolConventions, TiedMaximaSendTheWholeGradientToTheFirstMaximum) {
  // One 3x3 window: maxima 5 at window positions 1, 3 and 8; the first in row-major order is 1.
  const MaxPoolShape s{1, 1, 3, 3, 3, 3, 1, 0, 0, 0, 0};
  const std::vector<double> x{0, 5, 1, 5, -1, 2, 3, 4, 5};
  std::vector<double> y(1), dx(9);
  std::vector<uint32_t> idx(1);
  Decisions D;
  ops::maxpool_forward(s, x.data(), y.data(), idx.data(), D);
  EXPECT_EQ(y[0], 5.0);
  EXPECT_EQ(idx[0], 1u);
  const std::vector<double> dy{2.5};
  ops::maxpool_backward(s, idx.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<double>{0, 2.5, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(MaxPoolConventions, OverlappingWindowsAccumulate) {
  // 3x3 windows, stride 1, on a 3x4 input whose maximum 9 lies in both windows.
  const MaxPoolShape s{1, 1, 3, 4, 3, 3, 1, 0, 0, 0, 0};
  const std::vector<double> x{0, 1, 0, 0, 0, 9, 2, 0, 0, 0, 0, 0};
  std::vector<double> y(2), dx(12);
  std::vector<uint32_t> idx(2);
  Decisions D;
  ops::maxpool_forward(s, x.data(), y.data(), idx.data(), D);
  const std::vector<double> dy{1.5, 2.0};
  ops::maxpool_backward(s, idx.data(), dy.data(), dx.data());
  EXPECT_EQ(dx[5], 3.5);
}

TEST(MaxPoolConventions, PaddedCellsNeverWin) {
  // All inputs negative: a zero pad would win every border window.
  const MaxPoolShape s = ops::maxpool_shape(1, 1, 4, 4, 3, 2, Padding::Same, PadStyle::Symmetric);
  ASSERT_EQ(s.pad_top, 1u);
  std::vector<double> x(16);
  for (size_t k = 0; k < 16; ++k) x[k] = -1.0 - static_cast<double>(k);
  std::vector<double> y(s.y_size());
  std::vector<uint32_t> idx(s.y_size());
  Decisions D;
  ops::maxpool_forward(s, x.data(), y.data(), idx.data(), D);
  EXPECT_EQ(y, (std::vector<double>{-1, -2, -5, -6}));
  // The window at (0, 0) covers input rows/cols -1..1: the winner is input (0, 0), window cell (1, 1).
  EXPECT_EQ(idx[0], 4u);
}

namespace {
// The other tie convention: the last maximum wins (the forward scans each window backwards). A change
// of convention in the forward; the backward is the same routing, so the adjoint identity holds just
// as well.
struct LastMaxPoolOp : ops::MaxPoolOp {
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(out_size());
    c.dec.resize(out_size());
    for (size_t o = 0; o < out_size(); ++o) {
      std::vector<uint32_t> cells;  // in-range cells, reverse scan order
      std::vector<size_t> src;
      for (uint32_t k = static_cast<uint32_t>(s.KH * s.KW); k-- > 0;) {
        try {
          src.push_back(ops::maxpool_source(s, o, k));
          cells.push_back(k);
        } catch (const std::out_of_range&) {
        }
      }
      const uint32_t a = D.argmax(static_cast<uint32_t>(cells.size()), [&](uint32_t t) { return in[0][src[t]]; });
      c.dec[o] = cells[a];
      c.out[o] = in[0][src[a]];
    }
    return c;
  }
};
}  // namespace

TEST(MaxPoolConventions, TheIdentityCheckCannotSeeTheTieConvention) {
  // The last-maximum pool really decides differently on ties...
  const MaxPoolShape s{1, 1, 4, 4, 2, 2, 2, 0, 0, 0, 0};
  const Ins<double> x{{1, 1, 0, 3, 0, 0, 3, 2, -1, -1, -1, -1, 0, -2, -2, -2}};
  Decisions d1, d2;
  EXPECT_EQ(ops::MaxPoolOp{s}.forward<double>(x, d1).dec, (std::vector<uint32_t>{0, 1, 2, 0}));
  EXPECT_EQ(LastMaxPoolOp{{s}}.forward<double>(x, d2).dec, (std::vector<uint32_t>{1, 2, 2, 1}));
  // ...and is "verified" all the same: the identity only proves that the backward follows the forward's
  // choice, whatever it was. Hence the convention tests above.
  CheckOptions o;
  o.sample = Sample::Ties;
  EXPECT_TRUE(check_vjp(make_vjp("pool", LastMaxPoolOp{{s}}), o).pass);
  o.tape = TapeSource::Random;
  EXPECT_TRUE(check_vjp(make_vjp("pool", LastMaxPoolOp{{s}}), o).pass);
  // A backward that ignores the choice is caught on the same tapes.
  EXPECT_FALSE(check_vjp(make_vjp("pool", ops::MaxPoolMutantOp{{s}, "grad_to_first_cell"}), o).pass);
}

// ---- the templates on hand-computed examples ---------------------------------------------------------

TEST(Conv2dTemplates, HandExample) {
  // x 1x1x3x3 = 1..9, kernel 2x2 [[1, 0], [0, -1]], stride 1, valid: y[i,j] = x[i,j] - x[i+1,j+1] = -4.
  const Conv2dShape s{1, 1, 3, 3, 1, 2, 2, 1, 0, 0, 0, 0, true};
  const std::vector<double> x{1, 2, 3, 4, 5, 6, 7, 8, 9}, W{1, 0, 0, -1}, b{0.5};
  std::vector<double> y(s.y_size());
  ops::conv2d_forward(s, x.data(), W.data(), b.data(), y.data());
  EXPECT_EQ(y, (std::vector<double>{-3.5, -3.5, -3.5, -3.5}));
  // dx = dy (dilated, full-padded) correlated with the flipped kernel: dy = [[1, 2], [3, 4]].
  const std::vector<double> dy{1, 2, 3, 4};
  std::vector<double> dx(9), dW(4), db(1);
  ops::conv2d_backward_input(s, W.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<double>{1, 2, 0, 3, 3, -2, 0, -3, -4}));
  ops::conv2d_backward_weight(s, x.data(), dy.data(), dW.data());
  EXPECT_EQ(dW, (std::vector<double>{1 + 4 + 12 + 20, 2 + 6 + 15 + 24, 4 + 10 + 21 + 32, 5 + 12 + 24 + 36}));
  ops::conv2d_backward_bias(s, dy.data(), db.data());
  EXPECT_EQ(db[0], 10.0);
}

TEST(Conv2dTemplates, StridedPaddedExample) {
  // x 1x1x4x4 = 0..15, kernel 3x3 of ones, stride 2, pads (t1,l1,b0,r0): windows at rows/cols -1 and 1.
  const Conv2dShape s{1, 1, 4, 4, 1, 3, 3, 2, 1, 1, 0, 0, false};
  ASSERT_EQ(s.OH(), 2u);
  ASSERT_EQ(s.OW(), 2u);
  std::vector<double> x(16), W(9, 1.0), y(4);
  for (size_t k = 0; k < 16; ++k) x[k] = static_cast<double>(k);
  ops::conv2d_forward(s, x.data(), W.data(), nullptr, y.data());
  EXPECT_EQ(y, (std::vector<double>{0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7, 4 + 5 + 8 + 9 + 12 + 13,
                                    5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15}));
}

// ---- shape helpers ---------------------------------------------------------------------------------

TEST(ConvShapes, SamePaddingStyles) {
  // 7x7/s2 on 224 (the ResNet stem): XLA pads (2, 3), symmetric (3, 3); both give 112.
  EXPECT_EQ(ops::conv_pads(224, 7, 2, Padding::Same, PadStyle::XlaSame), (ops::Pads{2, 3}));
  EXPECT_EQ(ops::conv_pads(224, 7, 2, Padding::Same, PadStyle::Symmetric), (ops::Pads{3, 3}));
  const Conv2dShape xla = ops::conv2d_shape(1, 3, 224, 224, 64, 7, 2, Padding::Same, PadStyle::XlaSame, false);
  EXPECT_EQ(xla.OH(), 112u);
  EXPECT_EQ(xla.OW(), 112u);
  EXPECT_EQ(xla.pad_top, 2u);
  EXPECT_EQ(xla.pad_bottom, 3u);
  EXPECT_EQ(xla.pad_left, 2u);
  EXPECT_EQ(xla.pad_right, 3u);
  EXPECT_FALSE(xla.bias);
  const Conv2dShape sym = ops::conv2d_shape(1, 3, 224, 224, 64, 7, 2, Padding::Same, PadStyle::Symmetric);
  EXPECT_EQ(sym.OH(), 112u);
  // 3x3/s2 on 112: XLA (0, 1), symmetric (1, 1); 3x3/s1: (1, 1) both; 1x1/s2: no pad.
  EXPECT_EQ(ops::conv_pads(112, 3, 2, Padding::Same, PadStyle::XlaSame), (ops::Pads{0, 1}));
  EXPECT_EQ(ops::conv_pads(112, 3, 2, Padding::Same, PadStyle::Symmetric), (ops::Pads{1, 1}));
  EXPECT_EQ(ops::conv_pads(28, 3, 1, Padding::Same, PadStyle::XlaSame), (ops::Pads{1, 1}));
  EXPECT_EQ(ops::conv_pads(56, 1, 2, Padding::Same, PadStyle::XlaSame), (ops::Pads{0, 0}));
  // Even kernels: XLA keeps n at stride 1 (extra cell high), symmetric (k-1)/2 = 0 loses one.
  EXPECT_EQ(ops::conv_pads(10, 2, 1, Padding::Same, PadStyle::XlaSame), (ops::Pads{0, 1}));
  EXPECT_EQ(ops::conv2d_shape(1, 1, 10, 10, 1, 2, 1, Padding::Same, PadStyle::Symmetric).OH(), 9u);
  EXPECT_EQ(ops::conv_pads(10, 4, 1, Padding::Same, PadStyle::XlaSame), (ops::Pads{1, 2}));
  EXPECT_EQ(ops::conv_pads(10, 5, 3, Padding::Valid, PadStyle::XlaSame), (ops::Pads{0, 0}));
  EXPECT_EQ(ops::parse_padding("same"), Padding::Same);
  EXPECT_EQ(ops::parse_padding("valid"), Padding::Valid);
  EXPECT_THROW(ops::parse_padding("full"), std::invalid_argument);
}

TEST(ConvShapes, XlaSameOutputIsCeilAndValidIsFloor) {
  for (size_t n = 1; n <= 40; ++n)
    for (size_t k = 1; k <= 7; ++k)
      for (size_t s = 1; s <= 4; ++s) {
        const ops::Pads p = ops::conv_pads(n, k, s, Padding::Same, PadStyle::XlaSame);
        EXPECT_TRUE(p.hi == p.lo || p.hi == p.lo + 1) << n << " " << k << " " << s;
        const Conv2dShape c{1, 1, n, n, 1, k, k, s, p.lo, p.lo, p.hi, p.hi, true};
        EXPECT_EQ(c.OH(), (n + s - 1) / s) << n << " " << k << " " << s;
        if (n >= k) {
          EXPECT_EQ(ops::conv2d_shape(1, 1, n, n, 1, k, s, Padding::Valid).OH(), (n - k) / s + 1);
        }
        const Conv2dShape sym = ops::conv2d_shape(1, 1, n + k, n + k, 1, k, s, Padding::Same, PadStyle::Symmetric);
        EXPECT_EQ(sym.pad_top, (k - 1) / 2);
        EXPECT_EQ(sym.pad_bottom, (k - 1) / 2);
      }
  // Max-pool uses the same helpers: the ResNet stem pool 3x3/s2 on 112 gives 56 in either style.
  EXPECT_EQ(ops::maxpool_shape(1, 64, 112, 112, 3, 2, Padding::Same, PadStyle::Symmetric).OH(), 56u);
  EXPECT_EQ(ops::maxpool_shape(1, 64, 112, 112, 3, 2, Padding::Same, PadStyle::XlaSame).OH(), 56u);
}

namespace {
// The message of the std::invalid_argument f throws ("" if none).
template <class F>
std::string invalid_argument_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ConvShapes, ImpossibleShapesAreClearErrors) {
  // A 5x5 kernel on a 3x3 input with no padding.
  const std::string big = invalid_argument_of([] { Conv2dShape{1, 1, 3, 3, 1, 5, 5, 1, 0, 0, 0, 0, true}.validate(); });
  EXPECT_NE(big.find("conv2d: kernel 5x5 is larger than the padded input 3x3"), std::string::npos) << big;
  EXPECT_NE(big.find("H=3 W=3"), std::string::npos) << big;
  EXPECT_EQ(big.find('\n'), std::string::npos) << "one line";
  // Padding can make it fit.
  EXPECT_NO_THROW((Conv2dShape{1, 1, 3, 3, 1, 5, 5, 1, 1, 1, 1, 1, true}.validate()));
  // Valid padding of a too-large kernel through the helper.
  EXPECT_NE(invalid_argument_of([] { ops::conv2d_shape(1, 1, 4, 4, 1, 5, 1, Padding::Valid); }).find("larger than"),
            std::string::npos);
  // Zero sizes, named.
  const std::string zero = invalid_argument_of([] { Conv2dShape{1, 0, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, true}.validate(); });
  EXPECT_NE(zero.find("conv2d: zero size in shape B=1 C=0"), std::string::npos) << zero;
  EXPECT_FALSE(invalid_argument_of([] { ops::conv2d_shape(1, 1, 8, 8, 1, 3, 0, Padding::Same); }).empty());
  EXPECT_FALSE(invalid_argument_of([] { ops::conv2d_shape(1, 1, 0, 8, 1, 3, 1, Padding::Same); }).empty());
  EXPECT_FALSE(invalid_argument_of([] { ops::conv2d_shape(0, 1, 8, 8, 1, 3, 1, Padding::Same); }).empty());
  EXPECT_FALSE(invalid_argument_of([] { ops::conv2d_shape(1, 1, 8, 8, 1, 0, 1, Padding::Valid); }).empty());
  // The record and the templates validate too.
  EXPECT_THROW(make_vjp("conv", ops::Conv2dOp{{1, 1, 2, 2, 1, 3, 3, 1, 0, 0, 0, 0, true}}), std::invalid_argument);
  // Max-pool: a window entirely in the padding, a window larger than the padded input, zero sizes.
  const std::string pad = invalid_argument_of([] { MaxPoolShape{1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0}.validate(); });
  EXPECT_NE(pad.find("maxpool: a window lies entirely in the padding in shape"), std::string::npos) << pad;
  EXPECT_NE(pad.find("pad=(t2,l0,b0,r0)"), std::string::npos) << pad;
  EXPECT_FALSE(invalid_argument_of([] { MaxPoolShape{1, 1, 4, 4, 2, 2, 1, 0, 0, 2, 0}.validate(); }).empty());  // bottom
  EXPECT_FALSE(invalid_argument_of([] { MaxPoolShape{1, 1, 2, 2, 3, 3, 1, 0, 0, 0, 0}.validate(); }).empty());
  EXPECT_FALSE(invalid_argument_of([] { MaxPoolShape{1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 0}.validate(); }).empty());
  EXPECT_THROW(make_vjp("pool", ops::MaxPoolOp{{1, 0, 4, 4, 2, 2, 2, 0, 0, 0, 0}}), std::invalid_argument);
  // A pool index that is not an in-range window cell.
  const MaxPoolShape s{1, 1, 4, 4, 2, 2, 2, 1, 1, 1, 1};
  std::vector<uint32_t> idx(s.y_size(), 0u);  // index 0 = the top-left cell: padding for window (0, 0)
  std::vector<double> dy(s.y_size(), 1.0), dx(s.x_size());
  EXPECT_THROW(ops::maxpool_backward(s, idx.data(), dy.data(), dx.data()), std::out_of_range);
  EXPECT_THROW(ops::maxpool_source(s, 4, 4), std::out_of_range);  // outside a 2x2 window
  EXPECT_EQ(ops::maxpool_source(s, 4, 0), 5u);                     // window (1, 1) starts at input (1, 1)
}

// ---- chapter 7: grouped and depthwise convolutions -----------------------------------------------------

namespace {
const char* const kChapter7Conv[] = {"depthwise_has_vjp3_correct",     "depthwise_weight_grad_has_vjp",
                                     "depthwise_bias_grad_has_vjp",    "groupedConv2d_has_vjp3_correct",
                                     "groupedConv2d_weight_grad_has_vjp", "groupedConv2d_bias_grad_has_vjp"};

// The groups of a sweep config ("... groups=G"), 1 when absent, and its C and O.
size_t field_of(const std::string& config, const std::string& key) {
  const size_t at = config.find(" " + key + "=");
  return at == std::string::npos ? 1 : std::stoul(config.substr(at + key.size() + 2));
}
}  // namespace

TEST(GroupedConvContracts, RegisteredUnderTheBooksNames) {
  const Registry& r = builtin_contracts();
  for (const char* name : kChapter7Conv) {
    const Contract* c = r.find(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_EQ(c->chapter, 7) << name;
    EXPECT_GE(c->mutants.size(), 3u) << name;
    ASSERT_EQ(c->wrt.size(), 1u) << name;
    size_t production = 0;
    for (const auto& cs : c->sweep) production += cs.production;
    EXPECT_GE(production, 1u) << name;
    EXPECT_LE(c->sweep.size(), 300u) << name << ": the sweep must stay tiny";
  }
  EXPECT_EQ(r.find("depthwise_has_vjp3_correct")->wrt, std::vector<std::string>{"x"});
  EXPECT_EQ(r.find("depthwise_weight_grad_has_vjp")->wrt, std::vector<std::string>{"W"});
  EXPECT_EQ(r.find("depthwise_bias_grad_has_vjp")->wrt, std::vector<std::string>{"b"});
  EXPECT_EQ(r.find("groupedConv2d_has_vjp3_correct")->wrt, std::vector<std::string>{"x"});
  EXPECT_EQ(r.find("groupedConv2d_weight_grad_has_vjp")->wrt, std::vector<std::string>{"W"});
  EXPECT_EQ(r.find("groupedConv2d_bias_grad_has_vjp")->wrt, std::vector<std::string>{"b"});
  // The chapter 4 contracts keep their G = 1 sweeps.
  for (const char* name : kChapter4)
    for (const auto& cs : r.find(name)->sweep) EXPECT_EQ(cs.config.find("groups="), std::string::npos) << name << " " << cs.config;
}

// Each sweep holds only its own kind of grouping, and reaches every path the book's layers use.
TEST(GroupedConvContracts, SweepsCoverTheIndexPaths) {
  const Registry& r = builtin_contracts();
  for (const char* name : kChapter7Conv) {
    SCOPED_TRACE(name);
    const Contract& c = *r.find(name);
    const bool dw = std::string(name).rfind("depthwise", 0) == 0;
    std::set<std::pair<int, int>> parity;
    std::set<std::string> seen;
    bool multiplier = false, one_out_per_group = false;
    for (const auto& cs : c.sweep) {
      const size_t G = field_of(cs.config, "groups"), C = field_of(cs.config, "C"), O = field_of(cs.config, "O");
      ASSERT_GT(G, 1u) << cs.config;
      if (dw) {
        EXPECT_TRUE(G == C && G == O) << "not depthwise: " << cs.config;
      } else {
        EXPECT_FALSE(G == C && G == O) << "depthwise in the grouped sweep: " << cs.config;
        EXPECT_TRUE(G < C || (G == C && O % C == 0 && O > C)) << cs.config;
        multiplier |= G == C && O > C;
        one_out_per_group |= G == O && G < C;
      }
      if (cs.production) continue;
      parity.insert({int(field_of(cs.config, "H") % 2), int(field_of(cs.config, "W") % 2)});
      for (const char* key : {" k=1x1", " k=3x3", " k=5x5", " k=7x7", " s=1 ", " s=2 ", "(SAME, xla)", "(SAME, symmetric)",
                              "(VALID)", "B=1 ", "B=2 ", "no-bias"})
        if (cs.config.find(key) != std::string::npos) seen.insert(key);
    }
    EXPECT_EQ(parity.size(), 4u) << "odd and even H and W in every combination";
    const bool bias = std::string(name).find("bias") != std::string::npos;
    EXPECT_EQ(seen.size(), bias ? 11u : 12u);  // the bias contracts' sweeps have biases only
    if (!dw) {
      EXPECT_TRUE(multiplier) << "the channel multiplier (groups = C < O)";
      EXPECT_TRUE(one_out_per_group);
    }
  }
  // MobileNetV2's depthwise layers are production shapes.
  auto has_production = [&](const char* name, const std::string& needle) {
    for (const auto& cs : r.find(name)->sweep)
      if (cs.production && cs.config.find(needle) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has_production("depthwise_has_vjp3_correct", "B=2 C=32 H=112 W=112 O=32 k=3x3 s=2"));
  EXPECT_TRUE(has_production("depthwise_weight_grad_has_vjp", "B=2 C=960 H=7 W=7 O=960 k=3x3 s=1"));
  EXPECT_TRUE(has_production("depthwise_has_vjp3_correct", "B=2 C=672 H=14 W=14 O=672 k=5x5 s=2"));
  EXPECT_TRUE(has_production("depthwise_bias_grad_has_vjp", "B=2 C=768 H=7 W=7 O=768 k=7x7 s=1"));
  EXPECT_TRUE(has_production("groupedConv2d_has_vjp3_correct", "groups=32"));
}

TEST(GroupedConvContracts, EveryContractIsVerifiedAcrossItsSweep) {
  expect_contracts_verified({std::begin(kChapter7Conv), std::end(kChapter7Conv)});
}

TEST(GroupedConvContracts, EveryMutantIsRejected) {
  expect_mutants_rejected({std::begin(kChapter7Conv), std::end(kChapter7Conv)}, {1, 7});
}

// Coverage again: leaving the stride out of the dilation is the correct program at stride 1.
TEST(GroupedConvContracts, StrideBugsNeedStridedConfigs) {
  CheckOptions o;
  o.wrt = {"x"};
  const Conv2dShape s1 = ops::conv2d_shape(2, 3, 6, 5, 3, 3, 1, Padding::Same, PadStyle::XlaSame, true, 3);
  const Conv2dShape s2 = ops::conv2d_shape(2, 3, 6, 5, 3, 3, 2, Padding::Same, PadStyle::XlaSame, true, 3);
  EXPECT_TRUE(check_vjp(make_vjp("m", ops::Conv2dMutantOp{{s1}, "dw_dx_stride_ignored"}), o).pass);
  EXPECT_FALSE(check_vjp(make_vjp("m", ops::Conv2dMutantOp{{s2}, "dw_dx_stride_ignored"}), o).pass);
}

TEST(GroupedConvContracts, FiniteDifferencesAgree) {
  FdOptions o;
  EXPECT_TRUE(fd_gradcheck(make_vjp("dw", ops::Conv2dOp{{2, 3, 5, 4, 3, 3, 3, 2, 1, 0, 1, 1, true, 3}}), o).pass);
  EXPECT_TRUE(fd_gradcheck(make_vjp("grouped", ops::Conv2dOp{{2, 4, 5, 4, 6, 3, 2, 1, 1, 0, 1, 1, true, 2}}), o).pass);
}

// The forward (which the identity check takes as given) is G independent convolutions: the grouped reference
// against the plain reference on each group's channel slices, and so is every gradient. Same loops in the
// same order, so equal bit for bit in double.
TEST(GroupedConvTemplates, AGroupedConvIsOneConvPerGroup) {
  for (const Conv2dShape& s : {ops::conv2d_shape(2, 6, 7, 6, 4, 3, 2, Padding::Same, PadStyle::XlaSame, true, 2),
                               ops::conv2d_shape(2, 4, 6, 7, 4, 3, 1, Padding::Same, PadStyle::Symmetric, true, 4),
                               ops::conv2d_shape(1, 3, 8, 8, 6, 5, 2, Padding::Valid, PadStyle::XlaSame, false, 3)}) {
    SCOPED_TRACE(s.str());
    auto rnd = [](size_t n, double seed) {
      std::vector<double> v(n);
      for (size_t k = 0; k < n; ++k) v[k] = std::sin(seed + 0.7 * double(k));
      return v;
    };
    const auto x = rnd(s.x_size(), 1), W = rnd(s.w_size(), 2), b = rnd(s.O, 3), dy = rnd(s.y_size(), 4);
    std::vector<double> y(s.y_size()), dx(s.x_size()), dW(s.w_size());
    ops::conv2d_forward(s, x.data(), W.data(), b.data(), y.data());
    ops::conv2d_backward_input(s, W.data(), dy.data(), dx.data());
    ops::conv2d_backward_weight(s, x.data(), dy.data(), dW.data());
    Conv2dShape one = s;
    one.B = 1;
    one.C = s.CG();
    one.O = s.OG();
    one.G = 1;
    const size_t HW = s.H * s.W, P = s.OH() * s.OW();
    std::vector<double> y1(s.y_size()), dx1(s.x_size()), dW1(s.w_size(), 0.0);
    for (size_t bi = 0; bi < s.B; ++bi)
      for (size_t g = 0; g < s.G; ++g) {
        const size_t xo = (bi * s.C + g * one.C) * HW, yo = (bi * s.O + g * one.O) * P, wo = g * one.w_size();
        ops::conv2d_forward(one, x.data() + xo, W.data() + wo, b.data() + g * one.O, y1.data() + yo);
        ops::conv2d_backward_input(one, W.data() + wo, dy.data() + yo, dx1.data() + xo);
      }
    // dW sums over the batch: per group, gather the group's slices of every image.
    for (size_t g = 0; g < s.G; ++g) {
      Conv2dShape gb = one;
      gb.B = s.B;
      std::vector<double> xg(gb.x_size()), dyg(gb.y_size());
      for (size_t bi = 0; bi < s.B; ++bi) {
        std::copy_n(x.data() + (bi * s.C + g * one.C) * HW, one.C * HW, xg.data() + bi * one.C * HW);
        std::copy_n(dy.data() + (bi * s.O + g * one.O) * P, one.O * P, dyg.data() + bi * one.O * P);
      }
      ops::conv2d_backward_weight(gb, xg.data(), dyg.data(), dW1.data() + g * one.w_size());
    }
    EXPECT_EQ(y, y1);
    EXPECT_EQ(dx, dx1);
    EXPECT_EQ(dW, dW1);
  }
}

TEST(GroupedConvTemplates, DepthwiseHandExample) {
  // Two channels of 1..9 and 10..18, 2x2 kernels [[1, 0], [0, -1]] and [[0, 2], [0, 0]], valid, stride 1:
  // channel 0: x[i,j] - x[i+1,j+1] = -4; channel 1: 2 x[i,j+1] (+ bias 1).
  const Conv2dShape s{1, 2, 3, 3, 2, 2, 2, 1, 0, 0, 0, 0, true, 2};
  std::vector<double> x(18);
  for (size_t k = 0; k < 18; ++k) x[k] = double(k + 1);
  const std::vector<double> W{1, 0, 0, -1, 0, 2, 0, 0}, b{0, 1};
  std::vector<double> y(s.y_size());
  ops::conv2d_forward(s, x.data(), W.data(), b.data(), y.data());
  EXPECT_EQ(y, (std::vector<double>{-4, -4, -4, -4, 2 * 11 + 1, 2 * 12 + 1, 2 * 14 + 1, 2 * 15 + 1}));
  // dW[c] = sum_{i,j} x[c, i + kh, j + kw] dy[c, i, j] with dy = 1: window sums of the channel's own plane.
  const std::vector<double> dy(8, 1.0);
  std::vector<double> dW(8), dx(18);
  ops::conv2d_backward_weight(s, x.data(), dy.data(), dW.data());
  EXPECT_EQ(dW, (std::vector<double>{1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9, 10 + 11 + 13 + 14,
                                     11 + 12 + 14 + 15, 13 + 14 + 16 + 17, 14 + 15 + 17 + 18}));
  // dx of channel 1 = 2 at the cells (i, j + 1) its windows read: columns 1 and 2, rows 0 and 1.
  ops::conv2d_backward_input(s, W.data(), dy.data(), dx.data());
  EXPECT_EQ(std::vector<double>(dx.begin() + 9, dx.end()), (std::vector<double>{0, 2, 2, 0, 2, 2, 0, 0, 0}));
  EXPECT_EQ(std::vector<double>(dx.begin(), dx.begin() + 9), (std::vector<double>{1, 1, 0, 1, 0, -1, 0, -1, -1}));
}

TEST(GroupedConvShapes, GroupsMustDivideBothChannelCounts) {
  const std::string g3 = invalid_argument_of([] { Conv2dShape{1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, true, 3}.validate(); });
  EXPECT_NE(g3.find("conv2d: groups 3 must divide both C=4 and O=6"), std::string::npos) << g3;
  EXPECT_NE(invalid_argument_of([] { Conv2dShape{1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, true, 4}.validate(); }).find("groups 4"),
            std::string::npos);
  EXPECT_NE(invalid_argument_of([] { Conv2dShape{1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, true, 0}.validate(); }).find("zero size"),
            std::string::npos);
  EXPECT_NO_THROW((Conv2dShape{1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, true, 2}.validate()));
  const Conv2dShape dw = ops::conv2d_shape(1, 8, 5, 5, 8, 3, 1, Padding::Same, PadStyle::XlaSame, true, 8);
  EXPECT_TRUE(dw.depthwise());
  EXPECT_EQ(dw.w_size(), 8u * 9u);
  EXPECT_NE(dw.str().find(" groups=8"), std::string::npos);
  const Conv2dShape mult = ops::conv2d_shape(1, 8, 5, 5, 16, 3, 1, Padding::Same, PadStyle::XlaSame, true, 8);
  EXPECT_FALSE(mult.depthwise());  // a channel multiplier: grouped
  EXPECT_EQ(mult.w_size(), 16u * 9u);
  EXPECT_EQ(ops::conv2d_shape(1, 8, 5, 5, 8, 3, 1, Padding::Same).str().find("groups"), std::string::npos);
}

// The NetSpec field: "groups" on conv2d (and convBn), the kernel [oc, ic/groups, k, k] with He fan-in
// (ic/groups) k k, written back by to_json only when it is not 1; one-line errors naming the field.
TEST(GroupedConvSpec, GroupsFieldParsesDeclaresAndRoundTrips) {
  const std::string json = R"({"name": "dw", "imageH": 8, "imageW": 8, "channels": 4, "layers": [
      {"type": "conv2d", "ic": 4, "oc": 4, "k": 3, "groups": 4, "stride": 2},
      {"type": "conv2d", "ic": 4, "oc": 6, "k": 3, "groups": 2, "bias": false},
      {"type": "conv2d", "ic": 6, "oc": 6, "k": 1},
      {"type": "flatten"}, {"type": "dense", "fanIn": 96, "fanOut": 10}]})";
  const net::NetSpec spec = net::parse_netspec(json, "dw.json");
  EXPECT_EQ(spec.param_count(), (4 * 1 * 9 + 4) + (6 * 2 * 9) + (6 * 6 + 6) + (96 * 10 + 10));
  const net::Plan plan = net::compile(spec, 2);
  ASSERT_GE(plan.params.size(), 3u);
  EXPECT_EQ(plan.params[0].shape, (std::vector<int64_t>{4, 1, 3, 3}));
  EXPECT_EQ(plan.params[0].fan_in, 9u);
  EXPECT_EQ(plan.params[2].shape, (std::vector<int64_t>{6, 2, 3, 3}));
  EXPECT_EQ(plan.params[2].fan_in, 18u);
  const nlohmann::json j = spec.to_json();
  EXPECT_EQ(j["layers"][0]["groups"], 4);
  EXPECT_EQ(j["layers"][1]["groups"], 2);
  EXPECT_FALSE(j["layers"][2].contains("groups"));
  EXPECT_EQ(net::parse_netspec(j.dump()).to_json(), j);
}

TEST(GroupedConvSpec, ClearOneLineErrors) {
  auto err = [](const std::string& layer) {
    try {
      net::parse_netspec(R"({"name": "x", "imageH": 8, "imageW": 8, "channels": 4, "layers": [)" + layer +
                             R"(, {"type": "flatten"}, {"type": "dense", "fanIn": 384, "fanOut": 10}]})",
                         "g.json");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const struct {
    std::string layer, expect;
  } cases[] = {
      {R"({"type": "conv2d", "ic": 4, "oc": 6, "k": 3, "groups": 3})",
       "g.json: layer 0 (conv2d): field 'groups' is 3, but ic (4) and oc (6) must both be multiples of it"},
      {R"({"type": "conv2d", "ic": 4, "oc": 6, "k": 3, "groups": 4})", "field 'groups' is 4, but ic (4) and oc (6)"},
      {R"({"type": "conv2d", "ic": 4, "oc": 6, "k": 3, "groups": 0})", "field 'groups' must be a positive integer, got 0"},
      {R"({"type": "conv2d", "ic": 4, "oc": 6, "k": 3, "groups": "depthwise"})",
       "field 'groups' must be a positive integer, got \"depthwise\""},
  };
  for (const auto& c : cases) {
    const std::string m = err(c.layer);
    EXPECT_NE(m.find(c.expect), std::string::npos) << c.layer << "\n" << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}
