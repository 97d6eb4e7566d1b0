// relu6's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Relu6::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/relu6/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Relu6::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`min(max(x, 0), 6)` (MobileNetV2); the gradient passes iff `0 < x < 6` strictly: 0 at exactly 0 and at exactly 6)",
      {}};
  return d;
}

}  // namespace veridl::prims
