// Chapter 4 contracts of conv2d (input, weight and bias gradients), their sweeps, and the broken
// backwards they must reject.
//
// The sweeps are part of the spec (verification.md 4.4): every index path at tiny shapes -- strides
// 1..3, explicit paddings 0..2, both SAME styles, kernels 1..5 (and non-square ones with asymmetric
// pads), odd and even H and W, batch 1 and 2, 1..3 channels -- plus one trial at real network shapes.
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

// Small extents, cycled so that odd/even H and W, batch 1/2 and the channel counts all mix.
constexpr size_t kExtents[] = {3, 4, 5, 6, 7};
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
        s.H = std::max(kExtents[n % 5], k > 2 * pad ? k - 2 * pad : 1);
        s.W = std::max(kExtents[(n + 2) % 5], k > 2 * pad ? k - 2 * pad : 1);
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
        const size_t H = std::max(kExtents[(n + 1) % 5], k), W = std::max(kExtents[(n + 3) % 5], k);
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
  return out;
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
}

}  // namespace veridl
