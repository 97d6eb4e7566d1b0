// gelu's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Gelu::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/gelu/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Gelu::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(GELU, tanh form (the book's and the original's): `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))` = PyTorch's `GELU(approximate="tanh")`)",
      {}};
  return d;
}

}  // namespace veridl::prims
