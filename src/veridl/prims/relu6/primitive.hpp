// relu6 (book ch. 7, MobileNetV2): y = min(max(x, 0), 6), elementwise; both kinks go through the decision
// tape, and the gradient passes iff 0 < x < 6 strictly (dx = 0 at x = 0 and at x = 6: relu6_has_vjp_at).
// An activation: another layer's "activation" field may name it. Reference: reference.hpp; fast kernels:
// kernel.hpp; contract: contracts.cpp (this directory, prims/relu6/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/activation/head.hpp"
#include "veridl/prims/relu6/kernel.hpp"
#include "veridl/prims/relu6/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Relu6 : ElementwiseActivationHead {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "relu6";
  static void declare(const Attrs& a, Decl& d) {
    d.saved = {{Elem::U8, a.width, 0, false}};  // the mask 0 < x < 6
    d.bwd_reads_input = {false};
  }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::Relu6Shape s{c.n * a.width};
    if constexpr (std::is_same_v<B, Fast>) kernels::relu6_forward(s, c.in[0], c.out, c.saved8[0]);
    else ops::relu6_forward(s, c.in[0], c.out, c.saved8[0], *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    const ops::Relu6Shape s{c.n * a.width};
    if constexpr (std::is_same_v<B, Fast>) kernels::relu6_backward(s, c.saved8[0], c.dy, c.dx[0]);
    else ops::relu6_backward(s, c.saved8[0], c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"relu6_has_vjp_at"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"flat 7", nlohmann::json::object(), {{{7}}}},
            {"2x3x3", nlohmann::json::object(), {{{2, 3, 3}}}},
            {"4x4x4", nlohmann::json::object(), {{{4, 4, 4}}}}};
  }
};

}  // namespace veridl::prims
