// layerScale's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from LayerScale::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/layerScale/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& LayerScale::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W`, `[T, D]` or flat)",
      R"(`y = γ ⊙ x` with one γ per channel, all starting at `init` (ConvNeXt's layer scale): the channel axis is the first of a `C x H x W` input and the last of a `[D]` or `[T, D]` one (CaiT, DeiT-III))",
      {{"init", R"(every γ's initial value (finite))"}}};
  return d;
}

}  // namespace veridl::prims
