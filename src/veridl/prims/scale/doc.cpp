// scale's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Scale::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/scale/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Scale::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`by · x` (attention's `1/√d`))",
      {{"by", R"(the factor (finite, nonzero))"}}};
  return d;
}

}  // namespace veridl::prims
