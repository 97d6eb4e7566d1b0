// dropPath's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from DropPath::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/dropPath/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& DropPath::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(stochastic depth on one branch: the same with one decision per example (the whole example's value kept and scaled, or zeroed); usually placed by the top-level `dropPath`)",
      {{"rate", R"(the probability of dropping an example's whole branch, in `[0, 1)`)"}}};
  return d;
}

}  // namespace veridl::prims
