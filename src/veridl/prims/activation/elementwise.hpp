// The elementwise activations that read their input in the backward, y_i = f(x_i), dx_i = f'(x_i) dy_i:
// sigmoid, swish, gelu, geluErf, hardSwish (books ch. 8-9, MobileNetV3). Each lives in its own directory
// (prims/<name>/primitive.hpp: a policy saying what f is, prims/<name>/contracts.cpp: its contract's
// registration, prims/<name>/kernel.cpp: its float kernels' instantiation per ISA variant) and this header turns
// a policy into everything else: the table entry (Activation<F>), the record the contract checks
// (ElementwiseOp<F>), its broken backwards (ElementwiseMutantOp<F>), the fast float32 kernels
// (prims/activation/kernel_impl.hpp) and the StableHLO emission. (relu and relu6 keep their own directories: their
// backward reads only a saved mask, not the input.)
//
// A policy F provides
//   kName, kContract, kChapter, kStatement   the NetSpec name, the book's contract name, its formula
//   kRegions                                 1: f is smooth. >1: f is piecewise; the piece of an element is
//                                            decided through the tape (region) and saved for the backward
//   template <class T> static uint8_t region(const T& x, Decisions& D)        (piecewise only)
//   template <class T> static T value(const T& x, uint8_t r)                  f on piece r
//   template <class T> static T derivative(const T& x, uint8_t r)             f', closed form, same atoms
//   static uint8_t region_f(float x); static float value_f(float x, uint8_t r), derivative_f(float, uint8_t)
//                                            the float kernels' versions (kernels/vmath.hpp, no libm call)
//   static std::vector<MutantInfo> mutants() and
//   template <class T> static T mutant_derivative(const std::string& kind, const T& x, uint8_t r)
//                                            its own realistic broken derivatives
//   static hlo::Val emit_value(hlo::Builder&, const hlo::Val& x), emit_derivative(...)
//                                            the exporter's f and f'; a piecewise f's emission decides
//                                            the pieces with compares that agree with region_f
//   static std::string emit_onnx_value(graph::OnnxGraph&, const std::string& x)
//                                            f as ONNX operators (the inference graph, export/onnx.hpp),
//                                            with the float kernels' constants and order of operations
//   static std::vector<ProductionShape> production()   real network shapes for the contract
//
// value/derivative are written from the atoms (calculus/atoms.hpp) and exactly embedded constants, so the
// contract check runs them in double (against Dual<double>), and over the prime fields, where the atoms
// are uninterpreted functions: a derivative that uses a different constant, a different atom argument or
// drops a term is rejected even when finite differences cannot see it.
#pragma once

#include <fmt/core.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/activation/head.hpp"
#include "veridl/prims/scale/reference.hpp"  // ops::ScaleOp (x -> k x), put before piecewise activations
#include "veridl/hlo/builder.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/kernels/parallel.hpp"
#include "veridl/kernels/vmath.hpp"
#include "veridl/vjp/combinators.hpp"
#include "veridl/vjp/record.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

namespace ops {

// ---- the reference, over any scalar type -----------------------------------------------------------------
// Writes y[n] and, for a piecewise f, r8[n] (each element's piece).
template <class F, class T>
void elementwise_forward(size_t n, const T* x, T* y, uint8_t* r8, Decisions& D) {
  for (size_t i = 0; i < n; ++i) {
    uint8_t r = 0;
    if constexpr (F::kRegions > 1) r8[i] = r = F::region(x[i], D);
    y[i] = F::value(x[i], r);
  }
}

// dx = f'(x) dy (overwrites dx).
template <class F, class T>
void elementwise_backward(size_t n, const T* x, const uint8_t* r8, const T* dy, T* dx) {
  for (size_t i = 0; i < n; ++i) dx[i] = F::derivative(x[i], F::kRegions > 1 ? r8[i] : uint8_t{0}) * dy[i];
}

// The record form: input {x}, output y; a piecewise f keeps each element's piece in Ctx::dec.
template <class F>
struct ElementwiseOp {
  size_t n = 1;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {n}; }
  size_t out_size() const { return n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(n);
    std::vector<uint8_t> r(n, 0);
    elementwise_forward<F>(n, in[0].data(), c.out.data(), r.data(), D);
    if constexpr (F::kRegions > 1) c.dec.assign(r.begin(), r.end());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    const std::vector<uint8_t> r = regions(c);
    Ins<T> g{Vec<T>(n)};
    elementwise_backward<F>(n, in[0].data(), r.data(), dy.data(), g[0].data());
    return g;
  }
  template <class T>
  std::vector<uint8_t> regions(const Ctx<T>& c) const {
    std::vector<uint8_t> r(n, 0);
    for (size_t i = 0; i < c.dec.size() && i < n; ++i) r[i] = static_cast<uint8_t>(c.dec[i]);
    return r;
  }
};

// The real op with one broken backward (forward untouched). Two mutants every activation has, and the
// policy's own (F::mutants()).
template <class F>
struct ElementwiseMutantOp : ElementwiseOp<F> {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    const size_t len = this->n;
    const std::vector<uint8_t> r = this->regions(c);
    Ins<T> g{Vec<T>(len)};
    for (size_t i = 0; i < len; ++i) {
      const T& x = in[0][i];
      if (kind == "scale_1.0001") g[0][i] = T(1.0001) * F::derivative(x, r[i]) * dy[i];
      else if (kind == "input_off_by_one") {
        const size_t j = (i + 1) % len;  // f' evaluated at the next element's input
        g[0][i] = F::derivative(in[0][j], r[j]) * dy[i];
      } else g[0][i] = F::mutant_derivative(kind, x, r[i]) * dy[i];
    }
    return g;
  }
};

}  // namespace ops

namespace kernels {

// ---- the fast float32 kernels (prims/activation/kernel_impl.hpp, compiled per ISA variant in each policy's
// directory: prims/<name>/kernel.cpp). y may alias x (read before write); dx may alias dy.
VERIDL_KERNEL_TEMPLATE(elementwise_forward, void(size_t n, const float* x, float* y, uint8_t* r8));
VERIDL_KERNEL_TEMPLATE(elementwise_backward, void(size_t n, const float* x, const uint8_t* r8, const float* dy, float* dx));

}  // namespace kernels

// A real network shape for an activation's contract (one trial, real tape).
struct ProductionShape {
  const char* label;
  size_t n;
};

// The record of an activation, or one of its mutants ("" = the real one).
template <class F>
Vjp make_elementwise_variant(size_t n, const std::string& variant) {
  if (variant.empty()) return make_vjp(F::kName, ops::ElementwiseOp<F>{n});
  ops::ElementwiseMutantOp<F> m;
  m.n = n;
  m.kind = variant;
  return make_vjp(std::string(F::kName) + "[" + variant + "]", m);
}

// The contract of an activation: odd and even sizes with normal and tie-heavy samples (run_contract adds a
// random tape for every config: every piece of a piecewise f), a piecewise f also behind x -> 3x (its kinks
// at +-3 exactly on the real tape), and the policy's production shapes.
template <class F>
void register_elementwise_contract(Registry& reg) {
  std::vector<ContractCase> cases;
  for (size_t n : {1, 2, 3, 5, 8, 17, 64})
    for (Sample smp : {Sample::Normal, Sample::Ties})
      cases.push_back({fmt::format("n={}{}", n, smp == Sample::Ties ? " ties" : ""),
                       [n](const std::string& v) { return make_elementwise_variant<F>(n, v); }, smp, false});
  if constexpr (F::kRegions > 1)
    for (size_t n : {1, 4, 9, 32})
      cases.push_back({fmt::format("n={} ties behind x -> 3x (exact kinks on the real tape)", n),
                       [n](const std::string& v) {
                         return vjp_comp(make_vjp("times3", ops::ScaleOp{n, 3.0}), make_elementwise_variant<F>(n, v));
                       },
                       Sample::Ties, false});
  for (const ProductionShape& p : F::production())
    cases.push_back({fmt::format("n={} ({})", p.n, p.label),
                     [n = p.n](const std::string& v) { return make_elementwise_variant<F>(n, v); }, Sample::Normal, true});
  std::vector<MutantInfo> mutants = {
      {"scale_1.0001", "dx scaled by 1.0001 (invisible to finite differences)"},
      {"input_off_by_one", "f' is evaluated at the next element's input (x[i+1])"}};
  for (MutantInfo& m : F::mutants()) mutants.push_back(std::move(m));
  reg.add({F::kContract, F::kChapter, F::kStatement, {}, std::move(cases), std::move(mutants)});
}

namespace prims {

using namespace graph;

// The table entry of an activation. A directory's primitive.hpp declares
//   struct Sigmoid : Activation<SigmoidFn> {
//     static void register_contracts(Registry& r);
//   };
// and its contracts.cpp defines that as register_elementwise_contract<SigmoidFn>(r) (the checker's six scalar
// types are instantiated there, one translation unit per activation).
template <class F>
struct Activation : ElementwiseActivationHead {
  static constexpr const char* kName = F::kName;
  static void declare(const Attrs& a, Decl& d) {
    if constexpr (F::kRegions > 1) d.saved = {{Elem::U8, a.width, 0, false}};  // each element's piece
    d.bwd_reads_input = {true};
  }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    uint8_t* r8 = F::kRegions > 1 ? c.saved8[0] : nullptr;
    if constexpr (std::is_same_v<B, Fast>) kernels::elementwise_forward<F>(c.n * a.width, c.in[0], c.out, r8);
    else ops::elementwise_forward<F>(c.n * a.width, c.in[0], c.out, r8, *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    const uint8_t* r8 = F::kRegions > 1 ? c.saved8[0] : nullptr;
    if constexpr (std::is_same_v<B, Fast>) kernels::elementwise_backward<F>(c.n * a.width, c.in[0], r8, c.dy, c.dx[0]);
    else ops::elementwise_backward<F>(c.n * a.width, c.in[0], r8, c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n) {
    e.b.comment(fmt::format("{} {}", n.name, F::kName));
    e.set_out(n, F::emit_value(e.b, e.in(n, 0)));
  }
  static void emit_backward(Emission& e, const Node& n) {
    if (!e.want_dx(n, 0)) return;
    hlo::Builder& b = e.b;
    b.comment(fmt::format("{} {} backward", n.name, F::kName));
    b.tag = F::kContract;  // dx = f'(x) dy
    const hlo::Val& x = e.in(n, 0);
    e.set_dx(n, 0, b.mul(F::emit_derivative(b, x), b.reshape(e.dy(n), x.shape)));
    b.tag.clear();
  }
  // The inference graph: F's value in ONNX operators (F::emit_onnx_value), elementwise on any shape.
  static void emit_onnx(OnnxEmission& e, const Node& n) {
    e.o.begin(n.name);
    e.set_out(n, F::emit_onnx_value(e.o, e.in(n, 0)));
  }
  static std::vector<std::string> contracts() { return {F::kContract}; }
  static std::vector<Example> examples() {
    return {{"flat 7", nlohmann::json::object(), {{{7}}}},
            {"2x3x3", nlohmann::json::object(), {{{2, 3, 3}}}},
            {"4x4x4", nlohmann::json::object(), {{{4, 4, 4}}}}};
  }
};

}  // namespace prims
}  // namespace veridl
