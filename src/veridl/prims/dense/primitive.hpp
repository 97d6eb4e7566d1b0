// dense (book ch. 2): y = x W + b, x [B, fanIn], W [fanIn, fanOut], b [fanOut]. On tokens (ch. 10) the same
// map on every row: a [T, fanIn] input gives [T, fanOut] (the lifted row-wise op: B T rows of one product).
// Reference: reference.hpp; fast kernels: kernel.hpp; contracts: contracts.cpp (this directory, prims/dense/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/dense/kernel.hpp"
#include "veridl/prims/dense/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Dense {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "dense";
  static constexpr LayerUse kLayer = LayerUse::LayerWithActivation;
  static constexpr const char* kActivation = "identity";
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t fan_in = 0, fan_out = 0;
    size_t rows = 1;  // rows per example: T on a [T, fanIn] token input, 1 on a flat one (resolved by infer)
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);

  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::DenseShape s{c.n * a.rows, a.fan_in, a.fan_out};
    if constexpr (std::is_same_v<B, Fast>) kernels::dense_forward(s, c.in[0], c.p[0], c.p[1], c.out);
    else ops::dense_forward(s, c.in[0], c.p[0], c.p[1], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    const ops::DenseShape s{c.n * a.rows, a.fan_in, a.fan_out};
    if constexpr (std::is_same_v<B, Fast>) {
      kernels::dense_backward_weight(s, c.in[0], c.dy, c.g[0]);
      kernels::dense_backward_bias(s, c.dy, c.g[1]);
      if (c.dx[0]) kernels::dense_backward_input(s, c.p[0], c.dy, c.dx[0]);
    } else {
      ops::dense_backward_weight(s, c.in[0], c.dy, c.g[0]);
      ops::dense_backward_bias(s, c.dy, c.g[1]);
      if (c.dx[0]) ops::dense_backward_input(s, c.p[0], c.dy, c.dx[0]);
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
