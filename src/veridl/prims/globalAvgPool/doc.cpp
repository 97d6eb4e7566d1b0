// globalAvgPool's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from GlobalAvgPool::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/globalAvgPool/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& GlobalAvgPool::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W`)",
      R"(the mean of each channel over `H x W`: a flat `[C]` (`y[c] = Σ x[c,h,w] / (H·W)`), ready for a `dense` head)",
      {}};
  return d;
}

}  // namespace veridl::prims
