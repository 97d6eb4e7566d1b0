// transpose's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Transpose::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/transpose/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Transpose::doc() {
  static const graph::LayerDoc d{
      R"(1, `[A, B]`)",
      R"(`[B, A]`)",
      {}};
  return d;
}

}  // namespace veridl::prims
