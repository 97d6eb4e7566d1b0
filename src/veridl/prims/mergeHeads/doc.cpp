// mergeHeads's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from MergeHeads::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/mergeHeads/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& MergeHeads::doc() {
  static const graph::LayerDoc d{
      R"(1, heads `[H, T, d]`)",
      R"(tokens `[T, H d]` (splitHeads' inverse))",
      {}};
  return d;
}

}  // namespace veridl::prims
