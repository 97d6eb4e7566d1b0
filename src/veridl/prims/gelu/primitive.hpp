// gelu (book ch. 9: ConvNeXt, ViT), the tanh form the book and the original use:
//   y = 0.5 x (1 + t),  t = tanh(u),  u = c (x + k x^3),  c = sqrt(2/pi),  k = 0.044715
//   dx = [0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)] dy                  gelu_has_vjp_correct
// c is the constant atom 2/sqrt(pi) times the algebraic 1/sqrt(2) (calculus/atoms.hpp), k is exact: over
// the prime fields a backward whose c or k is off in the fifth digit is rejected, which finite differences
// in float cannot see. The erf form (PyTorch's nn.GELU() default) is the primitive geluErf; a NetSpec
// chooses the form by name. A smooth activation on prims/activation/elementwise.hpp; contract: contracts.cpp.
#pragma once

#include "veridl/prims/activation/elementwise.hpp"

namespace veridl::prims {

struct GeluFn {
  static constexpr const char* kName = "gelu";
  static constexpr const char* kContract = "gelu_has_vjp_correct";
  static constexpr int kChapter = 9;
  static constexpr const char* kStatement =
      "dx_i = [0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)] dy_i,  t = tanh(c (x + k x^3)), c = sqrt(2/pi), "
      "k = 0.044715";
  static constexpr int kRegions = 1;
  static constexpr double kCubic = 0.044715;
  static constexpr float kSqrt2OverPiF = 0.7978845608028654f;

  template <class T>
  static T sqrt_2_over_pi() {
    return Consts<T>::two_over_sqrt_pi() * Consts<T>::inv_sqrt2();
  }
  // The derivative with the constants as parameters: the real one and the mutants share it.
  template <class T>
  static T derivative_with(const T& x, const T& c, const T& k, const T& three, bool tanh_sq_plus = false) {
    const T t = atanh_(c * (x + k * x * x * x));
    const T sech2 = tanh_sq_plus ? T(1) + t * t : T(1) - t * t;
    return T(0.5) * (T(1) + t) + T(0.5) * x * sech2 * c * (T(1) + three * k * x * x);
  }

  template <class T>
  static T value(const T& x, uint8_t) {
    const T t = atanh_(sqrt_2_over_pi<T>() * (x + T(kCubic) * x * x * x));
    return T(0.5) * x * (T(1) + t);
  }
  template <class T>
  static T derivative(const T& x, uint8_t) {
    return derivative_with(x, sqrt_2_over_pi<T>(), T(kCubic), T(3));
  }
  // The float kernels use 1 + tanh(u) = 2 sigmoid(2u) and 1 - tanh(u)^2 = 4 sigmoid(2u) sigmoid(-2u): no
  // cancellation where tanh(u) is near -1 or 1 (x far from 0), where 1 + t and 1 - t^2 computed from t lose
  // all their digits.
  static float value_f(float x, uint8_t) {
    float s, c;
    kernels::vmath::vsigmoid_pair(2.0f * kSqrt2OverPiF * (x + float(kCubic) * x * x * x), s, c);
    return x * s;
  }
  static float derivative_f(float x, uint8_t) {
    const float k = float(kCubic);
    float s, c;
    kernels::vmath::vsigmoid_pair(2.0f * kSqrt2OverPiF * (x + k * x * x * x), s, c);
    return s + 2.0f * x * s * c * kSqrt2OverPiF * (1.0f + 3.0f * k * x * x);
  }

  static std::vector<MutantInfo> mutants() {
    return {{"cubic_0.0447", "the backward's cubic constant is 0.0447, not 0.044715 (finite differences miss it)"},
            {"sqrt_2_over_pi_0.7979", "the backward's sqrt(2/pi) is written 0.7979 (finite differences miss it)"},
            {"missing_3", "the cubic term's derivative lacks its 3: (1 + k x^2)"},
            {"tanh_square_sign", "tanh' written 1 + t^2 instead of 1 - t^2"}};
  }
  template <class T>
  static T mutant_derivative(const std::string& kind, const T& x, uint8_t) {
    const T c = sqrt_2_over_pi<T>(), k(kCubic);
    if (kind == "cubic_0.0447") return derivative_with(x, c, T(0.0447), T(3));
    if (kind == "sqrt_2_over_pi_0.7979") return derivative_with(x, T(0.7979), k, T(3));
    if (kind == "missing_3") return derivative_with(x, c, k, T(1));
    if (kind == "tanh_square_sign") return derivative_with(x, c, k, T(3), true);
    throw std::invalid_argument("unknown gelu mutant '" + kind + "'");
  }

  static hlo::Val tanh_of_inner(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val x3 = b.mul(b.mul(x, x), x);
    return b.tanh(b.mul(b.add(x, b.mul(x3, float(kCubic))), kSqrt2OverPiF));
  }
  static hlo::Val emit_value(hlo::Builder& b, const hlo::Val& x) {
    return b.mul(b.mul(x, 0.5f), b.add(tanh_of_inner(b, x), 1.0f));
  }
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in emit_value's order.
  static std::string emit_onnx_value(graph::OnnxGraph& o, const std::string& x) {
    const std::string x3 = o.op("Mul", {o.op("Mul", {x, x}), x});
    const std::string inner = o.op("Mul", {o.op("Add", {x, o.op("Mul", {x3, o.scalar(float(kCubic))})}), o.scalar(kSqrt2OverPiF)});
    return o.op("Mul", {o.op("Mul", {x, o.scalar(0.5f)}), o.op("Add", {o.op("Tanh", {inner}), o.scalar(1.0f)})});
  }
  static hlo::Val emit_derivative(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val t = tanh_of_inner(b, x), one = b.cst(1.0f, x.shape);
    const hlo::Val sech2 = b.sub(one, b.mul(t, t));
    const hlo::Val inner_d = b.mul(b.add(b.mul(b.mul(x, x), 3.0f * float(kCubic)), 1.0f), kSqrt2OverPiF);
    return b.add(b.mul(b.add(t, 1.0f), 0.5f), b.mul(b.mul(b.mul(x, 0.5f), sech2), inner_d));
  }

  static std::vector<ProductionShape> production() {
    return {{"ConvNeXt-T stage-4 MLP hidden 3072x7x7, B=2", 2 * 3072 * 7 * 7}};
  }
};

struct Gelu : Activation<GeluFn> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static void register_contracts(Registry& r);  // contracts.cpp
};

}  // namespace veridl::prims
