// softmax (the matrix kit's row-wise softmax; book ch. 2's softmax, ch. 10's attention weights): over the last
// axis of any value (every row of [T, K], of [H, T, K], or a flat [K]), stable (shifted by the row maximum, the
// first maximum on the decision tape). The backward reads the node's own output p: dz = p (dy - <p, dy>).
// Reference: prims/softmaxCE/reference.hpp (softmax_forward, softmax_backward, shared with the loss); fast
// kernels: kernel.hpp; contract: contracts.cpp (softmax_has_vjp).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/softmax/kernel.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Softmax {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "softmax";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t rows = 1, K = 1;  // per example, resolved by infer
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) {
    d.bwd_reads_input = {false};
    d.bwd_reads_output = true;
  }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::softmax_rows_forward(c.n * a.rows, a.K, c.in[0], c.out);
    else ops::softmax_forward(ops::SoftmaxShape{c.n * a.rows, a.K}, c.in[0], c.out, *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::softmax_rows_backward(c.n * a.rows, a.K, c.out, c.dy, c.dx[0]);
    else ops::softmax_backward(ops::SoftmaxShape{c.n * a.rows, a.K}, c.out, c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"softmax_has_vjp"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"[4, 5] rows", nlohmann::json::object(), {{{4, 5}}}}, {"[2, 3, 7] rows", nlohmann::json::object(), {{{2, 3, 7}}}},
            {"flat 6", nlohmann::json::object(), {{{6}}}}};
  }
};

}  // namespace veridl::prims
