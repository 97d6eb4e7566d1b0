// conv2d's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Conv2d::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/conv2d/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Conv2d::doc() {
  static const graph::LayerDoc d{
      R"(1, `C x H x W`)",
      R"(cross-correlation, OIHW kernel `[oc, ic/groups, k, k]`, zero padding; `groups` as PyTorch's `nn.Conv2d(groups=)`: `ic` and `oc` multiples of it, each output channel reads the `ic/groups` input channels of its group; `groups = ic = oc` is a depthwise conv (MobileNetV2's `[c, 1, 3, 3]`), `groups = ic` with `oc = m·ic` a channel multiplier m; He fan-in `(ic/groups)·k²`)",
      {{"ic", R"(input channels: the incoming activation's C)"},
       {"oc", R"(output channels)"},
       {"k", R"(kernel size: a `k x k` window)"},
       {"stride", R"(the window's step)"},
       {"padding", R"(`same`: output `ceil(size / stride)`, zero padding placed by the net's `padStyle`; `valid`: no padding)"},
       {"bias", R"(a learned bias per output channel)"},
       {"groups", R"(channel groups (`ic` and `oc` multiples of it; `groups = ic = oc`: depthwise))"}}};
  return d;
}

}  // namespace veridl::prims
