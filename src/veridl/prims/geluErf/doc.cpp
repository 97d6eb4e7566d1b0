// geluErf's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from GeluErf::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/geluErf/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& GeluErf::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(GELU, exact erf form: `0.5 x (1 + erf(x / √2))` = PyTorch's `nn.GELU()` default; a spec chooses the form by the name)",
      {}};
  return d;
}

}  // namespace veridl::prims
