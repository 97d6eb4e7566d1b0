// softmax's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Softmax::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/softmax/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Softmax::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(softmax over the last axis of every row (max-shifted; attention's weights))",
      {}};
  return d;
}

}  // namespace veridl::prims
