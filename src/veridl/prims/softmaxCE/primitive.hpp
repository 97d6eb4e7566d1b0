// softmaxCE (book ch. 2): the loss node. Mean softmax cross-entropy over the batch against the smoothed
// target (1 - eps) onehot + eps / K; the max-shifted softmax goes through the decision tape. Its output is
// one scalar for the whole batch; its backward is seeded with dL. Added by the lowering, not a NetSpec layer.
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (this directory, prims/softmaxCE/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/softmaxCE/kernel.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct SoftmaxCE {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "softmaxCE";
  static constexpr LayerUse kLayer = LayerUse::Internal;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    double smoothing = 0.0;
    size_t classes = 0;
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j) { j["labelSmoothing"] = a.smoothing; }
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d) {
    d.saved = {{Elem::Scalar, a.classes, 0, false}};  // the probabilities
    d.bwd_reads_input = {false};
    d.batched_output = false;
  }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    const ops::SoftmaxShape s{c.n, a.classes, c.mean_over};
    if constexpr (std::is_same_v<B, Fast>)
      c.out[0] = kernels::softmax_ce_forward(s, static_cast<float>(a.smoothing), c.labels, c.in[0], c.saved[0]);
    else
      c.out[0] = ops::softmax_ce_forward(s, a.smoothing, c.labels, c.in[0], c.saved[0], *c.D);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    const ops::SoftmaxShape s{c.n, a.classes, c.mean_over};
    if constexpr (std::is_same_v<B, Fast>)
      kernels::softmax_ce_backward(s, static_cast<float>(a.smoothing), c.labels, c.saved[0], c.dy[0], c.dx[0]);
    else
      ops::softmax_ce_backward(s, a.smoothing, c.labels, c.saved[0], c.dy[0], c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static std::vector<std::string> contracts() { return {"softmaxCE_grad"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"K=5", {{"labelSmoothing", 0.0}}, {{{5}}}}, {"K=10 eps=0.1", {{"labelSmoothing", 0.1}}, {{{10}}}}};
  }
};

}  // namespace veridl::prims
