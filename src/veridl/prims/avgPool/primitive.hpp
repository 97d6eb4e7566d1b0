// avgPool (book ch. 6): the average over size x size windows with a stride (default: the size), "valid"
// (default) or "same" padding in the net's pad style. Padded cells count as zeros and the divisor is always
// the full window size^2 (PyTorch's count_include_pad=True default), so a border window of a "same" pool is
// not the mean of its in-range cells. Linear: no decisions. Reference: reference.hpp; fast kernels:
// kernel.hpp; contract: contracts.cpp (this directory, prims/avgPool/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/avgPool/kernel.hpp"
#include "veridl/prims/avgPool/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct AvgPool {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "avgPool";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t size = 0, stride = 0;
    bool same = false;
    ops::AvgPoolShape shape;  // resolved by infer, B = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {false}; }  // linear: nothing saved
  static ops::AvgPoolShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::avgpool_forward(at(a, c.n), c.in[0], c.out);
    else ops::avgpool_forward(at(a, c.n), c.in[0], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::avgpool_backward(at(a, c.n), c.dy, c.dx[0]);
    else ops::avgpool_backward(at(a, c.n), c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"avgPool_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
