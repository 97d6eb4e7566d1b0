// add's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Add::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/add/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Add::doc() {
  static const graph::LayerDoc d{
      R"(2, same shape)",
      R"(`a + b` (the book's `biPath`: residual connections))",
      {}};
  return d;
}

}  // namespace veridl::prims
