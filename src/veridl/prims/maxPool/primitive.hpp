// maxPool (book ch. 4): max over k x k windows with a stride; "same"-style padding (in the net's pad style)
// when the window is larger than the stride, padded cells never win (-inf). Ties go to the first maximum in
// row-major window order, through the decision tape. Reference: reference.hpp; fast kernels: kernel.hpp;
// contract: contracts.cpp (this directory, prims/maxPool/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/maxPool/kernel.hpp"
#include "veridl/prims/maxPool/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct MaxPool {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "maxPool";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t size = 0, stride = 0;
    ops::MaxPoolShape shape;  // resolved by infer, B = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d) {
    d.saved = {{Elem::U32, a.shape.C * a.shape.OH() * a.shape.OW(), 0, false}};  // the arg-max per output
    d.bwd_reads_input = {false};
  }
  static ops::MaxPoolShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::maxpool_forward(at(a, c.n), c.in[0], c.out, c.saved32[0]);
    else ops::maxpool_forward(at(a, c.n), c.in[0], c.out, c.saved32[0], *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::maxpool_backward(at(a, c.n), c.saved32[0], c.dy, c.dx[0]);
    else ops::maxpool_backward(at(a, c.n), c.saved32[0], c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"maxPool2_has_vjp3_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
