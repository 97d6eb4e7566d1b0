// hardSwish's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from HardSwish::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/hardSwish/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& HardSwish::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`x · relu6(x + 3) / 6` (MobileNetV3): 0 below −3, x above 3; at both kinks the gradient is the middle piece's (`−0.5` at −3, `1.5` at 3: PyTorch's `hardswish` backward))",
      {}};
  return d;
}

}  // namespace veridl::prims
