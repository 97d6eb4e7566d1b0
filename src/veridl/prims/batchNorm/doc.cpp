// batchNorm's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from BatchNorm::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/batchNorm/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& BatchNorm::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W` or flat)",
      R"(batch statistics in training, running statistics (EMA 0.1) in evaluation, ε 1e-5)",
      {}};
  return d;
}

}  // namespace veridl::prims
