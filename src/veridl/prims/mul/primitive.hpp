// mul (the book's elemwiseProduct, multiplicative fan-in): y = a (.) s, where s has a's shape, or is one
// value per channel ([C] against a [C, H, W]: the squeeze-excitation gate, broadcast over H x W).
//   da = s (.) dy,   ds[c] = sum_k a[c, k] dy[c, k]
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (elemwiseProduct_has_vjp),
// all in this directory (prims/mul/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/mul/kernel.hpp"
#include "veridl/prims/mul/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Mul {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "mul";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 2;
  struct Attrs {
    size_t C = 0, inner = 1;  // y[b, c, k] = a[b, c, k] s[b, c], k < inner
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {true, true}; }
  static ops::MulShape at(const Attrs& a, size_t n) { return {n, a.C, a.inner}; }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::mul_forward(at(a, c.n), c.in[0], c.in[1], c.out);
    else ops::mul_forward(at(a, c.n), c.in[0], c.in[1], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::mul_backward(at(a, c.n), c.in[0], c.in[1], c.dy, c.dx[0], c.dx[1]);
    else ops::mul_backward(at(a, c.n), c.in[0], c.in[1], c.dy, c.dx[0], c.dx[1]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"elemwiseProduct_has_vjp"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"2x3x3 by channel", nlohmann::json::object(), {{{2, 3, 3}}, {{2}}}},
            {"flat 6 elementwise", nlohmann::json::object(), {{{6}}, {{6}}}}};
  }
};

}  // namespace veridl::prims
