// layerNorm (book ch. 9, ConvNeXt): normalisation over one axis at every position, then a per-channel affine
// gamma, beta. Field "axis": "channels" (a C x H x W input: the C channels of each pixel, ConvNeXt's
// channels-first LayerNorm2d) or "last" (the last dimension: [T, D] tokens, flat [D] features); absent, it
// is "channels" for a 3-D input and "last" otherwise. Field "eps" (> 0; default 1e-5, PyTorch's; ConvNeXt's
// blocks use 1e-6). Biased variance, no running state: Train and Eval compute the same.
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (layerNorm_has_vjp_correct),
// all in this directory (prims/layerNorm/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/layerNorm/kernel.hpp"
#include "veridl/prims/layerNorm/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct LayerNorm {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "layerNorm";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  enum class Axis { Auto, Channels, Last };  // Auto: the field is absent (resolved by the input's rank)
  struct Attrs {
    Axis axis = Axis::Auto;
    double eps = ops::kLayerNormEps;
    ops::LayerNormShape shape;  // resolved by infer, N = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);
  static ops::LayerNormShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }

  // saved: r [positions], xhat [count] (training only; the Eval forward writes neither).
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::LayerNormShape s = at(a, c.n);
    T* r = c.mode == Mode::Train ? c.saved[0] : nullptr;
    T* xhat = c.mode == Mode::Train ? c.saved[1] : nullptr;
    if constexpr (std::is_same_v<B, Fast>) kernels::layernorm_forward(s, a.eps, c.in[0], c.p[0], c.p[1], c.out, r, xhat);
    else ops::layernorm_forward(s, a.eps, c.in[0], c.p[0], c.p[1], c.out, r, xhat);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    const ops::LayerNormShape s = at(a, c.n);
    if constexpr (std::is_same_v<B, Fast>)
      kernels::layernorm_backward(s, c.p[0], c.saved[0], c.saved[1], c.dy, c.dx[0], c.g[0], c.g[1]);
    else ops::layernorm_backward(s, c.p[0], c.saved[0], c.saved[1], c.dy, c.dx[0], c.g[0], c.g[1]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"layerNorm_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
