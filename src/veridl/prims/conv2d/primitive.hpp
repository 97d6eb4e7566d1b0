// conv2d (book ch. 4): NCHW cross-correlation, OIHW kernel, stride, zero padding ("same" in the net's pad
// style, or "valid"), optional bias; "groups" (ch. 7, PyTorch's nn.Conv2d(groups=g)): ic and oc split
// into g slices, the kernel [oc, ic/g, k, k]; groups = ic = oc is MobileNet's depthwise conv, groups = ic
// with oc = m ic a channel multiplier. Reference: reference.hpp; fast kernels: kernel.hpp; contracts:
// contracts.cpp (this directory, prims/conv2d/): conv2d_* for groups 1, depthwise_* for groups = ic = oc,
// groupedConv2d_* otherwise.
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/conv2d/kernel.hpp"
#include "veridl/prims/conv2d/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Conv2d {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "conv2d";
  static constexpr LayerUse kLayer = LayerUse::LayerWithActivation;
  static constexpr const char* kActivation = "relu";
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t ic = 0, oc = 0, k = 0, stride = 1, groups = 1;
    bool same = true, bias = true;
    ops::Conv2dShape shape;  // resolved by infer, B = 1 (the executor sets the batch)
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);

  static ops::Conv2dShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const T* b = a.bias ? c.p[1] : nullptr;
    if constexpr (std::is_same_v<B, Fast>) kernels::conv2d_forward(at(a, c.n), c.in[0], c.p[0], b, c.out);
    else ops::conv2d_forward(at(a, c.n), c.in[0], c.p[0], b, c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    const ops::Conv2dShape s = at(a, c.n);
    if constexpr (std::is_same_v<B, Fast>) {
      kernels::conv2d_backward_weight(s, c.in[0], c.dy, c.g[0]);
      if (a.bias) kernels::conv2d_backward_bias(s, c.dy, c.g[1]);
      if (c.dx[0]) kernels::conv2d_backward_input(s, c.p[0], c.dy, c.dx[0]);
    } else {
      ops::conv2d_backward_weight(s, c.in[0], c.dy, c.g[0]);
      if (a.bias) ops::conv2d_backward_bias(s, c.dy, c.g[1]);
      if (c.dx[0]) ops::conv2d_backward_input(s, c.p[0], c.dy, c.dx[0]);
    }
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts();
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
