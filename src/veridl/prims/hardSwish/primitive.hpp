// hardSwish (MobileNetV3; the original's hSwish = x relu6(x + 3) / 6), elementwise, in three pieces:
//   x < -3: y = 0, dx = 0;   -3 <= x <= 3: y = x (x + 3) / 6, dx = (2x + 3)/6 dy;   x > 3: y = x, dx = dy
//                                                                          hardSwish_has_vjp_at
// The pieces are decided through the tape (-x > 3, then x > 3, both strict) and saved for the backward.
// The convention at the kinks is PyTorch's (hardswish_backward): both kinks belong to the middle piece, so
// dx = -0.5 dy at x = -3 and 1.5 dy at x = 3 (y is continuous there; its derivative is not). As with
// ReLU6, the identity check cannot see a convention change at a kink; tests/test_activations.cpp pins it.
// A piecewise activation on prims/activation/elementwise.hpp; contract: contracts.cpp.
#pragma once

#include "veridl/prims/activation/elementwise.hpp"

namespace veridl::prims {

struct HardSwishFn {
  static constexpr const char* kName = "hardSwish";
  static constexpr const char* kContract = "hardSwish_has_vjp_at";
  static constexpr int kChapter = 7;
  static constexpr const char* kStatement =
      "dx_i = 0 if x < -3, (2 x + 3)/6 dy_i if -3 <= x <= 3, dy_i if x > 3   (pieces from the tape: -x > 3, x > 3)";
  static constexpr int kRegions = 3;
  enum : uint8_t { kLow = 0, kMid = 1, kHigh = 2 };

  template <class T>
  static uint8_t region(const T& x, Decisions& D) {
    if (D.gt(-x, 3.0)) return kLow;
    return D.gt(x, 3.0) ? kHigh : kMid;
  }
  template <class T>
  static T value(const T& x, uint8_t r) {
    if (r == kLow) return T(0);
    if (r == kHigh) return x;
    return x * (x + T(3)) / T(6);
  }
  template <class T>
  static T derivative(const T& x, uint8_t r) {
    if (r == kLow) return T(0);
    if (r == kHigh) return T(1);
    return (T(2) * x + T(3)) / T(6);
  }
  static uint8_t region_f(float x) {
    const uint8_t low = x < -3.0f, high = x > 3.0f;
    return static_cast<uint8_t>(kMid - low + high);
  }
  static float value_f(float x, uint8_t r) {
    const float mid = x * (x + 3.0f) / 6.0f;
    return r == kLow ? 0.0f : (r == kHigh ? x : mid);
  }
  static float derivative_f(float x, uint8_t r) {
    const float mid = (2.0f * x + 3.0f) / 6.0f;
    return r == kLow ? 0.0f : (r == kHigh ? 1.0f : mid);
  }

  static std::vector<MutantInfo> mutants() {
    return {{"mid_slope_without_product_rule", "the middle piece's slope is (x + 3)/6 (the product rule forgotten)"},
            {"high_piece_blocked", "no gradient above 3 (relu6's saturation copied)"},
            {"low_piece_passes", "the gradient passes below -3 (dx = dy)"}};
  }
  template <class T>
  static T mutant_derivative(const std::string& kind, const T& x, uint8_t r) {
    if (kind == "mid_slope_without_product_rule") return r == kMid ? (x + T(3)) / T(6) : derivative(x, r);
    if (kind == "high_piece_blocked") return r == kHigh ? T(0) : derivative(x, r);
    if (kind == "low_piece_passes") return r == kLow ? T(1) : derivative(x, r);
    throw std::invalid_argument("unknown hardSwish mutant '" + kind + "'");
  }

  static hlo::Val emit_value(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val low = b.compare("LT", x, b.cst(-3.0f, x.shape)), high = b.compare("GT", x, b.cst(3.0f, x.shape));
    const hlo::Val mid = b.div(b.mul(x, b.add(x, 3.0f)), b.cst(6.0f, x.shape));
    return b.select(low, b.cst(0.0f, x.shape), b.select(high, x, mid));
  }
  // x clip(x + 3, 0, 6) / 6: 0 below -3, x above 3 (x 6 / 6 is exact), x (x + 3) / 6 between, as value_f
  // computes it (ONNX's HardSwish computes x max(0, min(1, x / 6 + 1/2)), rounded differently).
  static std::string emit_onnx_value(graph::OnnxGraph& o, const std::string& x) {
    const std::string c = o.op("Clip", {o.op("Add", {x, o.scalar(3.0f)}), o.scalar(0.0f), o.scalar(6.0f)});
    return o.op("Div", {o.op("Mul", {x, c}), o.scalar(6.0f)});
  }
  static hlo::Val emit_derivative(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val low = b.compare("LT", x, b.cst(-3.0f, x.shape)), high = b.compare("GT", x, b.cst(3.0f, x.shape));
    const hlo::Val mid = b.div(b.add(b.mul(x, 2.0f), 3.0f), b.cst(6.0f, x.shape));
    return b.select(low, b.cst(0.0f, x.shape), b.select(high, b.cst(1.0f, x.shape), mid));
  }

  static std::vector<ProductionShape> production() {
    return {{"MobileNetV3-Large stem output 16x112x112, B=2", 2 * 16 * 112 * 112}};
  }
};

struct HardSwish : Activation<HardSwishFn> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static void register_contracts(Registry& r);  // contracts.cpp
};

}  // namespace veridl::prims
