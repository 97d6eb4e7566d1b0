// dropout (per element) and, through the same head, dropPath (stochastic depth, prims/dropPath/): in Mode::Train
// y = keep ? x / q : 0 with keep probability q = 1 - rate; in Mode::Eval the identity. Field "rate" in [0, 1)
// (default 0.1). The decisions are saved for the backward (training only) and drawn from the node's key of the
// step (Call::key, set by net::Executor::set_noise from the run's seed and the global step), so a run is
// reproducible and its resume draws what the uninterrupted run would have.
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (dropout_has_vjp_correct), all in
// this directory (prims/dropout/).
#pragma once

#include <algorithm>
#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/dropout/kernel.hpp"
#include "veridl/prims/dropout/reference.hpp"

namespace veridl::prims {

using namespace graph;

// What dropout and dropPath share: all but their name, contracts and examples.
template <bool kPerExample>
struct DropHead {
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    double rate = 0.1;
    ops::DropShape shape{1, 1, kPerExample};  // resolved by infer, N = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j) { j["rate"] = a.rate; }
  static VShape infer(Attrs& a, InShapes in, const Where&) {
    a.shape.width = in[0].size();
    return in[0];
  }
  static void declare(const Attrs& a, Decl& d) {
    const size_t per = kPerExample ? 1 : a.shape.width;
    d.saved = {{Elem::U8, per, 0, /*training_only=*/true}};  // the decisions
    d.bwd_reads_input = {false};
    d.keep_per_example = per;
  }
  static ops::DropShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    ops::DropShape s = at(a, c.n);
    s.first = c.first_example;
    if (c.mode == Mode::Eval) {
      if (c.out != c.in[0]) std::copy_n(c.in[0], s.count(), c.out);
      return;
    }
    if constexpr (std::is_same_v<B, Fast>) kernels::drop_forward(s, a.rate, c.key, c.in[0], c.out, c.saved8[0]);
    else ops::drop_forward(s, a.rate, c.key, c.in[0], c.out, c.saved8[0], *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    const ops::DropShape s = at(a, c.n);
    if constexpr (std::is_same_v<B, Fast>) kernels::drop_backward(s, a.rate, c.saved8[0], c.dy, c.dx[0]);
    else ops::drop_backward(s, a.rate, c.saved8[0], c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
};

struct Dropout : DropHead<false> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "dropout";
  static std::vector<std::string> contracts() { return {"dropout_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
