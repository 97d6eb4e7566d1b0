// layerNorm's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from LayerNorm::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/layerNorm/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& LayerNorm::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(`y = γ (x − mean) / √(var + eps) + β` with the mean and the biased variance over one axis at every position: `channels` normalises the C channels of each pixel of a `C x H x W` input (ConvNeXt's channels-first LayerNorm2d), `last` the last dimension (`[T, D]` tokens, flat features); γ `[C]` starts at 1, β at 0; no running state: training and evaluation compute the same (ConvNeXt uses eps 1e-6))",
      {{"axis", R"(the axis normalised: `channels` (each pixel's C values) or `last` (the last dimension))", R"(`channels` or `last`)", R"(`channels` on a `C x H x W` input, `last` otherwise)"},
       {"eps", R"(added to the variance (> 0))"}}};
  return d;
}

}  // namespace veridl::prims
