// flatten's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Flatten::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/flatten/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Flatten::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W`)",
      R"(`C x H x W` → `C*H*W` (C order))",
      {}};
  return d;
}

}  // namespace veridl::prims
