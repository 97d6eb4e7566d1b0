// Chapter 4 contracts: conv2d (input, weight and bias gradients) and max-pool, their sweeps, and the
// broken backwards they must reject.
//
// The sweeps are part of the spec (verification.md 4.4): every index path of the two ops at tiny
// shapes -- strides 1..3, explicit paddings 0..2, both SAME styles, kernels 1..5 (and non-square ones
// with asymmetric pads), odd and even H and W, batch 1 and 2, 1..3 channels; pools with windows 1..3,
// strides 1..3, paddings 0..1 and tie-heavy inputs -- plus one trial at real network shapes.
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>
#include <vector>

#include "veridl/ops/conv2d.hpp"
#include "veridl/ops/conv_mutants.hpp"
#include "veridl/ops/maxpool.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace {

Vjp make_conv2d_variant(const ops::Conv2dShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("conv2d", ops::Conv2dOp{s});
  return make_vjp("conv2d[" + variant + "]", ops::Conv2dMutantOp{{s}, variant});
}

Vjp make_maxpool_variant(const ops::MaxPoolShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("maxpool", ops::MaxPoolOp{s});
  return make_vjp("maxpool[" + variant + "]", ops::MaxPoolMutantOp{{s}, variant});
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

struct LabelledPool {
  std::string label;
  ops::MaxPoolShape s;
  Sample sample;
};

std::vector<LabelledPool> maxpool_sweep_shapes() {
  std::vector<LabelledPool> out;
  size_t n = 0;
  auto add = [&](ops::MaxPoolShape s, const std::string& suffix) {
    s.B = 1 + n % 2;
    s.C = 1 + n % 3;
    s.validate();
    // Every shape twice: tie-heavy integer inputs (many tied maxima) and continuous ones.
    out.push_back({s.str() + suffix + " ties", s, Sample::Ties});
    out.push_back({s.str() + suffix, s, Sample::Normal});
    ++n;
  };
  for (size_t k = 1; k <= 3; ++k)
    for (size_t stride = 1; stride <= 3; ++stride)
      for (size_t pad = 0; pad < std::min<size_t>(k, 2); ++pad) {
        ops::MaxPoolShape s;
        s.H = std::max(kExtents[n % 5], k);
        s.W = std::max(kExtents[(n + 2) % 5], k);
        s.KH = s.KW = k;
        s.stride = stride;
        s.pad_top = s.pad_left = s.pad_bottom = s.pad_right = pad;
        // The last window must start in range (a window in the padding only is invalid).
        while ((s.OH() - 1) * s.stride >= s.H + s.pad_top) ++s.H;
        while ((s.OW() - 1) * s.stride >= s.W + s.pad_left) ++s.W;
        add(s, "");
      }
  for (ops::PadStyle style : {ops::PadStyle::Symmetric, ops::PadStyle::XlaSame})
    for (auto [k, stride, H, W] : {std::array<size_t, 4>{3, 2, 7, 6}, {2, 2, 5, 4}, {3, 1, 4, 5}, {2, 1, 3, 6}})
      add(ops::maxpool_shape(1, 1, H, W, k, stride, ops::Padding::Same, style),
          style == ops::PadStyle::XlaSame ? " (SAME, xla)" : " (SAME, symmetric)");
  add({1, 1, 5, 7, 2, 3, 1, 1, 0, 0, 2}, "");  // non-square window, asymmetric pads
  add({1, 1, 6, 5, 3, 2, 2, 0, 1, 1, 0}, "");
  return out;
}

}  // namespace

void register_conv_contracts(Registry& r) {
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

  std::vector<ContractCase> pool;
  for (const auto& [label, s, sample] : maxpool_sweep_shapes())
    pool.push_back({label, [s = s](const std::string& v) { return make_maxpool_variant(s, v); }, sample, false});
  for (auto [C, H, k, stride, what] :
       {std::tuple<size_t, size_t, size_t, size_t, const char*>{64, 56, 3, 2, "resnet stem pool 3x3/s2 SAME"},
        {32, 28, 2, 2, "cnn pool 2x2/s2"}}) {
    const ops::MaxPoolShape s = ops::maxpool_shape(2, C, H, H, k, stride, ops::Padding::Same, ops::PadStyle::Symmetric);
    pool.push_back({s.str() + " (" + what + ")", [s](const std::string& v) { return make_maxpool_variant(s, v); },
                    Sample::Normal, true});
  }
  r.add({"maxPool2_has_vjp3_correct", 4,
         "dx = dy routed to each window's arg-max (first maximum in row-major window order, from the tape); "
         "overlapping windows accumulate",
         {"x"}, std::move(pool),
         {{"grad_to_first_cell", "gradient routed to the window's first cell regardless of the arg-max"},
          {"overlap_overwrites", "overlapping windows (stride < k) overwrite instead of accumulating"},
          {"origin_off_by_one", "window origin off by one row in the backward"},
          {"index_decoded_transposed", "in-window index decoded column-major (kh, kw swapped)"},
          {"dy_scale_1.0001", "dy scaled by 1.0001"}}});
}

}  // namespace veridl
