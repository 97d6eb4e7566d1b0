// softmaxCE's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from SoftmaxCE::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/softmaxCE/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& SoftmaxCE::doc() {
  static const graph::LayerDoc d{
      R"(1, flat logits `[C]`, and the label)",
      R"(the loss: softmax cross-entropy with label smoothing, averaged over the batch (added by the engine after the last layer))",
      {{"labelSmoothing", R"(the smoothing ε: targets `(1 − ε) onehot + ε / C` (the recipe's `labelSmoothing`))"}}};
  return d;
}

}  // namespace veridl::prims
