// sigmoid (book ch. 8: EfficientNet's squeeze-excitation gate): y = s(x) = 1 / (1 + exp(-x)), elementwise;
// dx = s (1 - s) dy, written on the atom's own value s = asigmoid(x) (sigmoid_has_vjp_correct). A smooth
// activation on the shared machinery of prims/activation/elementwise.hpp; contract: contracts.cpp.
#pragma once

#include "veridl/prims/activation/elementwise.hpp"

namespace veridl::prims {

struct SigmoidFn {
  static constexpr const char* kName = "sigmoid";
  static constexpr const char* kContract = "sigmoid_has_vjp_correct";
  static constexpr int kChapter = 8;
  static constexpr const char* kStatement = "dx_i = s_i (1 - s_i) dy_i,  s_i = sigmoid(x_i)";
  static constexpr int kRegions = 1;

  template <class T>
  static T value(const T& x, uint8_t) {
    return asigmoid(x);
  }
  template <class T>
  static T derivative(const T& x, uint8_t) {
    const T s = asigmoid(x);
    return s * (T(1) - s);
  }
  static float value_f(float x, uint8_t) { return kernels::vmath::vsigmoid(x); }
  static float derivative_f(float x, uint8_t) {
    float s, c;  // c = 1 - s without cancellation
    kernels::vmath::vsigmoid_pair(x, s, c);
    return s * c;
  }

  static std::vector<MutantInfo> mutants() {
    return {{"one_plus_s", "dx = s (1 + s) dy (a sign slip)"},
            {"missing_one_minus_s", "dx = s dy (the exp rule's 'derivative is itself' applied to sigmoid)"},
            {"on_the_input", "dx = x (1 - x) dy (the formula written on the input instead of on s)"}};
  }
  template <class T>
  static T mutant_derivative(const std::string& kind, const T& x, uint8_t) {
    const T s = asigmoid(x);
    if (kind == "one_plus_s") return s * (T(1) + s);
    if (kind == "missing_one_minus_s") return s;
    if (kind == "on_the_input") return x * (T(1) - x);
    throw std::invalid_argument("unknown sigmoid mutant '" + kind + "'");
  }

  static hlo::Val emit_value(hlo::Builder& b, const hlo::Val& x) { return b.logistic(x); }
  static std::string emit_onnx_value(graph::OnnxGraph& o, const std::string& x) { return o.op("Sigmoid", {x}); }
  static hlo::Val emit_derivative(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val s = b.logistic(x);
    return b.mul(s, b.sub(b.cst(1.0f, x.shape), s));
  }

  static std::vector<ProductionShape> production() {
    return {{"EfficientNet-B0 last-stage SE gate, 1152 channels, B=16", 16 * 1152}};
  }
};

struct Sigmoid : Activation<SigmoidFn> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static void register_contracts(Registry& r);  // contracts.cpp
};

}  // namespace veridl::prims
