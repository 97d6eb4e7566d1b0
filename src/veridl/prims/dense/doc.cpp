// dense's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Dense::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/dense/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Dense::doc() {
  static const graph::LayerDoc d{
      R"(1, flat or tokens `[T, fanIn]`)",
      R"(`y = x W + b`, W `[fanIn, fanOut]`; on tokens the same product on every token (`[T, fanOut]`, PyTorch's `nn.Linear` on `[B, T, D]`))",
      {{"fanIn", R"(input features: the incoming activation's size, or a token's width)"},
       {"fanOut", R"(output features (the class count, for the head))"}}};
  return d;
}

}  // namespace veridl::prims
