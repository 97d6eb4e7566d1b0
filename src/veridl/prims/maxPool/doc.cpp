// maxPool's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from MaxPool::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/maxPool/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& MaxPool::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W`)",
      R"(max over windows; "same" padding (excluded cells, `-inf`) when `size > stride`; ties to the first maximum)",
      {{"size", R"(window size: `size x size`)"},
       {"stride", R"(the window's step)", nullptr, R"(= size)"}}};
  return d;
}

}  // namespace veridl::prims
