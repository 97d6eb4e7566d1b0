// sdpa (book ch. 10): multi-head scaled dot-product attention of three token values q, k, v ([T, D] each, named
// in the layer's "inputs"): out[:, head h] = softmax(q_h k_h^T / sqrt(d)) v_h, d = D / heads. Fields "heads"
// (D must be a multiple) and "causal" (default false: with true, token i attends to tokens j <= i only).
// No parameters; the projections are dense layers around it (the transformerEncoder block, net/lower.cpp).
// Reference: reference.hpp; fast kernels: kernel.hpp; contracts: contracts.cpp (sdpa_back_Q/K/V_correct),
// all in this directory (prims/sdpa/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/sdpa/kernel.hpp"
#include "veridl/prims/sdpa/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Sdpa {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "sdpa";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 3;
  struct Attrs {
    ops::SdpaShape shape;  // heads and causal parsed; T and D resolved by infer, N = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);
  static ops::SdpaShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }

  // saved: m and inv per (example, head, row) (training only; the Eval forward writes neither).
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::SdpaShape s = at(a, c.n);
    T* m = c.mode == Mode::Train ? c.saved[0] : nullptr;
    T* inv = c.mode == Mode::Train ? c.saved[1] : nullptr;
    if constexpr (std::is_same_v<B, Fast>) kernels::sdpa_forward(s, c.in[0], c.in[1], c.in[2], c.out, m, inv);
    else ops::sdpa_forward(s, c.in[0], c.in[1], c.in[2], c.out, m, inv, *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    const ops::SdpaShape s = at(a, c.n);
    if constexpr (std::is_same_v<B, Fast>)
      kernels::sdpa_backward(s, c.in[0], c.in[1], c.in[2], c.saved[0], c.saved[1], c.dy, c.dx[0], c.dx[1], c.dx[2]);
    else
      ops::sdpa_backward(s, c.in[0], c.in[1], c.in[2], c.saved[0], c.saved[1], c.dy, c.dx[0], c.dx[1], c.dx[2]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"sdpa_back_Q_correct", "sdpa_back_K_correct", "sdpa_back_V_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
