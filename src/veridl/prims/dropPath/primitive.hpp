// dropPath (stochastic depth; book ch. 9-10, ConvNeXt, EfficientNet, ViT): one decision per example, keeping or
// dropping the whole residual branch it is placed on: in Mode::Train y = keep_b ? x / q : 0 for every element of
// example b, q = 1 - rate; in Mode::Eval the identity. Field "rate" in [0, 1) (default 0.1). A NetSpec's
// top-level "dropPath" puts one on every residual block's branch, the rate ramping linearly over the blocks
// (net/lower.cpp). It shares its head, reference and kernels with dropout (prims/dropout/); its contract:
// contracts.cpp (dropPath_has_vjp_correct).
#pragma once

#include "veridl/prims/dropout/primitive.hpp"

namespace veridl::prims {

struct DropPath : DropHead<true> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "dropPath";
  static std::vector<std::string> contracts() { return {"dropPath_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
