// relu's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Relu::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/relu/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Relu::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`max(x, 0)`; ReLU'(0) = 0)",
      {}};
  return d;
}

}  // namespace veridl::prims
