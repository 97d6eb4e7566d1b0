// sigmoid's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Sigmoid::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/sigmoid/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Sigmoid::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`1 / (1 + e^−x)` (EfficientNet's squeeze-excitation gate))",
      {}};
  return d;
}

}  // namespace veridl::prims
