// patchTokens's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from PatchTokens::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/patchTokens/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& PatchTokens::doc() {
  static const graph::LayerDoc d{
      R"(1, a patchified image `D x h x w`)",
      R"(tokens `[1 + h w, D]`: the positions row-major (token `1 + i w + j` is pixel `(i, j)`), a learned CLS token `cls [D]` prepended, a learned position embedding `pos [1 + h w, D]` added; both start at 0 and are never weight-decayed (timm's `no_weight_decay`))",
      {}};
  return d;
}

}  // namespace veridl::prims
