// scale (the matrix kit, book ch. 10): y = by * x, field "by" (a finite, nonzero number; attention's 1/sqrt(d)).
// Any input shape. Reference: reference.hpp; fast kernel: kernel.hpp; contract: contracts.cpp (scale_has_vjp).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/scale/kernel.hpp"
#include "veridl/prims/scale/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Scale {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "scale";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    double by = 1.0;
    size_t size = 0;  // per example, resolved by infer
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j) { j["by"] = a.by; }
  static VShape infer(Attrs& a, InShapes in, const Where&) {
    a.size = in[0].size();
    return in[0];
  }
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {false}; }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::scale_forward(c.n * a.size, static_cast<float>(a.by), c.in[0], c.out);
    else ops::scale_forward(c.n * a.size, a.by, c.in[0], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::scale_forward(c.n * a.size, static_cast<float>(a.by), c.dy, c.dx[0]);
    else ops::scale_forward(c.n * a.size, a.by, c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"scale_has_vjp"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"[3, 4] by 0.125", {{"by", 0.125}}, {{{3, 4}}}}, {"2x3x3 by -3", {{"by", -3.0}}, {{{2, 3, 3}}}}};
  }
};

}  // namespace veridl::prims
