// mul's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Mul::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/mul/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Mul::doc() {
  static const graph::LayerDoc d{
      R"(2: a value, and one of the same shape or one value per channel `[C]`)",
      R"(`a ⊙ s` (the book's `elemwiseProduct`: squeeze-excitation's gate))",
      {}};
  return d;
}

}  // namespace veridl::prims
