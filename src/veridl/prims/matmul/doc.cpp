// matmul's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Matmul::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/matmul/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Matmul::doc() {
  static const graph::LayerDoc d{
      R"(2: `a [M, K]` and `b [K, P]`, or batches `[G, M, K]` and `[G, K, P]`)",
      R"(the product of two activations `a b` per group (`a bᵀ` with `transposeB`: `b [G, P, K]`) — the matrix kit: attention by hand)",
      {{"transposeB", R"(multiply by `bᵀ`: `b` is `[G, P, K]`)"}}};
  return d;
}

}  // namespace veridl::prims
