// Runtime ISA dispatch (src/veridl/kernels/isa.hpp): detection, the VERIDL_ISA cap, the CLI's report, and the
// three variants of a kernel being three separately compiled functions. That every variant of every kernel
// matches the reference is the kernel tests' job: CMake registers them once more per lesser variant the CPU
// runs (test names "avx2:..." and "portable:...", run with VERIDL_ISA set), and IsaSelection.VariantInUse
// fails in those runs if the variable was not honoured.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_testutil.hpp"
#include "test_util.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/prims/conv2d/kernel.hpp"
#include "veridl/prims/dense/kernel.hpp"
#include "veridl/prims/gelu/primitive.hpp"
#include "veridl/prims/geluErf/primitive.hpp"
#include "veridl/prims/hardSwish/primitive.hpp"
#include "veridl/prims/layerNorm/kernel.hpp"
#include "veridl/prims/mul/kernel.hpp"
#include "veridl/prims/sigmoid/primitive.hpp"
#include "veridl/prims/softmax/kernel.hpp"
#include "veridl/prims/swish/primitive.hpp"

using namespace veridl::testutil;
namespace k = veridl::kernels;

namespace {

k::Isa min_isa(k::Isa a, k::Isa b) { return static_cast<int>(a) < static_cast<int>(b) ? a : b; }

TEST(IsaSelection, VariantInUse) {
  const char* env = std::getenv("VERIDL_ISA");
  k::Isa want = k::cpu_isa();
  if (env && *env) {
    bool known = false;
    for (int i = 0; i < k::kIsaCount; ++i)
      if (std::string(env) == k::isa_name(static_cast<k::Isa>(i))) {
        want = min_isa(static_cast<k::Isa>(i), k::cpu_isa());
        known = true;
      }
    ASSERT_TRUE(known) << "VERIDL_ISA=" << env;
  }
  EXPECT_EQ(k::isa_name(k::active_isa()), std::string(k::isa_name(want)));
  std::cout << "cpu: " << k::cpu_model() << "; kernels in use: " << k::isa_name(k::active_isa()) << "\n";
}

TEST(IsaSelection, SupportedVariantsEndAtTheCpus) {
  const std::vector<k::Isa> s = k::supported_isas();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.front(), k::Isa::Portable);
  EXPECT_EQ(s.back(), k::cpu_isa());
  EXPECT_FALSE(k::cpu_model().empty());
}

TEST(IsaSelection, SetActiveSwitchesAndRefusesWhatTheCpuLacks) {
  const k::Isa before = k::active_isa();
  for (k::Isa i : k::supported_isas()) {
    k::set_active_isa(i);
    EXPECT_EQ(k::active_isa(), i);
  }
  if (k::cpu_isa() != k::Isa::Avx512) {
    try {
      k::set_active_isa(k::Isa::Avx512);
      ADD_FAILURE() << "set_active_isa(avx512) on a CPU without AVX-512 did not throw";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(mentions(e.what(), {"avx512", "this CPU does not have"}));
    }
  }
  k::set_active_isa(before);
}

// A kernel's three table entries are three functions (the per-ISA objects were compiled and linked, not one
// variant standing in for the others), and each computes the product on its own.
TEST(IsaSelection, ThreeCompiledVariantsPerKernel) {
  for (int a = 0; a < k::kIsaCount; ++a)
    for (int b = a + 1; b < k::kIsaCount; ++b) {
      EXPECT_NE(reinterpret_cast<void*>(k::dense_forward.variant[a]), reinterpret_cast<void*>(k::dense_forward.variant[b]));
      EXPECT_NE(reinterpret_cast<void*>(k::conv2d_forward.variant[a]), reinterpret_cast<void*>(k::conv2d_forward.variant[b]));
    }
  const veridl::ops::DenseShape s{3, 5, 7};
  std::vector<float> x(15), W(35), b(7);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  for (size_t i = 0; i < W.size(); ++i) W[i] = 0.125f * static_cast<float>(i % 5) - 0.25f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i);
  for (k::Isa isa : k::supported_isas()) {
    std::vector<float> y(21, -1.0f);
    k::dense_forward.at(isa)(s, x.data(), W.data(), b.data(), y.data());
    for (size_t r = 0; r < 3; ++r)
      for (size_t o = 0; o < 7; ++o) {
        float want = b[o];
        for (size_t i = 0; i < 5; ++i) want += x[r * 5 + i] * W[i * 7 + o];  // exact: dyadic values
        EXPECT_EQ(y[r * 7 + o], want) << k::isa_name(isa) << " r=" << r << " o=" << o;
      }
  }
}

// The claim of kernels/gemm_tile.hpp: the AVX2 and AVX-512 variants of the GEMM-shaped kernels give identical
// bits (every element one FMA chain in the same order), at shapes that take every path: tails, depth blocks,
// packed panels, the transposed store, pointwise and im2col convs, the weight gradient's partials and its split
// columns.
TEST(IsaSelection, Avx2AndAvx512GemmsGiveIdenticalBits) {
  if (k::cpu_isa() != k::Isa::Avx512) GTEST_SKIP() << "needs an AVX-512 CPU (this one runs " << k::isa_name(k::cpu_isa()) << ")";
  for (const veridl::ops::DenseShape s : {veridl::ops::DenseShape{128, 784, 512}, {37, 300, 45}, {128, 784, 10}, {3, 1000, 700}}) {
    const auto x = random_floats(s.B * s.I, 1), W = random_floats(s.I * s.O, 2), b = random_floats(s.O, 3), dy = random_floats(s.B * s.O, 4);
    std::vector<float> y[2], dx[2], dW[2];
    for (int v = 0; v < 2; ++v) {
      const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
      y[v].resize(s.B * s.O), dx[v].resize(s.B * s.I), dW[v].resize(s.I * s.O);
      k::dense_forward.at(isa)(s, x.data(), W.data(), b.data(), y[v].data());
      k::dense_backward_input.at(isa)(s, W.data(), dy.data(), dx[v].data());
      k::dense_backward_weight.at(isa)(s, x.data(), dy.data(), dW[v].data());
    }
    const std::string at = std::to_string(s.B) + "x" + std::to_string(s.I) + "->" + std::to_string(s.O);
    EXPECT_TRUE(same_bits(y[0], y[1])) << "dense forward " << at;
    EXPECT_TRUE(same_bits(dx[0], dx[1])) << "dense backward_input " << at;
    EXPECT_TRUE(same_bits(dW[0], dW[1])) << "dense backward_weight " << at;
  }
  using veridl::ops::Padding;
  // Both Winograd policies: im2col everywhere (Off), Winograd at every 3x3 stride-1 shape of 16+ channels (On).
  for (k::Winograd w : {k::Winograd::Off, k::Winograd::On}) {
    const k::Winograd was = k::conv_winograd();
    k::set_conv_winograd(w);
    for (const veridl::ops::Conv2dShape& s :
         {veridl::ops::conv2d_shape(4, 32, 28, 28, 32, 3, 1, Padding::Same), veridl::ops::conv2d_shape(2, 64, 14, 14, 96, 1, 1, Padding::Valid),
          veridl::ops::conv2d_shape(3, 40, 15, 13, 24, 3, 2, Padding::Same), veridl::ops::conv2d_shape(8, 256, 7, 7, 128, 3, 1, Padding::Same),
          // Winograd with 24 channels in (AVX-512 transforms them 16 lanes at a time, AVX2 8) and rows of 10 tiles
          veridl::ops::conv2d_shape(2, 24, 40, 37, 32, 3, 1, Padding::Same, veridl::ops::PadStyle::XlaSame)}) {
      const auto x = random_floats(s.x_size(), 5), W = random_floats(s.w_size(), 6), b = random_floats(s.O, 7), dy = random_floats(s.y_size(), 8);
      std::vector<float> y[2], dx[2], dW[2];
      for (int v = 0; v < 2; ++v) {
        const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
        y[v].resize(s.y_size()), dx[v].resize(s.x_size()), dW[v].resize(s.w_size());
        k::conv2d_forward.at(isa)(s, x.data(), W.data(), b.data(), y[v].data());
        k::conv2d_backward_input.at(isa)(s, W.data(), dy.data(), dx[v].data());
        k::conv2d_backward_weight.at(isa)(s, x.data(), dy.data(), dW[v].data());
      }
      EXPECT_TRUE(same_bits(y[0], y[1])) << "conv forward " << s.str();
      EXPECT_TRUE(same_bits(dx[0], dx[1])) << "conv backward_input " << s.str();
      EXPECT_TRUE(same_bits(dW[0], dW[1])) << "conv backward_weight " << s.str();
    }
    k::set_conv_winograd(was);
  }
}

// The compiler-vectorized kernels: the smooth activations (each policy's forward and backward), layer norm
// (channels-first and over the last axis) and the attention's row softmax. Both variants are compiled with FMA;
// whether the 16-lane and 8-lane loops (and their remainders) round alike is what this checks, element by
// element (the row softmax's backward did not until its row sum became vmath::lane_dot: docs/kernels.md).
TEST(IsaSelection, Avx2AndAvx512VectorizedKernelsGiveIdenticalBits) {
  if (k::cpu_isa() != k::Isa::Avx512) GTEST_SKIP() << "needs an AVX-512 CPU (this one runs " << k::isa_name(k::cpu_isa()) << ")";
  const size_t n = 4099;  // vector bodies and remainders of both widths
  const auto x = random_floats(n, 1, -8.0f, 8.0f), dy = random_floats(n, 2, -1.0f, 1.0f);
  auto activation = [&](auto policy, const char* name) {
    using F = decltype(policy);
    std::vector<float> y[2], dx[2];
    std::vector<uint8_t> r8[2];
    for (int v = 0; v < 2; ++v) {
      const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
      y[v].assign(n, 0.0f), dx[v].assign(n, 0.0f), r8[v].assign(n, 0);
      k::elementwise_forward<F>.at(isa)(n, x.data(), y[v].data(), r8[v].data());
      k::elementwise_backward<F>.at(isa)(n, x.data(), r8[v].data(), dy.data(), dx[v].data());
    }
    EXPECT_TRUE(same_bits(y[0], y[1])) << name << " forward";
    EXPECT_TRUE(same_bits(dx[0], dx[1])) << name << " backward";
  };
  activation(veridl::prims::SigmoidFn{}, "sigmoid");
  activation(veridl::prims::SwishFn{}, "swish");
  activation(veridl::prims::HardSwishFn{}, "hardSwish");
  activation(veridl::prims::GeluFn{}, "gelu");
  activation(veridl::prims::GeluErfFn{}, "geluErf");
  for (const veridl::ops::LayerNormShape& s : {veridl::ops::LayerNormShape{3, 1, 24, 49}, veridl::ops::LayerNormShape{2, 197, 192, 1}}) {
    const auto lx = random_floats(s.count(), 3, -2.0f, 2.0f), g = random_floats(s.C, 4, -1.0f, 1.0f), b = random_floats(s.C, 5, -1.0f, 1.0f), ldy = random_floats(s.count(), 6, -1.0f, 1.0f);
    std::vector<float> y[2], r[2], xh[2], dx[2], dg[2], db[2];
    for (int v = 0; v < 2; ++v) {
      const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
      y[v].resize(s.count()), r[v].resize(s.positions()), xh[v].resize(s.count()), dx[v].resize(s.count());
      dg[v].resize(s.C), db[v].resize(s.C);
      k::layernorm_forward.at(isa)(s, 1e-6, lx.data(), g.data(), b.data(), y[v].data(), r[v].data(), xh[v].data());
      k::layernorm_backward.at(isa)(s, g.data(), r[v].data(), xh[v].data(), ldy.data(), dx[v].data(), dg[v].data(), db[v].data());
    }
    EXPECT_TRUE(same_bits(y[0], y[1]) && same_bits(r[0], r[1])) << "layerNorm forward " << s.str();
    EXPECT_TRUE(same_bits(dx[0], dx[1]) && same_bits(dg[0], dg[1]) && same_bits(db[0], db[1])) << "layerNorm backward " << s.str();
  }
  {
    const size_t rows = 37, K = 197;
    const auto z = random_floats(rows * K, 7, -10.0f, 10.0f), sdy = random_floats(rows * K, 8, -1.0f, 1.0f);
    std::vector<float> p[2], dz[2];
    for (int v = 0; v < 2; ++v) {
      const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
      p[v].resize(rows * K), dz[v].resize(rows * K);
      k::softmax_rows_forward.at(isa)(rows, K, z.data(), p[v].data());
      k::softmax_rows_backward.at(isa)(rows, K, p[v].data(), sdy.data(), dz[v].data());
    }
    EXPECT_TRUE(same_bits(p[0], p[1])) << "softmax rows forward";
    EXPECT_TRUE(same_bits(dz[0], dz[1])) << "softmax rows backward";
  }
  // The stride-1 depthwise kernels on narrow planes (intrinsics of 8 or 16 lanes, the same FMA chains): ConvNeXt's
  // 7x7 at 8x8 and 4x4, MobileNetV2's 3x3 at 14x14 with a bias, an odd plane whose rows end in vector remainders.
  using veridl::ops::Padding;
  for (const veridl::ops::Conv2dShape& s :
       {veridl::ops::conv2d_shape(3, 5, 8, 8, 5, 7, 1, Padding::Same, veridl::ops::PadStyle::Symmetric, true, 5),
        veridl::ops::conv2d_shape(2, 4, 4, 4, 4, 7, 1, Padding::Same, veridl::ops::PadStyle::Symmetric, false, 4),
        veridl::ops::conv2d_shape(2, 3, 14, 14, 3, 3, 1, Padding::Same, veridl::ops::PadStyle::XlaSame, true, 3),
        veridl::ops::conv2d_shape(2, 2, 13, 9, 2, 5, 1, Padding::Valid, veridl::ops::PadStyle::XlaSame, true, 2)}) {
    const auto cx = random_floats(s.x_size(), 9), cw = random_floats(s.w_size(), 10), cb = random_floats(s.O, 11),
               cdy = random_floats(s.y_size(), 12);
    std::vector<float> y[2], dx[2], dw[2];
    for (int v = 0; v < 2; ++v) {
      const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
      y[v].resize(s.y_size()), dx[v].resize(s.x_size()), dw[v].resize(s.w_size());
      k::conv2d_forward.at(isa)(s, cx.data(), cw.data(), s.bias ? cb.data() : nullptr, y[v].data());
      k::conv2d_backward_input.at(isa)(s, cw.data(), cdy.data(), dx[v].data());
      k::conv2d_backward_weight.at(isa)(s, cx.data(), cdy.data(), dw[v].data());
    }
    EXPECT_TRUE(same_bits(y[0], y[1])) << "depthwise forward " << s.H << "x" << s.W << " k" << s.KH;
    EXPECT_TRUE(same_bits(dx[0], dx[1])) << "depthwise input gradient " << s.H << "x" << s.W << " k" << s.KH;
    EXPECT_TRUE(same_bits(dw[0], dw[1])) << "depthwise weight gradient " << s.H << "x" << s.W << " k" << s.KH;
  }
  // Squeeze-excitation's channel-wise product: its scale gradient sums a dy over a plane (EfficientNet-B0-Small's
  // 14x14, 196 = 12 vectors of 16 + 4 = 24 of 8 + 4, and 7x7).
  for (const size_t inner : {size_t(196), size_t(49)}) {
    const veridl::ops::MulShape s{3, 20, inner};
    const auto a = random_floats(s.count(), 13), sc = random_floats(s.scales(), 14), mdy = random_floats(s.count(), 15);
    std::vector<float> y[2], da[2], ds[2];
    for (int v = 0; v < 2; ++v) {
      const k::Isa isa = v ? k::Isa::Avx512 : k::Isa::Avx2;
      y[v].resize(s.count()), da[v].resize(s.count()), ds[v].resize(s.scales());
      k::mul_forward.at(isa)(s, a.data(), sc.data(), y[v].data());
      k::mul_backward.at(isa)(s, a.data(), sc.data(), mdy.data(), da[v].data(), ds[v].data());
    }
    EXPECT_TRUE(same_bits(y[0], y[1]) && same_bits(da[0], da[1])) << "mul forward / input gradient, plane " << inner;
    EXPECT_TRUE(same_bits(ds[0], ds[1])) << "mul scale gradient, plane " << inner;
  }
}

TEST(IsaSelection, CliReportsTheVariantAndRejectsABadVariable) {
  const Cmd info = run_command(std::string("VERIDL_ISA=portable ") + VERIDL_BINARY + " info --cpu");
  ASSERT_EQ(info.status, 0) << info.out;
  EXPECT_NE(info.out.find("in use: portable"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("cpu: "), std::string::npos) << info.out;
  const Cmd best = run_command(std::string("env -u VERIDL_ISA -u VERIDL_WINOGRAD ") + VERIDL_BINARY + " info --cpu");
  EXPECT_NE(best.out.find(std::string("in use: ") + k::isa_name(k::cpu_isa())), std::string::npos) << best.out;
  // A bad variable: exit status 2 and one line naming it, before any work (the --out directory does not exist).
  auto refused = [](const std::string& env, std::initializer_list<std::string> words) {
    const Cmd c = run_command(env + " " + VERIDL_BINARY + " train --spec " + repo("specs/mnist_linear.json") +
                              " --epochs 1 --out /nonexistent/should-not-be-written");
    EXPECT_EQ(c.status, 2) << c.out;
    std::string line = c.out;
    while (!line.empty() && line.back() == '\n') line.pop_back();
    EXPECT_TRUE(mentions(line, words)) << c.out;
  };
  refused("VERIDL_ISA=avx3", {"VERIDL_ISA='avx3'", "avx512, avx2 or portable"});
  // VERIDL_WINOGRAD: reported by info (on when unset), and a bad value refused.
  const Cmd off = run_command(std::string("env -u VERIDL_ISA VERIDL_WINOGRAD=0 ") + VERIDL_BINARY + " info --cpu");
  const Cmd on = run_command(std::string("env -u VERIDL_ISA VERIDL_WINOGRAD=1 ") + VERIDL_BINARY + " info --cpu");
  ASSERT_EQ(off.status, 0) << off.out;
  ASSERT_EQ(on.status, 0) << on.out;
  if (k::cpu_isa() != k::Isa::Portable) {
    for (const Cmd* c : {&best, &on})
      EXPECT_NE(c->out.find("3x3 stride-1 convolutions: Winograd F(4x4, 3x3) wherever it applies"), std::string::npos)
          << c->out;
    EXPECT_NE(off.out.find("3x3 stride-1 convolutions: im2col + GEMM (VERIDL_WINOGRAD=0)"), std::string::npos) << off.out;
  }
  refused("VERIDL_WINOGRAD=auto", {"VERIDL_WINOGRAD='auto'", "is not 0 or 1"});
}

}  // namespace
