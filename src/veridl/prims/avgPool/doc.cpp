// avgPool's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from AvgPool::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/avgPool/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& AvgPool::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W`)",
      R"(mean over `size x size` windows; `same` pads in the net's `padStyle` with zeros, and the divisor is always `size²`, padded cells included (PyTorch's `count_include_pad=True` default): a border window averages its in-range cells over the full window)",
      {{"size", R"(window size: `size x size`)"},
       {"stride", R"(the window's step)", nullptr, R"(= size)"},
       {"padding", R"(`valid`: no padding; `same`: zeros placed by the net's `padStyle`, counted in the divisor)"}}};
  return d;
}

}  // namespace veridl::prims
