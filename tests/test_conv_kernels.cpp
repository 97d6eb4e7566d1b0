// Differential tests of the fast float32 conv2d and max-pool kernels (src/veridl/prims/{conv2d,maxPool}/
// kernel.hpp) against the templated reference ops (src/veridl/prims/{conv2d,maxPool}/reference.hpp):
// many shapes (every stride / padding / kernel path, 1x1 and non-square kernels, shapes that exercise the GEMM's
// depth blocking and the position chunking; grouped and depthwise convs), and bit-identical results for one
// and two threads.
//
// Conv tolerance, as tests/test_kernels.cpp: max |kernel - ref| <= kKernelRel sqrt(K) (1 + max |ref|), K the
// length of the reduction, the reference run with T = double on the same float inputs. Max-pool has no
// rounding: its kernels must equal the reference run with T = float bit for bit.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_testutil.hpp"
#include "veridl/calculus/decisions.hpp"
#include "veridl/prims/conv2d/kernel.hpp"
#include "veridl/prims/conv2d/reference.hpp"
#include "veridl/prims/maxPool/kernel.hpp"
#include "veridl/prims/maxPool/reference.hpp"

namespace {

using veridl::ops::Conv2dShape;
using veridl::ops::MaxPoolShape;
using veridl::ops::Padding;
using veridl::ops::PadStyle;
using namespace veridl::testutil;

std::string tag(const Conv2dShape& s) {
  std::string t = "B" + std::to_string(s.B) + "_C" + std::to_string(s.C) + "_H" + std::to_string(s.H) + "_W" +
                  std::to_string(s.W) + "_O" + std::to_string(s.O) + "_k" + std::to_string(s.KH) + "x" +
                  std::to_string(s.KW) + "_s" + std::to_string(s.stride) + "_p" + std::to_string(s.pad_top) +
                  std::to_string(s.pad_left) + std::to_string(s.pad_bottom) + std::to_string(s.pad_right);
  t += s.bias ? "_bias" : "_nobias";
  if (s.G != 1) t += "_g" + std::to_string(s.G);
  return t;
}

// ---- conv2d ----------------------------------------------------------------------------------------

std::vector<Conv2dShape> conv_cases() {
  std::vector<Conv2dShape> cs;
  // Every stride / explicit pad / kernel path at small sizes, cycling batch, channels, parity.
  const size_t ext[] = {1, 2, 5, 6, 7, 8, 9};
  const size_t chans[][2] = {{1, 1}, {3, 5}, {8, 16}, {2, 33}, {5, 2}};
  size_t n = 0;
  for (size_t stride = 1; stride <= 3; ++stride)
    for (size_t k = 1; k <= 5; ++k)
      for (size_t pad = 0; pad <= 2; ++pad) {
        Conv2dShape s;
        s.B = 1 + n % 3;
        s.C = chans[n % 5][0];
        s.O = chans[(n + 2) % 5][1];
        s.H = std::max(ext[n % 7], k > 2 * pad ? k - 2 * pad : 1);
        s.W = std::max(ext[(n + 3) % 7], k > 2 * pad ? k - 2 * pad : 1);
        s.KH = s.KW = k;
        s.stride = stride;
        s.pad_top = s.pad_left = s.pad_bottom = s.pad_right = pad;
        s.bias = n % 4 != 0;
        cs.push_back(s);
        ++n;
      }
  // SAME in both styles, odd and even extents.
  for (PadStyle st : {PadStyle::Symmetric, PadStyle::XlaSame})
    for (size_t stride = 1; stride <= 3; ++stride)
      for (size_t k : {1, 2, 3, 4, 5, 7})
        for (size_t h : {9, 12}) cs.push_back(veridl::ops::conv2d_shape(2, 3, h, h + 1, 4, k, stride, Padding::Same, st));
  // Non-square kernels and asymmetric pads.
  cs.push_back({2, 3, 7, 9, 5, 1, 3, 1, 0, 1, 0, 1, true});
  cs.push_back({1, 4, 10, 6, 3, 3, 1, 2, 1, 0, 2, 0, false});
  cs.push_back({3, 2, 8, 11, 7, 2, 5, 3, 0, 2, 1, 0, true});
  cs.push_back({2, 5, 6, 6, 9, 4, 2, 1, 3, 1, 0, 0, true});
  // Realistic layers: depth blocking (K > 256), position chunking (P > chunk), pointwise, stems.
  cs.push_back(veridl::ops::conv2d_shape(4, 32, 14, 14, 64, 3, 1, Padding::Same));
  cs.push_back(veridl::ops::conv2d_shape(2, 64, 9, 11, 40, 3, 1, Padding::Same, PadStyle::Symmetric, false));
  cs.push_back(veridl::ops::conv2d_shape(2, 16, 28, 28, 24, 3, 2, Padding::Same, PadStyle::XlaSame, false));
  cs.push_back(veridl::ops::conv2d_shape(3, 24, 17, 15, 48, 1, 1, Padding::Valid));          // pointwise
  cs.push_back(veridl::ops::conv2d_shape(2, 24, 17, 15, 48, 1, 2, Padding::Valid, PadStyle::XlaSame, false));
  cs.push_back(veridl::ops::conv2d_shape(2, 3, 38, 38, 16, 7, 2, Padding::Same, PadStyle::XlaSame, false));
  cs.push_back(veridl::ops::conv2d_shape(1, 1, 28, 28, 8, 5, 1, Padding::Valid));
  cs.push_back(veridl::ops::conv2d_shape(1, 300, 5, 5, 7, 1, 1, Padding::Valid));           // K = 300, 1x1
  // A late layer: a large weight over few positions, whose weight gradient splits the columns among threads
  // instead of keeping partial sums per chunk of images.
  cs.push_back(veridl::ops::conv2d_shape(8, 256, 7, 7, 128, 3, 1, Padding::Same));
  // Pointwise on tiny planes (ConvNeXt-T's last stages at a 32x32 input): 1x1 planes, whose weight gradient is the
  // dense kernel's (a small and a large weight), and 2x2 planes with a large weight, whose images' planes are
  // gathered side by side and (the smaller operand, here x) transposed through a copy (4 positions: no 8 x 8 block).
  cs.push_back(veridl::ops::conv2d_shape(3, 24, 1, 1, 40, 1, 1, Padding::Valid));
  cs.push_back(veridl::ops::conv2d_shape(5, 768, 1, 1, 640, 1, 1, Padding::Valid));
  cs.push_back(veridl::ops::conv2d_shape(4, 384, 2, 2, 1536, 1, 1, Padding::Valid));
  // Pointwise on small planes with a small weight (MobileNetV2's 1x1s at 7x7), whose weight gradient also takes the
  // images side by side (three column blocks of 32, the last one partial).
  cs.push_back(veridl::ops::conv2d_shape(4, 96, 7, 7, 80, 1, 1, Padding::Valid));
  // The other plane widths whose rows ImageGroups copies with a constant length (4x4 and 3x3 planes), and one it
  // copies row by row (5x5).
  cs.push_back(veridl::ops::conv2d_shape(3, 64, 4, 4, 96, 1, 1, Padding::Valid));
  cs.push_back(veridl::ops::conv2d_shape(5, 40, 3, 3, 72, 1, 1, Padding::Valid, PadStyle::Symmetric, false));
  cs.push_back(veridl::ops::conv2d_shape(2, 48, 5, 5, 64, 1, 1, Padding::Valid));
  // Small pointwise planes whose weight gradient takes two groups of images (8 images of 8x8 fill the 512 columns of
  // one) and a row split with a partial last block of 48: more output channels than input (dW computed in place, x
  // transposed) and fewer (dW^T, dy transposed), as ConvNeXt-T's 96 -> 384 and 384 -> 96 at 8x8.
  cs.push_back(veridl::ops::conv2d_shape(9, 96, 8, 8, 128, 1, 1, Padding::Valid));
  cs.push_back(veridl::ops::conv2d_shape(9, 160, 8, 8, 64, 1, 1, Padding::Valid, PadStyle::Symmetric, false));
  return cs;
}

std::string conv_name(const ::testing::TestParamInfo<Conv2dShape>& info) {
  return std::to_string(info.index) + "_" + tag(info.param);
}

// Sets the Winograd policy (kernels/isa.hpp) for a scope and restores it after.
struct WinogradPolicy {
  veridl::kernels::Winograd was = veridl::kernels::conv_winograd();
  explicit WinogradPolicy(veridl::kernels::Winograd w) { veridl::kernels::set_conv_winograd(w); }
  ~WinogradPolicy() { veridl::kernels::set_conv_winograd(was); }
};

void every_kernel_matches_reference(const Conv2dShape& s) {
  const size_t P = s.OH() * s.OW();
  const uint64_t seed = s.B * 1000003 + s.C * 10007 + s.H * 101 + s.W * 7 + s.KH + s.stride * 31 + s.pad_top;
  const auto x = random_floats(s.x_size(), seed), W = random_floats(s.w_size(), seed + 1),
             b = random_floats(s.O, seed + 2), dy = random_floats(s.y_size(), seed + 3);

  std::vector<double> ry(s.y_size()), rdx(s.x_size()), rdW(s.w_size()), rdb(s.O);
  {
    const auto xd = to_double(x), Wd = to_double(W), bd = to_double(b), dyd = to_double(dy);
    veridl::ops::conv2d_forward(s, xd.data(), Wd.data(), bd.data(), ry.data());
    veridl::ops::conv2d_backward_input(s, Wd.data(), dyd.data(), rdx.data());
    veridl::ops::conv2d_backward_weight(s, xd.data(), dyd.data(), rdW.data());
    veridl::ops::conv2d_backward_bias(s, dyd.data(), rdb.data());
  }
  // Outputs start as NaN: a kernel that leaves an element unwritten fails.
  const float nan = std::nanf("");
  std::vector<float> y(s.y_size(), nan), dx(s.x_size(), nan), dW(s.w_size(), nan), db(s.O, nan);
  veridl::kernels::conv2d_forward(s, x.data(), W.data(), s.bias ? b.data() : nullptr, y.data());
  veridl::kernels::conv2d_backward_input(s, W.data(), dy.data(), dx.data());
  veridl::kernels::conv2d_backward_weight(s, x.data(), dy.data(), dW.data());
  veridl::kernels::conv2d_backward_bias(s, dy.data(), db.data());
  EXPECT_TRUE(close(y, ry, s.CG() * s.KH * s.KW, "forward"));
  EXPECT_TRUE(close(dx, rdx, s.OG() * s.KH * s.KW, "backward_input"));
  EXPECT_TRUE(close(dW, rdW, s.B * P, "backward_weight"));
  EXPECT_TRUE(close(db, rdb, s.B * P, "backward_bias"));
}

class Conv2dDiff : public ::testing::TestWithParam<Conv2dShape> {};

// im2col + GEMM (VERIDL_WINOGRAD=0) at every shape: the 3x3 stride-1 ones of 16+ channels take Winograd by
// default, which WinogradDiff sweeps.
TEST_P(Conv2dDiff, EveryKernelMatchesReference) {
  const WinogradPolicy off(veridl::kernels::Winograd::Off);
  every_kernel_matches_reference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kernels, Conv2dDiff, ::testing::ValuesIn(conv_cases()), conv_name);

// Grouped and depthwise convs (book ch. 7): the depthwise direct kernels (G = C = O) and the per-group GEMM
// path (other G > 1) on the contracts' sweep -- kernels 1, 3, 5, 7 (and 2, 4), strides 1, 2 (the
// compile-time strides) and 3 (the generic one), "same" in both styles and "valid", odd and even extents,
// batch 1 and 3 -- then MobileNetV2's depthwise layers, ResNeXt's and ShuffleNet's grouped ones.
std::vector<Conv2dShape> group_cases() {
  std::vector<Conv2dShape> cs;
  const size_t ext[] = {5, 6, 7, 8, 9, 12, 13};
  // (C, O, G): depthwise, then grouped: one output per group, more outputs than inputs, the channel
  // multiplier (G = C < O), many groups of one input.
  const size_t chans[][3] = {{3, 3, 3}, {8, 8, 8}, {17, 17, 17}, {4, 2, 2}, {6, 9, 3}, {8, 16, 4},
                             {3, 6, 3}, {16, 8, 8}, {12, 12, 4}, {2, 2, 2}};
  size_t n = 0;
  for (size_t k : {1, 2, 3, 4, 5, 7})
    for (size_t stride = 1; stride <= 3; ++stride)
      for (int pad = 0; pad < 3; ++pad) {
        const Padding p = pad == 2 ? Padding::Valid : Padding::Same;
        const PadStyle st = pad == 0 ? PadStyle::Symmetric : PadStyle::XlaSame;
        const size_t* c = chans[n % 10];
        const size_t H = std::max(ext[n % 7], k), W = std::max(ext[(n + 3) % 7], k);
        cs.push_back(veridl::ops::conv2d_shape(1 + 2 * (n % 2), c[0], H, W, c[1], k, stride, p, st, n % 3 != 0, c[2]));
        ++n;
      }
  // Non-square kernels and asymmetric pads.
  cs.push_back({2, 4, 7, 9, 4, 1, 3, 1, 0, 1, 0, 1, true, 4});
  cs.push_back({1, 6, 10, 6, 6, 3, 1, 2, 1, 0, 2, 0, false, 6});
  cs.push_back({3, 6, 8, 11, 4, 2, 5, 3, 0, 2, 1, 0, true, 2});
  // Depthwise at stride 1: narrow planes take the padded-plane loops, wide ones (>= 32 columns) the row
  // loops; pads of at least the kernel (a 1x1 with pad 2) take the input gradient's scatter.
  cs.push_back({2, 3, 6, 7, 3, 1, 1, 1, 2, 2, 2, 2, true, 3});
  cs.push_back({1, 2, 5, 40, 2, 3, 3, 1, 0, 4, 0, 1, false, 2});
  cs.push_back(veridl::ops::conv2d_shape(2, 5, 34, 41, 5, 3, 1, Padding::Same, PadStyle::Symmetric, true, 5));
  cs.push_back(veridl::ops::conv2d_shape(1, 4, 33, 36, 4, 5, 1, Padding::Valid, PadStyle::XlaSame, false, 4));
  cs.push_back(veridl::ops::conv2d_shape(3, 3, 31, 32, 3, 4, 1, Padding::Same, PadStyle::XlaSame, true, 3));
  // Tiny planes (at most 4 outputs, stride 1: the list of in-range taps): ConvNeXt's 7x7 at 1x1 and 2x2 (its last
  // stages at a 32x32 input), a 3x3 on 2x1, a valid 3x3 on 4x4 (2x2 outputs from a larger input), batch 3.
  cs.push_back(veridl::ops::conv2d_shape(3, 5, 1, 1, 5, 7, 1, Padding::Same, PadStyle::Symmetric, true, 5));
  cs.push_back(veridl::ops::conv2d_shape(3, 6, 2, 2, 6, 7, 1, Padding::Same, PadStyle::Symmetric, true, 6));
  cs.push_back(veridl::ops::conv2d_shape(2, 4, 2, 1, 4, 3, 1, Padding::Same, PadStyle::XlaSame, false, 4));
  cs.push_back(veridl::ops::conv2d_shape(3, 3, 4, 4, 3, 3, 1, Padding::Valid, PadStyle::Symmetric, true, 3));
  // Realistic layers: MobileNetV2's depthwise 3x3 (stride 2 at 112x112x32 and 56x56x144, stride 1 at
  // 7x7x960), a 5x5 depthwise (EfficientNet), ResNeXt's 3x3 in 32 groups, ShuffleNet's grouped 1x1.
  cs.push_back(veridl::ops::conv2d_shape(2, 32, 112, 112, 32, 3, 2, Padding::Same, PadStyle::XlaSame, false, 32));
  cs.push_back(veridl::ops::conv2d_shape(2, 144, 56, 56, 144, 3, 2, Padding::Same, PadStyle::Symmetric, false, 144));
  cs.push_back(veridl::ops::conv2d_shape(2, 960, 7, 7, 960, 3, 1, Padding::Same, PadStyle::Symmetric, false, 960));
  cs.push_back(veridl::ops::conv2d_shape(2, 40, 28, 28, 40, 5, 1, Padding::Same, PadStyle::XlaSame, true, 40));
  cs.push_back(veridl::ops::conv2d_shape(1, 256, 28, 28, 256, 3, 1, Padding::Same, PadStyle::Symmetric, false, 32));
  cs.push_back(veridl::ops::conv2d_shape(2, 240, 14, 14, 60, 1, 1, Padding::Valid, PadStyle::XlaSame, false, 3));
  cs.push_back(veridl::ops::conv2d_shape(2, 64, 17, 15, 128, 3, 2, Padding::Same, PadStyle::XlaSame, true, 2));
  return cs;
}

INSTANTIATE_TEST_SUITE_P(GroupedKernels, Conv2dDiff, ::testing::ValuesIn(group_cases()), conv_name);

// Winograd F(4x4, 3x3) (prims/conv2d/winograd.hpp: 3x3, stride 1, pads <= 2, 16+ channels in and out): planes of
// 1 to 13 rows and columns (whole, partial and single tiles; rows of more and of fewer than 8 tiles, where the
// AVX-512 variant switches vector width), every pad 0-2 on each side independently, batch 1-3, with and without
// bias; then realistic layers, one whose weight gradient takes several groups of tiles one after the other, and a
// batch whose tile rows span images within one group.
std::vector<Conv2dShape> winograd_cases() {
  std::vector<Conv2dShape> cs;
  const size_t ext[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 37};
  const size_t chans[][2] = {{16, 16}, {17, 24}, {32, 16}, {16, 40}};
  size_t n = 0;
  for (size_t pt = 0; pt <= 2; ++pt)
    for (size_t pl = 0; pl <= 2; ++pl) {
      const size_t pb = (pt + n) % 3, pr = (pl + 2 * n) % 3;
      Conv2dShape s;
      s.B = 1 + n % 3;
      s.C = chans[n % 4][0];
      s.O = chans[n % 4][1];
      s.H = std::max<size_t>(ext[n % 11], 3 > pt + pb ? 3 - pt - pb : 1);
      s.W = std::max<size_t>(ext[(n + 5) % 11], 3 > pl + pr ? 3 - pl - pr : 1);
      s.KH = s.KW = 3;
      s.stride = 1;
      s.pad_top = pt;
      s.pad_left = pl;
      s.pad_bottom = pb;
      s.pad_right = pr;
      s.bias = n % 2 == 0;
      cs.push_back(s);
      ++n;
    }
  for (PadStyle st : {PadStyle::Symmetric, PadStyle::XlaSame})
    for (size_t h : {6, 11, 16}) cs.push_back(veridl::ops::conv2d_shape(2, 16, h, h + 3, 20, 3, 1, Padding::Same, st));
  cs.push_back(veridl::ops::conv2d_shape(3, 20, 10, 9, 24, 3, 1, Padding::Valid));
  cs.push_back(veridl::ops::conv2d_shape(2, 64, 32, 32, 64, 3, 1, Padding::Same));   // CIFAR ResNet stage 1
  cs.push_back(veridl::ops::conv2d_shape(4, 128, 8, 8, 128, 3, 1, Padding::Same));   // one tile row per 8x8 image
  cs.push_back(veridl::ops::conv2d_shape(3, 256, 4, 4, 256, 3, 1, Padding::Same, PadStyle::XlaSame, false));  // one tile
  cs.push_back(veridl::ops::conv2d_shape(15, 16, 64, 64, 16, 3, 1, Padding::Same));  // dW: 2 groups of tile rows
  return cs;
}

class WinogradDiff : public ::testing::TestWithParam<Conv2dShape> {};

TEST_P(WinogradDiff, EveryKernelMatchesReference) {
  const WinogradPolicy on(veridl::kernels::Winograd::On);
  every_kernel_matches_reference(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kernels, WinogradDiff, ::testing::ValuesIn(winograd_cases()), conv_name);

// Under VERIDL_WINOGRAD=1 (On, the default) the Winograd shapes take that path (their bits differ from im2col's, Off), each
// within the tolerance of the double reference both ways; shapes just outside its conditions (15 channels, stride 2,
// a 5x5 kernel, a pad of 3, groups) get the same bits either way. The errors of both are printed.
TEST(KernelsConvWinograd, TakesItsShapesAndOnlyThose) {
  using veridl::kernels::Winograd;
  const WinogradPolicy restore(veridl::kernels::conv_winograd());
  auto run = [](Winograd w, const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& W,
                const std::vector<float>& b, const std::vector<float>& dy) {
    veridl::kernels::set_conv_winograd(w);
    std::vector<float> y(s.y_size()), dx(s.x_size()), dW(s.w_size());
    veridl::kernels::conv2d_forward(s, x.data(), W.data(), s.bias ? b.data() : nullptr, y.data());
    veridl::kernels::conv2d_backward_input(s, W.data(), dy.data(), dx.data());
    veridl::kernels::conv2d_backward_weight(s, x.data(), dy.data(), dW.data());
    return std::vector<std::vector<float>>{y, dx, dW};
  };
  const char* what[] = {"forward", "backward_input", "backward_weight"};
  auto err = [](const std::vector<float>& got, const std::vector<double>& ref) {
    double e = 0;
    for (size_t j = 0; j < ref.size(); ++j) e = std::max(e, std::fabs(got[j] - ref[j]));
    return e;
  };
  const bool simd = veridl::kernels::active_isa() != veridl::kernels::Isa::Portable;
  for (const Conv2dShape& s : {veridl::ops::conv2d_shape(2, 64, 32, 32, 64, 3, 1, Padding::Same),
                               veridl::ops::conv2d_shape(3, 16, 13, 9, 40, 3, 1, Padding::Same, PadStyle::XlaSame),
                               veridl::ops::conv2d_shape(2, 256, 4, 4, 256, 3, 1, Padding::Same)}) {
    SCOPED_TRACE(tag(s));
    const auto x = random_floats(s.x_size(), 41), W = random_floats(s.w_size(), 42), b = random_floats(s.O, 43),
               dy = random_floats(s.y_size(), 44);
    std::vector<double> ry(s.y_size()), rdx(s.x_size()), rdW(s.w_size());
    const auto xd = to_double(x), Wd = to_double(W), bd = to_double(b), dyd = to_double(dy);
    veridl::ops::conv2d_forward(s, xd.data(), Wd.data(), bd.data(), ry.data());
    veridl::ops::conv2d_backward_input(s, Wd.data(), dyd.data(), rdx.data());
    veridl::ops::conv2d_backward_weight(s, xd.data(), dyd.data(), rdW.data());
    const std::vector<double>* ref[] = {&ry, &rdx, &rdW};
    const size_t K[] = {s.C * 9, s.O * 9, s.B * s.OH() * s.OW()};
    const auto wino = run(Winograd::On, s, x, W, b, dy), gemm = run(Winograd::Off, s, x, W, b, dy);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(close(wino[i], *ref[i], K[i], std::string("winograd ") + what[i]));
      EXPECT_TRUE(close(gemm[i], *ref[i], K[i], std::string("im2col ") + what[i]));
      if (simd) {
        EXPECT_FALSE(same_bits(wino[i], gemm[i])) << what[i] << ": Winograd not taken";
      }
      std::printf("  %-34s %-15s max error: winograd %.3g, im2col %.3g\n", tag(s).c_str(), what[i], err(wino[i], *ref[i]),
                  err(gemm[i], *ref[i]));
    }
  }
  for (const Conv2dShape& s : {veridl::ops::conv2d_shape(2, 15, 12, 12, 32, 3, 1, Padding::Same),
                               veridl::ops::conv2d_shape(2, 32, 12, 12, 15, 3, 1, Padding::Same),
                               veridl::ops::conv2d_shape(2, 32, 12, 12, 32, 3, 2, Padding::Same),
                               veridl::ops::conv2d_shape(2, 32, 12, 12, 32, 5, 1, Padding::Same),
                               Conv2dShape{2, 32, 12, 12, 32, 3, 3, 1, 3, 1, 1, 1, true},
                               veridl::ops::conv2d_shape(2, 32, 12, 12, 32, 3, 1, Padding::Same, PadStyle::Symmetric, true, 2)}) {
    SCOPED_TRACE(tag(s));
    const auto x = random_floats(s.x_size(), 51), W = random_floats(s.w_size(), 52), b = random_floats(s.O, 53),
               dy = random_floats(s.y_size(), 54);
    const auto on = run(Winograd::On, s, x, W, b, dy), off = run(Winograd::Off, s, x, W, b, dy);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(on[i], off[i])) << what[i];
  }
}

// The grouped forward is G independent convolutions of channel slices: the kernels at G > 1 (the depthwise
// direct loops, the per-group GEMM) against the G = 1 GEMM path run on each group's slices (x's channels
// [g CG, (g + 1) CG), W's rows [g OG, (g + 1) OG), y's channels likewise).
TEST(KernelsConv2dGroups, EqualsOneConvPerGroup) {
  for (const Conv2dShape& s : {veridl::ops::conv2d_shape(2, 6, 9, 8, 4, 3, 2, Padding::Same, PadStyle::XlaSame, true, 2),
                               veridl::ops::conv2d_shape(3, 5, 7, 7, 5, 3, 1, Padding::Same, PadStyle::Symmetric, false, 5),
                               veridl::ops::conv2d_shape(2, 3, 8, 6, 6, 5, 1, Padding::Valid, PadStyle::XlaSame, true, 3)}) {
    SCOPED_TRACE(tag(s));
    const auto x = random_floats(s.x_size(), 11), W = random_floats(s.w_size(), 12), b = random_floats(s.O, 13);
    std::vector<float> y(s.y_size());
    veridl::kernels::conv2d_forward(s, x.data(), W.data(), s.bias ? b.data() : nullptr, y.data());
    Conv2dShape one = s;
    one.B = 1;
    one.C = s.CG();
    one.O = s.OG();
    one.G = 1;
    const size_t HW = s.H * s.W, P = s.OH() * s.OW();
    double worst = 0;
    for (size_t bi = 0; bi < s.B; ++bi)
      for (size_t g = 0; g < s.G; ++g) {
        std::vector<float> yg(one.y_size());
        veridl::kernels::conv2d_forward(one, x.data() + (bi * s.C + g * one.C) * HW, W.data() + g * one.w_size(),
                                        s.bias ? b.data() + g * one.O : nullptr, yg.data());
        for (size_t k = 0; k < yg.size(); ++k)
          worst = std::max(worst, std::fabs(double(yg[k]) - double(y[(bi * s.O + g * one.O) * P + k])));
      }
    EXPECT_LE(worst, 1e-5);
  }
}

TEST(KernelsConv2dGroups, RejectsGroupsThatDoNotDivideTheChannels) {
  std::vector<float> buf(4096, 0.0f);
  Conv2dShape s = veridl::ops::conv2d_shape(1, 4, 5, 5, 6, 3, 1, Padding::Same);
  s.G = 3;  // 4 % 3 != 0
  EXPECT_THROW(veridl::kernels::conv2d_forward(s, buf.data(), buf.data(), buf.data(), buf.data()), std::invalid_argument);
  s.G = 4;  // 6 % 4 != 0
  EXPECT_THROW(veridl::kernels::conv2d_backward_input(s, buf.data(), buf.data(), buf.data()), std::invalid_argument);
  s.G = 0;
  EXPECT_THROW(veridl::kernels::conv2d_backward_weight(s, buf.data(), buf.data(), buf.data()), std::invalid_argument);
  s.G = 2;
  EXPECT_NO_THROW(veridl::kernels::conv2d_forward(s, buf.data(), buf.data(), buf.data(), buf.data()));
}

// Cells in the padding contribute exactly nothing: a constant input gives, at a corner of a SAME conv
// with an all-ones kernel, the number of in-range cells times the constant.
TEST(KernelsConv2d, PaddingIsZero) {
  const Conv2dShape s = veridl::ops::conv2d_shape(1, 1, 5, 5, 1, 3, 1, Padding::Same, PadStyle::Symmetric, false);
  const std::vector<float> x(s.x_size(), 2.0f), W(s.w_size(), 1.0f);
  std::vector<float> y(s.y_size());
  veridl::kernels::conv2d_forward(s, x.data(), W.data(), nullptr, y.data());
  EXPECT_EQ(y[0], 8.0f);       // corner: 4 cells
  EXPECT_EQ(y[1], 12.0f);      // edge: 6 cells
  EXPECT_EQ(y[2 * 5 + 2], 18.0f);  // interior: 9 cells
}

// The bias gradient's order, written out here from its documentation (prims/conv2d/kernel.cpp): eight float lanes,
// output position p into lane p % 8, each summing the images in order and within an image its positions in order,
// the lanes added as ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)). Every variant gives exactly these bits, at planes
// below, at and above the 8-position split of the kernel and with channel counts that cross its 64-channel blocks.
TEST(KernelsConv2d, BiasGradientSumsInItsDocumentedOrder) {
  for (const auto& [h, w] : std::vector<std::pair<size_t, size_t>>{{1, 1}, {2, 2}, {2, 4}, {3, 3}, {4, 4}, {7, 7}}) {
    const Conv2dShape s = veridl::ops::conv2d_shape(5, 3, h, w, 70, 1, 1, Padding::Valid, PadStyle::Symmetric, true);
    const size_t P = h * w;
    const auto dy = random_floats(s.y_size(), 77 + P);
    std::vector<float> db(s.O, std::nanf(""));
    veridl::kernels::conv2d_backward_bias(s, dy.data(), db.data());
    for (size_t o = 0; o < s.O; ++o) {
      float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t b = 0; b < s.B; ++b)
        for (size_t p = 0; p < P; ++p) lane[p % 8] += dy[(b * s.O + o) * P + p];
      const float want = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
      ASSERT_EQ(db[o], want) << "plane " << h << "x" << w << ", channel " << o;
    }
  }
}

// A 1x1 convolution's weight gradient, dW[o, k] = sum over images and positions of dy[o, p] x[k, p], is the
// transpose of the gradient of the swapped convolution (dy as its input, x as its output gradient): the same products
// in the same order. The kernel transposes the smaller of x and dy into the product's rows (x when C < O), so the two
// calls below take opposite orientations; where both see one position chunk per image they must agree bit for bit.
// 100 -> 7200 takes the large-weight path (one partial: each element one chain over every image and position,
// however the positions are chunked), x transposed by every thread for its rows of dW against dy transposed.
TEST(KernelsConv2d, PointwiseWeightGradientIsTheSwappedConvolutionsTransposed) {
  for (const auto& [C, O, h, w] :
       std::vector<std::array<size_t, 4>>{{8, 40, 12, 12}, {5, 70, 13, 11}, {3, 17, 20, 20}, {100, 7200, 9, 9}}) {
    const Conv2dShape s = veridl::ops::conv2d_shape(3, C, h, w, O, 1, 1, Padding::Valid, PadStyle::Symmetric, false);
    Conv2dShape t = s;
    t.C = O;
    t.O = C;
    SCOPED_TRACE(tag(s));
    const auto x = random_floats(s.x_size(), 91), dy = random_floats(s.y_size(), 92);
    std::vector<float> dW(s.w_size(), std::nanf("")), dWt(t.w_size(), std::nanf(""));
    veridl::kernels::conv2d_backward_weight(s, x.data(), dy.data(), dW.data());
    veridl::kernels::conv2d_backward_weight(t, dy.data(), x.data(), dWt.data());
    for (size_t o = 0; o < O; ++o)
      for (size_t k = 0; k < C; ++k) ASSERT_EQ(dW[o * C + k], dWt[k * O + o]) << "dW[" << o << ", " << k << "]";
  }
}

TEST(KernelsConv2d, RejectsImpossibleShapes) {
  std::vector<float> buf(64, 0.0f);
  Conv2dShape big{1, 1, 3, 3, 1, 5, 5, 1, 0, 0, 0, 0, false};
  EXPECT_THROW(veridl::kernels::conv2d_forward(big, buf.data(), buf.data(), nullptr, buf.data()),
               std::invalid_argument);
  Conv2dShape zero{1, 0, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, false};
  EXPECT_THROW(veridl::kernels::conv2d_backward_input(zero, buf.data(), buf.data(), buf.data()),
               std::invalid_argument);
  EXPECT_THROW(veridl::kernels::conv2d_backward_weight(zero, buf.data(), buf.data(), buf.data()),
               std::invalid_argument);
  EXPECT_THROW(veridl::kernels::conv2d_backward_bias(zero, buf.data(), buf.data()), std::invalid_argument);
}

// ---- max-pool --------------------------------------------------------------------------------------

std::vector<MaxPoolShape> pool_cases() {
  std::vector<MaxPoolShape> cs;
  size_t n = 0;
  for (size_t k = 1; k <= 4; ++k)
    for (size_t stride = 1; stride <= 3; ++stride)
      for (size_t pad = 0; pad < std::min<size_t>(k, 2); ++pad) {
        MaxPoolShape s{1 + n % 3, 1 + n % 4, 5 + n % 4, 4 + n % 5, k, k, stride, pad, pad, pad, pad};
        while ((s.OH() - 1) * s.stride >= s.H + s.pad_top) ++s.H;
        while ((s.OW() - 1) * s.stride >= s.W + s.pad_left) ++s.W;
        cs.push_back(s);
        ++n;
      }
  for (PadStyle st : {PadStyle::Symmetric, PadStyle::XlaSame}) {
    cs.push_back(veridl::ops::maxpool_shape(2, 8, 112, 112, 3, 2, Padding::Same, st));  // ResNet stem pool
    cs.push_back(veridl::ops::maxpool_shape(3, 5, 13, 10, 2, 2, Padding::Same, st));
    cs.push_back(veridl::ops::maxpool_shape(2, 4, 9, 9, 3, 1, Padding::Same, st));
  }
  cs.push_back({2, 3, 7, 8, 2, 3, 1, 1, 0, 0, 2});
  cs.push_back({1, 2, 9, 6, 3, 2, 2, 0, 1, 1, 0});
  cs.push_back(veridl::ops::maxpool_shape(4, 16, 28, 28, 2, 2, Padding::Valid));
  // The vector path of 2x2 windows at stride 2 (kernel.cpp's pool_row_2x2): 7 outputs (masked tail only),
  // 8 (no tail), 17 (two steps and a tail of 1) and an odd input width (the last column never read), an odd
  // height (the last row no window covers), and a shape whose padded last window keeps it on the scalar path.
  cs.push_back(veridl::ops::maxpool_shape(3, 4, 14, 14, 2, 2, Padding::Valid));
  cs.push_back(veridl::ops::maxpool_shape(1, 3, 16, 16, 2, 2, Padding::Valid));
  cs.push_back(veridl::ops::maxpool_shape(2, 2, 6, 35, 2, 2, Padding::Valid));
  cs.push_back(veridl::ops::maxpool_shape(2, 3, 7, 16, 2, 2, Padding::Valid));  // a last row no window covers
  cs.push_back(veridl::ops::maxpool_shape(2, 2, 6, 35, 2, 2, Padding::Same));
  return cs;
}

std::string pool_name(const ::testing::TestParamInfo<MaxPoolShape>& info) {
  const auto& s = info.param;
  return std::to_string(info.index) + "_B" + std::to_string(s.B) + "_C" + std::to_string(s.C) + "_H" +
         std::to_string(s.H) + "_W" + std::to_string(s.W) + "_k" + std::to_string(s.KH) + "x" + std::to_string(s.KW) +
         "_s" + std::to_string(s.stride) + "_p" + std::to_string(s.pad_top) + std::to_string(s.pad_left) +
         std::to_string(s.pad_bottom) + std::to_string(s.pad_right);
}

class MaxPoolDiff : public ::testing::TestWithParam<MaxPoolShape> {};

TEST_P(MaxPoolDiff, BitIdenticalToFloatReference) {
  const MaxPoolShape s = GetParam();
  for (bool ties : {false, true}) {
    const uint64_t seed = s.B * 7919 + s.C * 131 + s.H * 17 + s.W + s.KH * 3 + s.stride;
    const auto x = ties ? tie_floats(s.x_size(), seed) : random_floats(s.x_size(), seed);
    auto dy = random_floats(s.y_size(), seed + 1);
    for (size_t i = 0; i < dy.size(); i += 7) dy[i] = -0.0f;  // the gradient of its cell is 0 + dy: +0
    std::vector<float> ry(s.y_size()), rdx(s.x_size());
    std::vector<uint32_t> ridx(s.y_size());
    veridl::Decisions D;  // live: decide by value
    veridl::ops::maxpool_forward(s, x.data(), ry.data(), ridx.data(), D);
    veridl::ops::maxpool_backward(s, ridx.data(), dy.data(), rdx.data());

    std::vector<float> y(s.y_size(), std::nanf("")), dx(s.x_size(), std::nanf(""));
    std::vector<uint32_t> idx(s.y_size(), 12345u);
    veridl::kernels::maxpool_forward(s, x.data(), y.data(), idx.data());
    veridl::kernels::maxpool_backward(s, idx.data(), dy.data(), dx.data());
    EXPECT_TRUE(same_bits(y, ry)) << (ties ? "ties" : "normal") << " forward";
    EXPECT_EQ(idx, ridx) << (ties ? "ties" : "normal") << " indices";
    EXPECT_TRUE(same_bits(dx, rdx)) << (ties ? "ties" : "normal") << " backward";
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, MaxPoolDiff, ::testing::ValuesIn(pool_cases()), pool_name);

TEST(KernelsMaxPool, TiesGoToTheFirstMaximumAndPaddingNeverWins) {
  // One 3x3 window (pad 1 on a 2x2 input): in-range cells are (1,1) (1,2) (2,1) (2,2) of the window.
  const MaxPoolShape s{1, 1, 2, 2, 3, 3, 1, 1, 1, 0, 0};
  ASSERT_EQ(s.OH(), 1u);
  ASSERT_EQ(s.OW(), 1u);
  const std::vector<float> x{-3.0f, -1.0f, -1.0f, -2.0f};  // all negative: a zero pad would win
  std::vector<float> y(1), dx(4);
  std::vector<uint32_t> idx(1);
  veridl::kernels::maxpool_forward(s, x.data(), y.data(), idx.data());
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(idx[0], 1u * 3 + 2);  // the first -1 in row-major order: input (0, 1) = window (1, 2)
  const std::vector<float> dy{5.0f};
  veridl::kernels::maxpool_backward(s, idx.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{0.0f, 5.0f, 0.0f, 0.0f}));
}

// NaNs: a window's first cell wins when it is NaN (nothing compares greater), a later NaN never replaces the best,
// as in the scalar scan written out here; widths that take the 2x2 vector path's full steps and its masked tail.
TEST(KernelsMaxPool, NaNsFollowTheStrictScanOrder) {
  for (size_t W : {14u, 16u, 35u}) {
    const MaxPoolShape s = veridl::ops::maxpool_shape(2, 3, 6, W, 2, 2, Padding::Valid);
    auto x = random_floats(s.x_size(), W);
    for (size_t i = 0; i < x.size(); i += 3) x[i] = std::nanf("");
    std::vector<float> y(s.y_size());
    std::vector<uint32_t> idx(s.y_size());
    veridl::kernels::maxpool_forward(s, x.data(), y.data(), idx.data());
    const size_t OH = s.OH(), OW = s.OW();
    for (size_t p = 0; p < s.B * s.C; ++p)
      for (size_t i = 0; i < OH; ++i)
        for (size_t j = 0; j < OW; ++j) {
          float best = x[(p * s.H + 2 * i) * W + 2 * j];
          uint32_t k = 0;
          for (uint32_t c = 1; c < 4; ++c) {
            const float v = x[(p * s.H + 2 * i + c / 2) * W + 2 * j + c % 2];
            if (v > best) {
              best = v;
              k = c;
            }
          }
          const size_t o = (p * OH + i) * OW + j;
          ASSERT_EQ(idx[o], k) << "W=" << W << " plane " << p << " output (" << i << ", " << j << ")";
          ASSERT_TRUE(std::memcmp(&y[o], &best, sizeof(float)) == 0) << "W=" << W << " output " << o;
        }
  }
}

TEST(KernelsMaxPool, RejectsIndicesOutsideTheWindowOfUnpaddedWindows) {
  const MaxPoolShape s = veridl::ops::maxpool_shape(1, 2, 4, 20, 2, 2, Padding::Valid);  // 2x2 windows inside
  const auto x = random_floats(s.x_size(), 5);
  std::vector<float> y(s.y_size()), dy(s.y_size(), 1.0f), dx(s.x_size());
  std::vector<uint32_t> idx(s.y_size());
  veridl::kernels::maxpool_forward(s, x.data(), y.data(), idx.data());
  EXPECT_NO_THROW(veridl::kernels::maxpool_backward(s, idx.data(), dy.data(), dx.data()));
  for (size_t o : {size_t{3}, s.y_size() - 1}) {
    std::vector<uint32_t> bad = idx;
    bad[o] = 4;
    EXPECT_THROW(veridl::kernels::maxpool_backward(s, bad.data(), dy.data(), dx.data()), std::out_of_range) << o;
  }
}

TEST(KernelsMaxPool, RejectsIndicesOutsideTheWindowOrInThePadding) {
  const MaxPoolShape s{1, 1, 4, 4, 2, 2, 2, 1, 1, 1, 1};  // 3x3 outputs; window (0,0) has one in-range cell
  const auto x = random_floats(s.x_size(), 3);
  std::vector<float> y(s.y_size()), dy(s.y_size(), 1.0f), dx(s.x_size());
  std::vector<uint32_t> idx(s.y_size());
  veridl::kernels::maxpool_forward(s, x.data(), y.data(), idx.data());
  EXPECT_EQ(idx[0], 3u);
  EXPECT_NO_THROW(veridl::kernels::maxpool_backward(s, idx.data(), dy.data(), dx.data()));
  idx[0] = 0;  // window (0,0)'s top-left cell is padding
  EXPECT_THROW(veridl::kernels::maxpool_backward(s, idx.data(), dy.data(), dx.data()), std::out_of_range);
  idx[0] = 4;  // outside a 2x2 window
  EXPECT_THROW(veridl::kernels::maxpool_backward(s, idx.data(), dy.data(), dx.data()), std::out_of_range);
}

// ---- determinism across thread counts ------------------------------------------------------------

struct ConvRun {
  std::vector<float> y, dx, dW, db, py, pdx;
  std::vector<uint32_t> pidx;
};

ConvRun run_all(int threads, const Conv2dShape& s, const MaxPoolShape& ps, const std::vector<float>& x,
                const std::vector<float>& W, const std::vector<float>& b, const std::vector<float>& dy,
                const std::vector<float>& px, const std::vector<float>& pdy) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  ConvRun r{std::vector<float>(s.y_size()), std::vector<float>(s.x_size()), std::vector<float>(s.w_size()),
            std::vector<float>(s.O), std::vector<float>(ps.y_size()), std::vector<float>(ps.x_size()),
            std::vector<uint32_t>(ps.y_size())};
  veridl::kernels::conv2d_forward(s, x.data(), W.data(), b.data(), r.y.data());
  veridl::kernels::conv2d_backward_input(s, W.data(), dy.data(), r.dx.data());
  veridl::kernels::conv2d_backward_weight(s, x.data(), dy.data(), r.dW.data());
  veridl::kernels::conv2d_backward_bias(s, dy.data(), r.db.data());
  veridl::kernels::maxpool_forward(ps, px.data(), r.py.data(), r.pidx.data());
  veridl::kernels::maxpool_backward(ps, r.pidx.data(), pdy.data(), r.pdx.data());
  omp_set_num_threads(saved);
  return r;
}

// Under both Winograd policies Off and On (every 3x3 stride-1 shape of 16+ channels below takes it then).
TEST(KernelsConvDeterminism, BitIdenticalForOneAndTwoThreads) {
  for (veridl::kernels::Winograd w : {veridl::kernels::Winograd::Off, veridl::kernels::Winograd::On}) {
  const WinogradPolicy policy(w);
  SCOPED_TRACE(std::string("VERIDL_WINOGRAD=") + veridl::kernels::winograd_name(w));
  // Shapes above the fork thresholds, batch 1 (where dx splits channel groups) and larger batches.
  const std::vector<Conv2dShape> shapes{
      veridl::ops::conv2d_shape(8, 32, 14, 14, 64, 3, 1, Padding::Same),
      veridl::ops::conv2d_shape(1, 32, 28, 28, 32, 3, 1, Padding::Same),
      veridl::ops::conv2d_shape(3, 16, 29, 27, 24, 3, 2, Padding::Same, PadStyle::XlaSame, false),
      veridl::ops::conv2d_shape(5, 64, 14, 14, 32, 1, 1, Padding::Valid),
      veridl::ops::conv2d_shape(2, 3, 64, 64, 16, 7, 2, Padding::Same, PadStyle::Symmetric),
      veridl::ops::conv2d_shape(8, 256, 7, 7, 128, 3, 1, Padding::Same),  // dW with its columns split (im2col)
      // Winograd: groups of tile rows spanning images, and a weight gradient in two groups of tiles
      veridl::ops::conv2d_shape(5, 64, 16, 16, 64, 3, 1, Padding::Same),
      veridl::ops::conv2d_shape(15, 16, 64, 64, 16, 3, 1, Padding::Same),
      // depthwise (batch 1 and 4, stride 1 and 2) and grouped
      veridl::ops::conv2d_shape(1, 32, 56, 56, 32, 3, 2, Padding::Same, PadStyle::XlaSame, false, 32),
      veridl::ops::conv2d_shape(4, 96, 14, 14, 96, 3, 1, Padding::Same, PadStyle::Symmetric, true, 96),
      veridl::ops::conv2d_shape(2, 16, 48, 48, 16, 3, 1, Padding::Same, PadStyle::XlaSame, true, 16),
      veridl::ops::conv2d_shape(2, 64, 14, 14, 64, 3, 1, Padding::Same, PadStyle::Symmetric, true, 8),
      veridl::ops::conv2d_shape(1, 32, 28, 28, 64, 3, 2, Padding::Same, PadStyle::XlaSame, false, 32)};
  for (const auto& s : shapes) {
    const MaxPoolShape ps = veridl::ops::maxpool_shape(s.B, s.O, s.OH(), s.OW(), 3, 2, Padding::Same);
    const auto x = random_floats(s.x_size(), 1), W = random_floats(s.w_size(), 2), b = random_floats(s.O, 3),
               dy = random_floats(s.y_size(), 4), px = tie_floats(ps.x_size(), 5), pdy = random_floats(ps.y_size(), 6);
    const ConvRun one = run_all(1, s, ps, x, W, b, dy, px, pdy);
    const ConvRun two = run_all(2, s, ps, x, W, b, dy, px, pdy);
    const std::string at = tag(s);
    EXPECT_TRUE(same_bits(one.y, two.y)) << "forward " << at;
    EXPECT_TRUE(same_bits(one.dx, two.dx)) << "backward_input " << at;
    EXPECT_TRUE(same_bits(one.dW, two.dW)) << "backward_weight " << at;
    EXPECT_TRUE(same_bits(one.db, two.db)) << "backward_bias " << at;
    EXPECT_TRUE(same_bits(one.py, two.py)) << "maxpool forward " << at;
    EXPECT_EQ(one.pidx, two.pidx) << "maxpool indices " << at;
    EXPECT_TRUE(same_bits(one.pdx, two.pdx)) << "maxpool backward " << at;
  }
  }
}

// The image groups of the late layers (kernel.cpp's ImageGroups: several images side by side in one product, for
// planes of fewer than 256 positions with a weight of 1 MB or more, and for planes of at most 64 positions) must give
// each image the bits it gets alone (batch 1 never groups): each element one chain over k in the same depth blocks.
// The input gradient too where one image's plane is one position chunk of the batch-1 path; where it spans several
// (the last shape: K = 2304 gives chunks of 16 of its 49 positions), batch 1 adds the chunks' col2im one after the
// other and the group adds the whole plane in (kh, kw, p) order: another rounding, so only the forward is compared.
TEST(KernelsConvDeterminism, ImageGroupsGiveEachImageTheBitsItGetsAlone) {
  struct Case {
    Conv2dShape s;
    bool input_grad;
  };
  const std::vector<Case> cases{
      {veridl::ops::conv2d_shape(6, 96, 7, 7, 40, 1, 1, Padding::Valid), true},   // 1x1, 49 positions, small weight
      {veridl::ops::conv2d_shape(5, 24, 4, 4, 56, 3, 1, Padding::Same), true},    // 3x3, 16 positions
      {veridl::ops::conv2d_shape(4, 40, 8, 8, 24, 3, 2, Padding::Same, PadStyle::XlaSame), true},  // stride 2 to 4x4
      {veridl::ops::conv2d_shape(3, 256, 7, 7, 128, 3, 1, Padding::Same), false},  // 1 MB weight, 49 positions
      // Pointwise, x and dy read and y and dx written in place (segmented columns, gemm_tile.hpp's ColSeg): planes
      // of whole vectors (8x8, 4x4), of part of one (2x2, 1x1: through the tile's buffer), with O > 384 so that dx
      // has two depth blocks (its C read back, segmented), and image counts that leave a part-filled column panel.
      {veridl::ops::conv2d_shape(5, 24, 8, 8, 400, 1, 1, Padding::Valid), true},
      {veridl::ops::conv2d_shape(7, 40, 4, 4, 390, 1, 1, Padding::Valid), true},
      {veridl::ops::conv2d_shape(6, 24, 2, 4, 400, 1, 1, Padding::Valid), true},  // 8 positions: one AVX2 vector
      {veridl::ops::conv2d_shape(9, 20, 2, 2, 500, 1, 1, Padding::Valid), true},
      {veridl::ops::conv2d_shape(33, 30, 1, 1, 420, 1, 1, Padding::Valid), true},
      {veridl::ops::conv2d_shape(6, 16, 2, 2, 30, 3, 1, Padding::Same), true}};  // 3x3 at 2x2: y through the buffer
  for (const auto& [s, input_grad] : cases) {
    const auto x = random_floats(s.x_size(), 31), W = random_floats(s.w_size(), 32), b = random_floats(s.O, 33),
               dy = random_floats(s.y_size(), 34);
    std::vector<float> y(s.y_size()), dx(s.x_size());
    veridl::kernels::conv2d_forward(s, x.data(), W.data(), b.data(), y.data());
    veridl::kernels::conv2d_backward_input(s, W.data(), dy.data(), dx.data());
    Conv2dShape one = s;
    one.B = 1;
    const size_t xs = one.x_size(), ys = one.y_size();
    for (size_t bi = 0; bi < s.B; ++bi) {
      std::vector<float> y1(ys), dx1(xs);
      veridl::kernels::conv2d_forward(one, x.data() + bi * xs, W.data(), b.data(), y1.data());
      veridl::kernels::conv2d_backward_input(one, W.data(), dy.data() + bi * ys, dx1.data());
      const std::vector<float> yb(y.begin() + bi * ys, y.begin() + (bi + 1) * ys),
          dxb(dx.begin() + bi * xs, dx.begin() + (bi + 1) * xs);
      EXPECT_TRUE(same_bits(yb, y1)) << "forward, image " << bi << " of " << tag(s);
      if (input_grad) {
        EXPECT_TRUE(same_bits(dxb, dx1)) << "backward_input, image " << bi << " of " << tag(s);
      }
    }
  }
}

}  // namespace
