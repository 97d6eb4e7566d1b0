// geluErf (book ch. 9, the exact GELU; PyTorch's nn.GELU() default), elementwise:
//   y = 0.5 x (1 + erf(u)),  u = x / sqrt(2)
//   dx = [0.5 (1 + erf(u)) + x phi(x)] dy,  x phi(x) = 0.5 x (2/sqrt(pi)) exp(-u^2) / sqrt(2)
//                                                                          geluErf_has_vjp_correct
// Written on the atoms erf and exp with the constant atom 2/sqrt(pi) and the algebraic 1/sqrt(2), exactly
// the pieces Dual's erf rule uses (calculus/atoms.hpp). The tanh form is the primitive gelu (the book's); a
// NetSpec chooses the form by name. A smooth activation on prims/activation/elementwise.hpp.
#pragma once

#include "veridl/prims/activation/elementwise.hpp"

namespace veridl::prims {

struct GeluErfFn {
  static constexpr const char* kName = "geluErf";
  static constexpr const char* kContract = "geluErf_has_vjp_correct";
  static constexpr int kChapter = 9;
  static constexpr const char* kStatement =
      "dx_i = [0.5 (1 + erf(u)) + 0.5 x (2/sqrt(pi)) exp(-u^2) / sqrt(2)] dy_i,  u = x / sqrt(2)";
  static constexpr int kRegions = 1;
  static constexpr float kInvSqrt2F = 0.70710678118654752f;
  static constexpr float kInvSqrt2PiF = 0.39894228040143268f;  // 1 / sqrt(2 pi)

  template <class T>
  static T value(const T& x, uint8_t) {
    return T(0.5) * x * (T(1) + aerf(x * Consts<T>::inv_sqrt2()));
  }
  template <class T>
  static T derivative(const T& x, uint8_t) {
    const T u = x * Consts<T>::inv_sqrt2();
    return T(0.5) * (T(1) + aerf(u)) +
           T(0.5) * x * Consts<T>::two_over_sqrt_pi() * aexp(-(u * u)) * Consts<T>::inv_sqrt2();
  }
  static float value_f(float x, uint8_t) { return 0.5f * x * (1.0f + kernels::vmath::verf(x * kInvSqrt2F)); }
  static float derivative_f(float x, uint8_t) {
    return 0.5f * (1.0f + kernels::vmath::verf(x * kInvSqrt2F)) + x * kInvSqrt2PiF * kernels::vmath::vexp(-0.5f * x * x);
  }

  static std::vector<MutantInfo> mutants() {
    return {{"pdf_exp_minus_x_squared", "the density term uses exp(-x^2), not exp(-x^2/2)"},
            {"missing_pdf_term", "dx = 0.5 (1 + erf(x/sqrt 2)) dy (the x phi(x) term dropped)"},
            {"pdf_constant_0.3989", "1/sqrt(2 pi) written 0.3989 (finite differences miss it)"},
            {"erf_of_x", "the first term uses erf(x), not erf(x/sqrt 2)"}};
  }
  template <class T>
  static T mutant_derivative(const std::string& kind, const T& x, uint8_t) {
    const T u = x * Consts<T>::inv_sqrt2();
    const T c = T(0.5) * Consts<T>::two_over_sqrt_pi() * Consts<T>::inv_sqrt2();
    if (kind == "pdf_exp_minus_x_squared") return T(0.5) * (T(1) + aerf(u)) + x * c * aexp(-(x * x));
    if (kind == "missing_pdf_term") return T(0.5) * (T(1) + aerf(u));
    if (kind == "pdf_constant_0.3989") return T(0.5) * (T(1) + aerf(u)) + x * T(0.3989) * aexp(-(u * u));
    if (kind == "erf_of_x") return T(0.5) * (T(1) + aerf(x)) + x * c * aexp(-(u * u));
    throw std::invalid_argument("unknown geluErf mutant '" + kind + "'");
  }

  static hlo::Val emit_value(hlo::Builder& b, const hlo::Val& x) {
    return b.mul(b.mul(x, 0.5f), b.add(b.erf(b.mul(x, kInvSqrt2F)), 1.0f));
  }
  // 0.5 x (1 + erf(x / sqrt 2)).
  static std::string emit_onnx_value(graph::OnnxGraph& o, const std::string& x) {
    const std::string erf = o.op("Erf", {o.op("Mul", {x, o.scalar(kInvSqrt2F)})});
    return o.op("Mul", {o.op("Mul", {x, o.scalar(0.5f)}), o.op("Add", {erf, o.scalar(1.0f)})});
  }
  static hlo::Val emit_derivative(hlo::Builder& b, const hlo::Val& x) {
    const hlo::Val cdf = b.mul(b.add(b.erf(b.mul(x, kInvSqrt2F)), 1.0f), 0.5f);
    const hlo::Val pdf = b.mul(b.exp(b.mul(b.mul(x, x), -0.5f)), kInvSqrt2PiF);
    return b.add(cdf, b.mul(x, pdf));
  }

  static std::vector<ProductionShape> production() {
    return {{"ViT-Tiny MLP hidden 197x768, B=2", 2 * 197 * 768}};
  }
};

struct GeluErf : Activation<GeluErfFn> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static void register_contracts(Registry& r);  // contracts.cpp
};

}  // namespace veridl::prims
