// splitHeads's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from SplitHeads::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/splitHeads/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& SplitHeads::doc() {
  static const graph::LayerDoc d{
      R"(1, tokens `[T, D]`)",
      R"(heads `[H, T, D/H]`: head `h` takes columns `[h d, (h+1) d)`)",
      {{"heads", R"(heads (dividing the token width D))"}}};
  return d;
}

}  // namespace veridl::prims
