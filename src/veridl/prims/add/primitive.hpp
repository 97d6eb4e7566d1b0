// add (the book's biPath, additive fan-in): y = a + b, two values of the same shape; da = db = dy.
// The residual connection. Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp
// (biPath_has_vjp), all in this directory (prims/add/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/add/kernel.hpp"
#include "veridl/prims/add/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Add {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "add";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 2;
  struct Attrs {
    size_t width = 0;
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {false, false}; }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::AddShape s{c.n * a.width};
    if constexpr (std::is_same_v<B, Fast>) kernels::add_forward(s, c.in[0], c.in[1], c.out);
    else ops::add_forward(s, c.in[0], c.in[1], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    const ops::AddShape s{c.n * a.width};
    if constexpr (std::is_same_v<B, Fast>) kernels::add_backward(s, c.dy, c.dx[0], c.dx[1]);
    else ops::add_backward(s, c.dy, c.dx[0], c.dx[1]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"biPath_has_vjp"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"2x3x3", nlohmann::json::object(), {{{2, 3, 3}}, {{2, 3, 3}}}},
            {"flat 5", nlohmann::json::object(), {{{5}}, {{5}}}}};
  }
};

}  // namespace veridl::prims
