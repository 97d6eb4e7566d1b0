// The NetSpec reference of the blocks (net/lower.cpp's kBlocks): the rows docs/netspec.md generates from them
// (net/reference.hpp). Each field's type and default come from the block's parse function in lower.cpp; a field
// read there and not described here, or described and not read, fails NetSpecReference.* .
#include <map>
#include <string>

#include "veridl/net/lower.hpp"

namespace veridl::net {

const graph::LayerDoc* block_doc(std::string_view name) {
  static const std::map<std::string, graph::LayerDoc, std::less<>> docs{
    {"convBn", {R"(1)",
     R"(block: `conv2d` without bias → `batchNorm` → the activation)",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels)"},
      {"k", R"(kernel size: a `k x k` window)"},
      {"stride", R"(the window's step)"},
      {"padding", R"(`same` (in the net's `padStyle`) or `valid`)"},
      {"groups", R"(channel groups, as `conv2d`'s)"},
      {"activation", R"(the activation after the BatchNorm: `identity` or an activation primitive)", R"(activation)", R"(the net's `convBnActivation`)"}}}},
    {"residualBlock", {R"(1)",
     R"(block: a ResNet-18/34 stage of `nBlocks` basic blocks (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels of every block)"},
      {"nBlocks", R"(blocks in the stage)"},
      {"firstStride", R"(the first block's stride (its first 3×3 conv and its projection shortcut))"}}}},
    {"bottleneckBlock", {R"(1)",
     R"(block: a ResNet-50 stage of `nBlocks` bottlenecks of width `oc/4` (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels of every block (a multiple of 4: the bottleneck is `oc/4` wide))"},
      {"nBlocks", R"(blocks in the stage)"},
      {"firstStride", R"(the first block's stride (on its 3×3 conv and its projection shortcut))"}}}},
    {"invertedResidual", {R"(1)",
     R"(block: a MobileNetV2 stage of `nBlocks` inverted residuals (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels of every block)"},
      {"expand", R"(expansion factor: a block's inner width is `expand` × its input channels (no expansion conv when 1))"},
      {"stride", R"(the first block's stride (its depthwise conv))"},
      {"nBlocks", R"(blocks in the stage)"}}}},
    {"mbConv", {R"(1)",
     R"(block: an EfficientNet stage of `nBlocks` MBConv blocks with squeeze-excitation (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels of every block)"},
      {"expand", R"(expansion factor: a block's inner width is `expand` × its input channels (no expansion conv when 1))"},
      {"stride", R"(the first block's stride (its depthwise conv))"},
      {"nBlocks", R"(blocks in the stage)"},
      {"k", R"(the depthwise kernel size (odd))"},
      {"useSE", R"(squeeze-excitation in every block)"},
      {"seBase", R"(the squeeze-excitation width: `max(1, c / 4)` of the block's input channels (`input`, torchvision's) or of its expanded channels (`expanded`, the original's layout))"},
      {"activation", R"(the activation of the block's conv-BN pairs and its squeeze-excitation)", R"(activation)", nullptr}}}},
    {"convNextStem", {R"(1, `C x H x W` with H, W multiples of `patch`)",
     R"(block: ConvNeXt's patchify stem (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels)"},
      {"patch", R"(patch size: a `patch x patch` conv with stride `patch`)"}}}},
    {"convNextStage", {R"(1, `c x H x W`)",
     R"(block: a ConvNeXt stage of `nBlocks` blocks (below))",
     {{"c", R"(channels)"},
      {"nBlocks", R"(blocks in the stage)"},
      {"layerScale", R"(the initial value of every layer-scale γ (finite))"},
      {"activation", R"(the activation after the first 1×1 conv)", R"(activation)", nullptr}}}},
    {"convNextDownsample", {R"(1, `ic x H x W` with H, W even)",
     R"(block: ConvNeXt's LayerNorm + 2×2/2 conv downsample (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"oc", R"(output channels)"}}}},
    {"patchEmbed", {R"(1, `ic x H x W` with H, W multiples of `p` and `nPatches = (H/p)(W/p)`)",
     R"(block: ViT's patch embedding, tokens `[nPatches + 1, dim]` (below))",
     {{"ic", R"(input channels: the incoming activation's C)"},
      {"dim", R"(token width)"},
      {"p", R"(patch size: a `p x p` conv with stride `p`)"},
      {"nPatches", R"(the patch count `(H/p)(W/p)`)"}}}},
    {"transformerEncoder", {R"(1, tokens `[T, dim]`)",
     R"(block: `nBlocks` pre-norm transformer blocks, a final LayerNorm, and the CLS row `[dim]` unless `keepSequence` (below))",
     {{"dim", R"(token width)"},
      {"heads", R"(attention heads (dividing `dim`))"},
      {"mlpDim", R"(the MLP's hidden width)"},
      {"nBlocks", R"(blocks in the stage)"},
      {"causalMask", R"(causal attention in every block (token `i` attends to tokens `j ≤ i` only))"},
      {"keepSequence", R"(output every token `[T, dim]` instead of the CLS row `[dim]`)"},
      {"activation", R"(the MLP's activation)", R"(activation)", nullptr}}}},
  };
  auto it = docs.find(name);
  return it == docs.end() ? nullptr : &it->second;
}

}  // namespace veridl::net
