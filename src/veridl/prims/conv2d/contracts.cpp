// Chapter 4 contracts of conv2d (input, weight and bias gradients) and the chapter 7 contracts of its
// depthwise (groups = C = O) and grouped (other groups > 1) forms, their sweeps, and the broken backwards
// they must reject. One record (ops::Conv2dOp) for all of them: the groups are a field of the shape.
//
// The sweeps are part of the spec (verification.md 4.4): every index path at tiny shapes -- strides
// 1..3, explicit paddings 0..2, both SAME styles, kernels 1..5 (and non-square ones with asymmetric
// pads), odd and even H and W, batch 1 and 2, 1..3 channels -- plus one trial at real network shapes.
// The depthwise and grouped sweeps: kernels 1, 3, 5, 7, strides 1 and 2, "same" in both pad styles and
// "valid", odd and even H and W, batch 1 and 2, 2..4 depthwise channels; grouped (C, O, G) with 2 and 3
// groups, one output channel per group, more outputs than inputs, and the channel multiplier (G = C,
// O = m C, which the primitive treats as grouped); plus the depthwise layers of MobileNetV2 (3x3/s2 at
// 112x112x32, 3x3/s1 at 7x7x960), EfficientNet-B0 (5x5/s2) and ConvNeXt-T (7x7) and a ResNeXt grouped layer
// as production shapes. The conv sweep also has patchify convs (kernel = stride 2 and 4, no padding).
// The max-pool sweep is in prims/maxPool/contracts.cpp.
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>
#include <vector>

#include "veridl/prims/conv2d/mutants.hpp"
#include "veridl/prims/conv2d/primitive.hpp"
#include "veridl/prims/conv2d/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace {

Vjp make_conv2d_variant(const ops::Conv2dShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("conv2d", ops::Conv2dOp{s});
  return make_vjp("conv2d[" + variant + "]", ops::Conv2dMutantOp{{s}, variant});
}

constexpr size_t kChannels[][2] = {{1, 1}, {2, 3}, {3, 2}, {2, 2}, {1, 3}, {3, 1}};  // (C, O)

struct LabelledConv {
  std::string label;
  ops::Conv2dShape s;
};

std::vector<LabelledConv> conv_sweep_shapes() {
  std::vector<LabelledConv> out;
  size_t n = 0;
  auto dims = [&](ops::Conv2dShape& s) {
    s.B = 1 + n % 2;
    s.C = kChannels[n % 6][0];
    s.O = kChannels[n % 6][1];
    s.bias = n % 3 != 0;
    ++n;
  };
  // Explicit symmetric pads 0..2 at every stride and kernel size.
  for (size_t stride = 1; stride <= 3; ++stride)
    for (size_t k = 1; k <= 5; ++k)
      for (size_t pad = 0; pad <= 2; ++pad) {
        ops::Conv2dShape s;
        s.H = std::max(kSweepExtents[n % 5], k > 2 * pad ? k - 2 * pad : 1);
        s.W = std::max(kSweepExtents[(n + 2) % 5], k > 2 * pad ? k - 2 * pad : 1);
        s.KH = s.KW = k;
        s.stride = stride;
        s.pad_top = s.pad_left = s.pad_bottom = s.pad_right = pad;
        dims(s);
        out.push_back({s.str(), s});
      }
  // "same" in both pad styles (XLA's puts the extra cell on the high side).
  for (ops::PadStyle style : {ops::PadStyle::Symmetric, ops::PadStyle::XlaSame})
    for (size_t stride = 1; stride <= 3; ++stride)
      for (size_t k = 1; k <= 5; ++k) {
        const size_t H = std::max(kSweepExtents[(n + 1) % 5], k), W = std::max(kSweepExtents[(n + 3) % 5], k);
        ops::Conv2dShape s = ops::conv2d_shape(1, 1, H, W, 1, k, stride, ops::Padding::Same, style);
        dims(s);
        out.push_back({s.str() + (style == ops::PadStyle::XlaSame ? " (SAME, xla)" : " (SAME, symmetric)"), s});
      }
  // Non-square kernels with asymmetric pads.
  const ops::Conv2dShape odd[] = {
      {2, 2, 5, 6, 3, 1, 3, 1, 0, 1, 0, 1, true},  {1, 3, 6, 5, 2, 3, 1, 2, 1, 0, 2, 0, false},
      {2, 2, 4, 7, 2, 2, 3, 2, 0, 1, 1, 0, true},  {1, 1, 7, 5, 3, 4, 2, 3, 2, 0, 1, 1, true},
      {2, 3, 3, 8, 1, 3, 5, 1, 1, 2, 1, 2, false}, {1, 2, 6, 6, 2, 5, 3, 2, 0, 0, 2, 1, true},
  };
  for (const auto& s : odd) out.push_back({s.str(), s});
  // Patchify: kernel = stride, no padding (ConvNeXt's 4x4/4 stem and 2x2/2 downsamples), stride 4 only here.
  const ops::Conv2dShape patch[] = {{2, 3, 8, 8, 2, 4, 4, 4, 0, 0, 0, 0, true}, {1, 2, 6, 4, 3, 2, 2, 2, 0, 0, 0, 0, false}};
  for (const auto& s : patch) out.push_back({s.str() + " (patchify)", s});
  return out;
}

// kernels 1, 3, 5, 7 x strides 1, 2 x {"same" symmetric, "same" XLA, "valid"}, cycling the extents (odd
// and even), the batch (1, 2), the bias and the channels (C, O, G).
template <size_t N>
std::vector<LabelledConv> group_sweep_shapes(const size_t (&chans)[N][3], const std::vector<ops::Conv2dShape>& extra) {
  std::vector<LabelledConv> out;
  constexpr size_t kExt[] = {5, 6, 7, 8, 9};
  size_t n = 0;
  for (size_t k : {1, 3, 5, 7})
    for (size_t stride = 1; stride <= 2; ++stride)
      for (int pad = 0; pad < 3; ++pad) {
        const ops::Padding p = pad == 2 ? ops::Padding::Valid : ops::Padding::Same;
        const ops::PadStyle style = pad == 0 ? ops::PadStyle::Symmetric : ops::PadStyle::XlaSame;
        const size_t H = std::max(kExt[n % 5], k), W = std::max(kExt[(n + 2) % 5], k);
        const size_t* c = chans[n % N];
        const ops::Conv2dShape s =
            ops::conv2d_shape(1 + n % 2, c[0], H, W, c[1], k, stride, p, style, n % 4 != 0, c[2]);
        const char* what = pad == 2 ? " (VALID)" : pad == 0 ? " (SAME, symmetric)" : " (SAME, xla)";
        out.push_back({s.str() + what, s});
        ++n;
      }
  for (const auto& s : extra) out.push_back({s.str(), s});
  return out;
}

// Depthwise: C = O = G.
std::vector<LabelledConv> depthwise_sweep_shapes() {
  constexpr size_t chans[][3] = {{2, 2, 2}, {3, 3, 3}, {4, 4, 4}};
  // Non-square kernels with asymmetric pads (B, C, H, W, O, KH, KW, s, pt, pl, pb, pr, bias, G).
  return group_sweep_shapes(chans, {{2, 3, 5, 6, 3, 1, 3, 1, 0, 1, 0, 1, true, 3},
                                    {1, 2, 6, 7, 2, 3, 2, 2, 1, 0, 1, 1, false, 2},
                                    {2, 4, 7, 5, 4, 2, 5, 2, 0, 2, 1, 1, true, 4}});
}

// Grouped: 1 < G < C, including one output per group and more outputs than inputs; and the channel
// multiplier G = C < O.
std::vector<LabelledConv> grouped_sweep_shapes() {
  constexpr size_t chans[][3] = {{4, 2, 2}, {4, 6, 2}, {6, 3, 3}, {6, 4, 2},
                                 {4, 4, 2}, {6, 6, 3}, {2, 4, 2}, {3, 6, 3}};
  return group_sweep_shapes(chans, {{2, 4, 5, 6, 6, 1, 3, 1, 0, 1, 0, 1, true, 2},
                                    {1, 6, 6, 7, 3, 3, 2, 2, 1, 0, 1, 1, false, 3}});
}

struct Production {
  std::string label;
  ops::Conv2dShape s;
};

std::vector<ContractCase> cases_of(const std::vector<LabelledConv>& sweep, const std::vector<Production>& prod,
                                   bool bias_only) {
  std::vector<ContractCase> cases;
  for (const auto& [label, s] : sweep) {
    if (bias_only && !s.bias) continue;
    cases.push_back(
        {label, [s = s](const std::string& v) { return make_conv2d_variant(s, v); }, Sample::Normal, false});
  }
  for (const auto& p : prod) {
    if (bias_only && !p.s.bias) continue;
    cases.push_back({p.s.str() + " (" + p.label + ")",
                     [s = p.s](const std::string& v) { return make_conv2d_variant(s, v); }, Sample::Normal, true});
  }
  return cases;
}

// MobileNetV2's depthwise 3x3 layers: stride 2 at 112x112x32 (XLA SAME: pads (0, 1)) and stride 1 at
// 7x7x960; EfficientNet-B0's 5x5/s2 at 14x14x672 (mb6.0) and ConvNeXt-T's 7x7 at 7x7x768 (stage 4, which
// has a bias). convBn has no bias, so the bias contract gets the same layers with one.
std::vector<Production> depthwise_production(bool bias) {
  return {{"MobileNetV2 dw 3x3/s2 SAME xla, 112x112x32",
           ops::conv2d_shape(2, 32, 112, 112, 32, 3, 2, ops::Padding::Same, ops::PadStyle::XlaSame, bias, 32)},
          {"MobileNetV2 dw 3x3/s1 SAME, 7x7x960",
           ops::conv2d_shape(2, 960, 7, 7, 960, 3, 1, ops::Padding::Same, ops::PadStyle::Symmetric, bias, 960)},
          {"EfficientNet-B0 dw 5x5/s2 SAME, 14x14x672",
           ops::conv2d_shape(2, 672, 14, 14, 672, 5, 2, ops::Padding::Same, ops::PadStyle::Symmetric, bias, 672)},
          {"ConvNeXt-T dw 7x7/s1 SAME, 7x7x768",
           ops::conv2d_shape(2, 768, 7, 7, 768, 7, 1, ops::Padding::Same, ops::PadStyle::Symmetric, bias, 768)}};
}

// ResNeXt-50 (32x4d)'s grouped 3x3 of the 28x28 stage: 256 channels in 32 groups of 8.
std::vector<Production> grouped_production(bool bias) {
  return {{"ResNeXt-50 32x4d grouped 3x3, 28x28x256",
           ops::conv2d_shape(1, 256, 28, 28, 256, 3, 1, ops::Padding::Same, ops::PadStyle::Symmetric, bias, 32)}};
}

}  // namespace

void prims::Conv2d::register_contracts(Registry& r) {
  auto conv_cases = [](bool bias_only) {
    std::vector<ContractCase> cases;
    for (const auto& [label, s] : conv_sweep_shapes()) {
      if (bias_only && !s.bias) continue;
      cases.push_back({label, [s = s](const std::string& v) { return make_conv2d_variant(s, v); }, Sample::Normal, false});
    }
    // One trial at a real network shape: a stride-1 SAME 3x3 conv of a small CNN, and a strided convBn
    // (no bias) with XLA SAME pads.
    const ops::Conv2dShape prod1 = ops::conv2d_shape(1, 32, 28, 28, 32, 3, 1, ops::Padding::Same);
    cases.push_back({prod1.str() + " (cnn 3x3 SAME)",
                     [prod1](const std::string& v) { return make_conv2d_variant(prod1, v); }, Sample::Normal, true});
    if (!bias_only) {
      const ops::Conv2dShape prod2 = ops::conv2d_shape(2, 16, 28, 28, 32, 3, 2, ops::Padding::Same,
                                                       ops::PadStyle::XlaSame, false);
      cases.push_back({prod2.str() + " (convBn 3x3/s2 SAME xla)",
                       [prod2](const std::string& v) { return make_conv2d_variant(prod2, v); }, Sample::Normal, true});
    }
    return cases;
  };
  r.add({"conv2d_has_vjp3_correct", 4,
         "dx[b,c,h,w] = sum_{o,kh,kw} W[o,c,kh,kw] dy[b,o,(h+pt-kh)/s,(w+pl-kw)/s]   (dilated dy conv flipped, "
         "io-transposed W)",
         {"x"}, conv_cases(false),
         {{"dx_pad_off_by_one", "input-grad padding off by one (pt + 1, pl + 1 in the gather)"},
          {"dx_stride_on_kernel_offset", "stride applied to the kernel offset: i s = h + pt - kh s"},
          {"dx_kernel_not_flipped", "kernel not flipped in dx: W[o,c,KH-1-kh,KW-1-kw]"},
          {"dx_channels_swapped", "io transpose forgotten: W read as [C, O, KH, KW]"},
          {"dx_scale_1.0001", "dx scaled by 1.0001 (invisible to finite differences)"}}});
  r.add({"conv2d_weight_grad_has_vjp", 4, "dW[o,c,kh,kw] = sum_{b,i,j} x[b,c,i s+kh-pt,j s+kw-pl] dy[b,o,i,j]",
         {"W"}, conv_cases(false),
         {{"dW_transposed_io", "weight grad written transposed: [C, O, KH, KW] instead of [O, C, KH, KW]"},
          {"dW_pad_off_by_one", "padding off by one in the weight grad (pt + 1, pl + 1)"},
          {"dW_stride_on_kernel_offset", "stride applied to the kernel offset: x[i s + kh s - pt]"},
          {"dW_first_example_only", "missing batch sum: only the first example contributes"},
          {"dW_scale_1.0001", "dW scaled by 1.0001"}}});
  r.add({"conv2d_bias_grad_has_vjp", 4, "db[o] = sum_{b,i,j} dy[b,o,i,j]", {"b"}, conv_cases(true),
         {{"db_mean", "mean over batch and positions instead of the sum"},
          {"db_first_example_only", "only the first example's dy"},
          {"db_missing_last_row", "off-by-one loop bound: the last output row is missing"},
          {"db_scale_1.0001", "db scaled by 1.0001"}}});

  // ---- chapter 7: depthwise (G = C = O) ----
  r.add({"depthwise_has_vjp3_correct", 7,
         "dx[b,c,h,w] = sum_{kh,kw} W[c,0,kh,kw] dy[b,c,(h+pt-kh)/s,(w+pl-kw)/s]   (per channel: dilated dy conv "
         "flipped kernel)",
         {"x"}, cases_of(depthwise_sweep_shapes(), depthwise_production(false), false),
         {{"dw_dx_next_channel_weight", "input grad reads the next channel's kernel: W[c+1] instead of W[c]"},
          {"dw_dx_sums_all_channels", "groups forgotten in dx: every output channel's dy feeds every input channel"},
          {"dw_dx_kernel_not_flipped", "kernel not flipped in dx: W[c,0,KH-1-kh,KW-1-kw]"},
          {"dw_dx_stride_ignored", "stride left out of the dilation: i = h + pt - kh"},
          {"dw_dx_pad_off_by_one", "input-grad padding off by one (pt + 1, pl + 1 in the gather)"}}});
  r.add({"depthwise_weight_grad_has_vjp", 7, "dW[c,0,kh,kw] = sum_{b,i,j} x[b,c,i s+kh-pt,j s+kw-pl] dy[b,c,i,j]",
         {"W"}, cases_of(depthwise_sweep_shapes(), depthwise_production(false), false),
         {{"dw_dW_sums_all_channels", "weight grad sums x over all channels instead of the channel's own"},
          {"dw_dW_reads_channel_0", "group offset forgotten: every channel's dW reads x[b,0]"},
          {"dw_dW_stride_ignored", "stride left out: x[i + kh - pt] instead of x[i s + kh - pt]"},
          {"dw_dW_kernel_flipped", "dW written spatially flipped: dW[c,0,KH-1-kh,KW-1-kw]"},
          {"dw_dW_first_example_only", "missing batch sum: only the first example contributes"}}});
  r.add({"depthwise_bias_grad_has_vjp", 7, "db[c] = sum_{b,i,j} dy[b,c,i,j]", {"b"},
         cases_of(depthwise_sweep_shapes(), depthwise_production(true), true),
         {{"dw_db_next_channel", "channel off by one: db[c] sums dy[b,c+1]"},
          {"db_first_example_only", "only the first example's dy"},
          {"db_missing_last_row", "off-by-one loop bound: the last output row is missing"},
          {"dw_db_scale_1.0001", "db scaled by 1.0001"}}});

  // ---- chapter 7: grouped (1 < G < C, and the channel multiplier G = C < O) ----
  r.add({"groupedConv2d_has_vjp3_correct", 7,
         "dx[b,c,h,w] = sum_{o in group(c),kh,kw} W[o,c-c0,kh,kw] dy[b,o,(h+pt-kh)/s,(w+pl-kw)/s]   (per group: "
         "dilated dy conv flipped, io-transposed W)",
         {"x"}, cases_of(grouped_sweep_shapes(), grouped_production(false), false),
         {{"g_dx_next_group_weight", "input grad reads the next group's kernels: W[o + O/G]"},
          {"g_dx_groups_ignored", "groups forgotten in dx: every output channel feeds every input channel"},
          {"g_dx_kernel_not_flipped", "kernel not flipped in dx: W[o,c',KH-1-kh,KW-1-kw]"},
          {"g_dx_stride_ignored", "stride left out of the dilation: i = h + pt - kh"}}});
  r.add({"groupedConv2d_weight_grad_has_vjp", 7,
         "dW[o,c',kh,kw] = sum_{b,i,j} x[b,c0(o)+c',i s+kh-pt,j s+kw-pl] dy[b,o,i,j],  c0(o) = (o / (O/G)) (C/G)",
         {"W"}, cases_of(grouped_sweep_shapes(), grouped_production(false), false),
         {{"g_dW_reads_group_0", "group offset forgotten: dW[o,c'] reads x[b,c'] (group 0's input) for every o"},
          {"g_dW_next_group_input", "dW reads the next group's input channels"},
          {"g_dW_groups_ignored", "weight grad sums over every group's input channel c' instead of its own"},
          {"g_dW_stride_ignored", "stride left out: x[i + kh - pt] instead of x[i s + kh - pt]"},
          {"g_dW_first_example_only", "missing batch sum: only the first example contributes"}}});
  r.add({"groupedConv2d_bias_grad_has_vjp", 7, "db[o] = sum_{b,i,j} dy[b,o,i,j]", {"b"},
         cases_of(grouped_sweep_shapes(), grouped_production(true), true),
         {{"g_db_next_group", "db[o] sums the next group's dy[b,o + O/G]"},
          {"db_first_example_only", "only the first example's dy"},
          {"db_mean", "mean over batch and positions instead of the sum"},
          {"g_db_scale_1.0001", "db scaled by 1.0001"}}});
}

}  // namespace veridl
