// relu (book ch. 3): y = x if x > 0 else 0, elementwise; the mask goes through the decision tape.
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (this directory, prims/relu/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/activation/head.hpp"
#include "veridl/prims/relu/kernel.hpp"
#include "veridl/prims/relu/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Relu : ElementwiseActivationHead {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "relu";
  static void declare(const Attrs& a, Decl& d) {
    d.saved = {{Elem::U8, a.width, 0, false}};  // the mask
    d.bwd_reads_input = {false};
  }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::ReluShape s{c.n * a.width};
    if constexpr (std::is_same_v<B, Fast>) kernels::relu_forward(s, c.in[0], c.out, c.saved8[0]);
    else ops::relu_forward(s, c.in[0], c.out, c.saved8[0], *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    const ops::ReluShape s{c.n * a.width};
    if constexpr (std::is_same_v<B, Fast>) kernels::relu_backward(s, c.saved8[0], c.dy, c.dx[0]);
    else ops::relu_backward(s, c.saved8[0], c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"relu_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"flat 7", nlohmann::json::object(), {{{7}}}}, {"2x3x3", nlohmann::json::object(), {{{2, 3, 3}}}}};
  }
};

}  // namespace veridl::prims
