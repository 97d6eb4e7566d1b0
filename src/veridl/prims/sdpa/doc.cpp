// sdpa's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Sdpa::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/sdpa/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Sdpa::doc() {
  static const graph::LayerDoc d{
      R"(3: q, k, v, tokens `[T, D]` of one shape)",
      R"(multi-head scaled dot-product attention without projections: head `h` uses columns `[h d, (h+1) d)`, `d = D / heads`, and `out_h = softmax(q_h k_hᵀ / √d) v_h` (row-wise, max-shifted); `causal`: token `i` attends to tokens `j ≤ i` only. Keeps two floats per (head, token) for its backward, never the score matrix)",
      {{"heads", R"(attention heads (dividing the token width D))"},
       {"causal", R"(token `i` attends to tokens `j ≤ i` only)"}}};
  return d;
}

}  // namespace veridl::prims
