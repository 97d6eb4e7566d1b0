// swish's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Swish::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/swish/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Swish::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`x · sigmoid(x)` (SiLU; EfficientNet's activation))",
      {}};
  return d;
}

}  // namespace veridl::prims
