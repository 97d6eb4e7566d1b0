// layerScale (book ch. 9; ConvNeXt, CaiT, DeiT-III): y = gamma (.) x with one learnt scale per channel. The
// channel axis is the first dimension of a C x H x W input (ConvNeXt, NCHW) and the last of a [D] or [T, D]
// input (CaiT / DeiT-III tokens). Field "init" (finite; default 1e-6, ConvNeXt's layer_scale_init_value):
// the value every gamma starts at (Init::Const).
//   dx = gamma (.) dy,   dgamma[c] = sum dy x
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (layerScale_has_vjp_correct),
// all in this directory (prims/layerScale/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/layerScale/kernel.hpp"
#include "veridl/prims/layerScale/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct LayerScale {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "layerScale";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    double init = ops::kLayerScaleInit;
    ops::LayerScaleShape shape;  // resolved by infer, N = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j) { j["init"] = a.init; }
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);
  static ops::LayerScaleShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::layerscale_forward(at(a, c.n), c.in[0], c.p[0], c.out);
    else ops::layerscale_forward(at(a, c.n), c.in[0], c.p[0], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>)
      kernels::layerscale_backward(at(a, c.n), c.in[0], c.p[0], c.dy, c.dx[0], c.g[0]);
    else ops::layerscale_backward(at(a, c.n), c.in[0], c.p[0], c.dy, c.dx[0], c.g[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"layerScale_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
