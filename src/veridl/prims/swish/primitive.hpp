// swish / SiLU (book ch. 8: EfficientNet's activation): y = x s(x), s = sigmoid; elementwise;
// dx = s (1 + x (1 - s)) dy (swish_has_vjp_correct: the product rule over x and the sigmoid atom). A smooth
// activation on the shared machinery of prims/activation/elementwise.hpp; contract: contracts.cpp.
#pragma once

#include "veridl/prims/activation/elementwise.hpp"

namespace veridl::prims {

struct SwishFn {
  static constexpr const char* kName = "swish";
  static constexpr const char* kContract = "swish_has_vjp_correct";
  static constexpr int kChapter = 8;
  static constexpr const char* kStatement = "dx_i = s_i (1 + x_i (1 - s_i)) dy_i,  s_i = sigmoid(x_i)";
  static constexpr int kRegions = 1;

  template <class T>
  static T value(const T& x, uint8_t) {
    return x * asigmoid(x);
  }
  template <class T>
  static T derivative(const T& x, uint8_t) {
    const T s = asigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  }
  static float value_f(float x, uint8_t) { return x * kernels::vmath::vsigmoid(x); }
  static float derivative_f(float x, uint8_t) {
    float s, c;  // c = 1 - s without cancellation
    kernels::vmath::vsigmoid_pair(x, s, c);
    return s * (1.0f + x * c);
  }

  static std::vector<MutantInfo> mutants() {
    return {{"sigmoid_only", "dx = s dy (the product rule forgotten: x treated as a constant)"},
            {"sigmoid_derivative", "dx = s (1 - s) dy (sigmoid's own derivative)"},
            {"sign_slip", "dx = s (1 + x (1 + s)) dy"},
            {"missing_s_factor", "dx = (1 + x (1 - s)) dy (the outer s dropped)"}};
  }
  template <class T>
  static T mutant_derivative(const std::string& kind, const T& x, uint8_t) {
    const T s = asigmoid(x);
    if (kind == "sigmoid_only") return s;
    if (kind == "sigmoid_derivative") return s * (T(1) - s);
    if (kind == "sign_slip") return s * (T(1) + x * (T(1) + s));
    if (kind == "missing_s_factor") return T(1) + x * (T(1) - s);
    throw std::invalid_argument("unknown swish mutant '" + kind + "'");
  }

  static hlo::Val emit_value(hlo::Builder& b, const hlo::Val& x) { return b.mul(x, b.logistic(x)); }
  static std::string emit_onnx_value(graph::OnnxGraph& o, const std::string& x) {
    return o.op("Mul", {x, o.op("Sigmoid", {x})});
  }
  static hlo::Val emit_derivative(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val s = b.logistic(x), one = b.cst(1.0f, x.shape);
    return b.mul(s, b.add(one, b.mul(x, b.sub(one, s))));
  }

  static std::vector<ProductionShape> production() {
    return {{"EfficientNet-B0 stem output 32x112x112, B=2", 2 * 32 * 112 * 112}};
  }
};

struct Swish : Activation<SwishFn> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static void register_contracts(Registry& r);  // contracts.cpp
};

}  // namespace veridl::prims
