// clsPool (book ch. 10): tokens [T, D] -> the CLS token's row [D] (ViT's pooling before the head). No fields,
// no parameters. Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp
// (clsPool_has_vjp_correct), all in this directory (prims/clsPool/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/clsPool/kernel.hpp"
#include "veridl/prims/clsPool/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct ClsPool {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "clsPool";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t T = 0, D = 0;
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {false}; }
  static ops::ClsPoolShape at(const Attrs& a, size_t n) { return {n, a.T, a.D}; }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::cls_pool_forward(at(a, c.n), c.in[0], c.out);
    else ops::cls_pool_forward(at(a, c.n), c.in[0], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::cls_pool_backward(at(a, c.n), c.dy, c.dx[0]);
    else ops::cls_pool_backward(at(a, c.n), c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"clsPool_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"[5, 3]", nlohmann::json::object(), {{{5, 3}}}}, {"[1, 4]", nlohmann::json::object(), {{{1, 4}}}}};
  }
};

}  // namespace veridl::prims
