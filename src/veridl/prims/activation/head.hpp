// The table-entry head every elementwise activation shares (relu, relu6 and the Activation<F> template of
// elementwise.hpp): one input, no fields, usable in another layer's "activation" field, its attributes the
// number of elements per example. A primitive derives from it and adds kName, declare, forward, backward, ...
#pragma once

#include <nlohmann/json.hpp>

#include "veridl/graph/ir.hpp"

namespace veridl::prims {

struct ElementwiseActivationHead {
  static constexpr graph::LayerUse kLayer = graph::LayerUse::Layer;
  static constexpr bool kIsActivation = true;  // may be named by another layer's "activation" field
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t width = 0;  // elements per example
  };
  static Attrs parse(graph::Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static graph::VShape infer(Attrs& a, graph::InShapes in, const graph::Where&) {
    a.width = in[0].size();
    return in[0];
  }
};

}  // namespace veridl::prims
