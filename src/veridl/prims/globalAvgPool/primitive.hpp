// globalAvgPool (book ch. 6, globalAvgPoolFlat): the mean of every channel over H x W, C x H x W -> a flat
// [C] per example (the original's [B, C]), ready for a dense head. Linear: no decisions. Reference:
// reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (this directory, prims/globalAvgPool/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/globalAvgPool/kernel.hpp"
#include "veridl/prims/globalAvgPool/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct GlobalAvgPool {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "globalAvgPool";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t C = 0, H = 0, W = 0;  // resolved by infer
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {false}; }  // linear: nothing saved
  static ops::GlobalAvgPoolShape at(const Attrs& a, size_t n) { return {n, a.C, a.H, a.W}; }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::global_avgpool_forward(at(a, c.n), c.in[0], c.out);
    else ops::global_avgpool_forward(at(a, c.n), c.in[0], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::global_avgpool_backward(at(a, c.n), c.dy, c.dx[0]);
    else ops::global_avgpool_backward(at(a, c.n), c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"globalAvgPoolFlat_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"3x4x4", nlohmann::json::object(), {{{3, 4, 4}}}},
            {"2x5x3 (odd plane)", nlohmann::json::object(), {{{2, 5, 3}}}},
            {"4x1x1", nlohmann::json::object(), {{{4, 1, 1}}}}};
  }
};

}  // namespace veridl::prims
