// clsPool's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from ClsPool::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/clsPool/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& ClsPool::doc() {
  static const graph::LayerDoc d{
      R"(1, tokens `[T, D]`)",
      R"(the CLS token's row `[D]` (row 0))",
      {}};
  return d;
}

}  // namespace veridl::prims
