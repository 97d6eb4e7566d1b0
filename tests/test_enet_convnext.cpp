// Chapters 8-9: the EfficientNet-B0 and ConvNeXt-T specs (pinned parameter counts), the NetSpec blocks
// mbConv (with squeeze-excitation), convNextStem, convNextStage and convNextDownsample (their expansions
// against hand-worked structure and the original's per-block parameter formulas, their one-line errors), and
// reduced-width twins of the full-size specs checked whole by the exact backend (the 224^2 checks themselves:
// docs/results.md).
#include <gtest/gtest.h>

#include <map>

#include "net_testutil.hpp"
#include "test_util.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"

using namespace veridl;
using namespace veridl::net;
using namespace veridl::testutil;
using nlohmann::json;

namespace {

// The parameters of the nodes whose names start with `prefix`.
size_t params_under(const graph::Graph& g, const std::string& prefix) {
  size_t n = 0;
  for (const auto& p : g.params)
    if (p.name.rfind(prefix, 0) == 0) n += p.size;
  return n;
}

size_t dense_out(const graph::Graph& g, const std::string& n) { return node(g, n).attrs_as<prims::Dense::Attrs>().fan_out; }

}  // namespace

// EfficientNet-B0: torchvision's efficientnet_b0(num_classes=10) has 4,020,358 parameters (5,288,548 with
// the 1000-class head, minus 1281 x 990); the original's paramShapes layout (SE width from the expanded
// channels) sums to 7,155,658 (original-system.md section 1.2). ConvNeXt-T: the original's verified twin
// 27,826,282, its training spec 27,826,186 (convBn stem: 96 fewer), torchvision's convnext_tiny with a
// 10-class head 27,827,818 (a LayerNorm of 768 before the head). All from the issue, not from this code.
TEST(Specs, PinnedParameterCountsOfChapters8And9) {
  const std::map<std::string, size_t> pinned = {
      {"efficientnet_b0.json", 4020358},       {"efficientnet_b0_original_layout.json", 7155658},
      {"convnext_tiny.json", 27826282},        {"convnext_tiny_train.json", 27826186},
      {"convnext_tiny_torchvision.json", 27827818},
  };
  expect_pinned_counts(pinned);
  for (const auto& [file, count] : pinned) {
    const NetSpec s = load_netspec(repo("specs/" + file));
    EXPECT_EQ(s.imageH, 224u) << file;
    EXPECT_EQ(s.channels, 3u) << file;
  }
  expect_info_prints("efficientnet_b0.json", "EfficientNet-B0: 4020358 params, input 3x224x224, 10 classes");
  expect_info_prints("convnext_tiny.json", "ConvNeXt-T: 27826282 params, input 3x224x224, 10 classes");
}

// EfficientNet-B0's shapes, worked by hand (224 -> 112 at the stem, then strides 1 2 2 2 1 2 1), its
// squeeze-excitation widths max(1, block input / 4), where the residual adds are (stride 1 and equal
// channels), and each MBConv block's parameters against the layout of torchvision's MBConv:
// expand (mid x bic + 2 mid, absent when expand is 1), depthwise (mid k^2 + 2 mid), SE (2 mid se + se + mid),
// project (oc mid + 2 oc).
TEST(Specs, EfficientNetB0Structure) {
  const graph::Graph g = lower(load_netspec(repo("specs/efficientnet_b0.json")), "enet");
  EXPECT_EQ(out_shape(g, "stem.swish"), "32x112x112");
  const std::pair<const char*, const char*> shapes[] = {
      {"mb1.0.project.bn", "16x112x112"}, {"mb2.1.add", "24x56x56"},  {"mb3.1.add", "40x28x28"},
      {"mb4.2.add", "80x14x14"},          {"mb5.2.add", "112x14x14"}, {"mb6.3.add", "192x7x7"},
      {"mb7.0.project.bn", "320x7x7"},    {"head.swish", "1280x7x7"}, {"mb3.0.dw", "144x28x28"}};
  for (const auto& [n, s] : shapes) EXPECT_EQ(out_shape(g, n), s) << n;
  EXPECT_FALSE(has_node(g, "mb1.0.expand"));  // expand 1
  EXPECT_FALSE(has_node(g, "mb1.0.add"));     // 32 -> 16 channels
  EXPECT_FALSE(has_node(g, "mb2.0.add"));     // stride 2
  EXPECT_FALSE(has_node(g, "mb7.0.add"));     // 192 -> 320
  EXPECT_EQ(conv(g, "mb3.0.dw").KH, 5u);
  EXPECT_EQ(conv(g, "mb3.0.dw").stride, 2u);
  EXPECT_EQ(conv(g, "mb3.0.dw").pad_top, 2u);  // symmetric (k - 1) / 2, as torchvision
  EXPECT_EQ(conv(g, "mb4.0.dw").KH, 3u);
  for (const auto& [n, se] : std::map<std::string, size_t>{
           {"mb1.0", 8}, {"mb2.0", 4}, {"mb2.1", 6}, {"mb3.0", 6}, {"mb6.0", 28}, {"mb6.1", 48}, {"mb7.0", 48}})
    EXPECT_EQ(dense_out(g, n + ".se.reduce"), se) << n;
  // The SE chain: pool -> reduce -> swish -> expand -> sigmoid -> scale (mul of the depthwise output).
  EXPECT_EQ(op_name(node(g, "mb2.1.se.scale")), "mul");
  EXPECT_EQ(input_name(g, "mb2.1.se.scale", 0), "mb2.1.dw.swish");
  EXPECT_EQ(input_name(g, "mb2.1.se.scale", 1), "mb2.1.se.expand.sigmoid");
  EXPECT_EQ(input_name(g, "mb2.1.se.expand", 0), "mb2.1.se.reduce.swish");
  EXPECT_EQ(input_name(g, "mb2.1.project", 0), "mb2.1.se.scale");
  EXPECT_EQ(input_name(g, "mb2.1.add", 1), "mb2.0.project.bn");
  struct Block {
    const char* name;
    size_t bic, oc, t, k;
  } blocks[] = {{"mb1.0.", 32, 16, 1, 3}, {"mb2.0.", 16, 24, 6, 3}, {"mb3.1.", 40, 40, 6, 5}, {"mb6.2.", 192, 192, 6, 5}};
  for (const Block& b : blocks) {
    const size_t mid = b.bic * b.t, se = std::max<size_t>(1, b.bic / 4);
    const size_t expected = (b.t == 1 ? 0 : mid * b.bic + 2 * mid) + mid * b.k * b.k + 2 * mid + 2 * mid * se + se + mid +
                            b.oc * mid + 2 * b.oc;
    EXPECT_EQ(params_under(g, b.name), expected) << b.name;
  }
  // The original's code layout: the SE width from the expanded channels.
  const graph::Graph o = lower(load_netspec(repo("specs/efficientnet_b0_original_layout.json")), "orig");
  EXPECT_EQ(dense_out(o, "mb2.1.se.reduce"), 36u);  // 144 / 4
  EXPECT_EQ(dense_out(o, "mb1.0.se.reduce"), 8u);   // 32 / 4
}

// ConvNeXt-T's shapes (224 -> 56 at the patchify stem, halved by each downsample) and the original's
// per-layer formulas (original-system.md section 1.2): a stage n (8c^2 + 58c), a downsample 2 ic + 4 ic oc + oc,
// a stem oc ic p^2 + oc + 2 oc. The block's nodes in order, layer scale and LayerNorm eps as ConvNeXt's.
TEST(Specs, ConvNeXtTinyStructure) {
  const graph::Graph g = lower(load_netspec(repo("specs/convnext_tiny.json")), "convnext");
  const std::pair<const char*, const char*> shapes[] = {{"stem.ln", "96x56x56"},   {"stage1.2.add", "96x56x56"},
                                                        {"down1", "192x28x28"},    {"stage3.8.add", "384x14x14"},
                                                        {"stage4.2.add", "768x7x7"}, {"stage2.0.pw1", "768x28x28"}};
  for (const auto& [n, s] : shapes) EXPECT_EQ(out_shape(g, n), s) << n;
  const size_t dims[] = {96, 192, 384, 768}, depths[] = {3, 3, 9, 3};
  for (size_t i = 0; i < 4; ++i) {
    const size_t c = dims[i];
    EXPECT_EQ(params_under(g, "stage" + std::to_string(i + 1) + "."), depths[i] * (8 * c * c + 58 * c)) << i;
    if (i) {
      EXPECT_EQ(params_under(g, "down" + std::to_string(i)), 2 * dims[i - 1] + 4 * dims[i - 1] * c + c) << i;
    }
  }
  EXPECT_EQ(params_under(g, "stem"), 96 * 3 * 16 + 96 + 2 * 96);
  const char* chain[] = {"stage3.4.dw", "stage3.4.ln", "stage3.4.pw1", "stage3.4.pw1.gelu", "stage3.4.pw2", "stage3.4.ls", "stage3.4.add"};
  for (size_t i = 1; i < std::size(chain); ++i) EXPECT_EQ(input_name(g, chain[i], 0), chain[i - 1]) << chain[i];
  EXPECT_EQ(input_name(g, "stage3.4.add", 1), "stage3.3.add");
  EXPECT_EQ(input_name(g, "stage3.0.add", 1), "down2");
  EXPECT_EQ(conv(g, "stage3.4.dw").KH, 7u);
  EXPECT_EQ(conv(g, "stage3.4.dw").pad_top, 3u);
  EXPECT_EQ(conv(g, "down2").KH, 2u);
  EXPECT_EQ(conv(g, "stem").KH, 4u);
  EXPECT_EQ(conv(g, "stem").stride, 4u);
  EXPECT_EQ(input_name(g, "down2", 0), "down2.ln");
  size_t ls = 0;
  for (const auto& p : g.params)
    if (p.name == "stage3.4.ls.gamma") {
      EXPECT_FLOAT_EQ(p.value, 1e-6f);
      ++ls;
    }
  EXPECT_EQ(ls, 1u);
  EXPECT_DOUBLE_EQ(node(g, "stage3.4.ln").attrs_as<prims::LayerNorm::Attrs>().eps, 1e-6);
  EXPECT_DOUBLE_EQ(node(g, "down1.ln").attrs_as<prims::LayerNorm::Attrs>().eps, 1e-6);
  // torchvision's layout: the exact GELU and a LayerNorm on the pooled features.
  const graph::Graph tv = lower(load_netspec(repo("specs/convnext_tiny_torchvision.json")), "tv");
  EXPECT_TRUE(has_node(tv, "stage1.0.pw1.geluErf"));
  EXPECT_EQ(op_name(node(tv, "norm")), "layerNorm");
}

TEST(Specs, ChapterEightNineBlockErrorsAreOneLineNamingTheLayerAndField) {
  const std::string head = R"({"name": "x", "imageH": 8, "imageW": 8, "layers": [)";
  const std::string tail = R"({"type": "globalAvgPool"}, {"type": "dense", "fanIn": 8, "fanOut": 3}]})";
  const std::string stem = R"({"type": "convNextStem", "ic": 1, "oc": 8, "patch": 2}, )";
  const std::vector<SpecErrorCase> cases = {
      {head + R"({"type": "mbConv", "ic": 1, "oc": 8, "expand": 4, "k": 4}, )" + tail,
       "b.json: layer 0 (mbConv): field 'k' is 4: an mbConv's depthwise kernel must be odd"},
      {head + R"({"type": "mbConv", "ic": 1, "oc": 8, "expand": 4}, )" + tail, "b.json: layer 0 (mbConv): missing field 'k'"},
      {head + R"({"type": "mbConv", "ic": 1, "oc": 8, "expand": 0, "k": 3}, )" + tail,
       "b.json: layer 0 (mbConv): field 'expand' must be a positive integer, got 0"},
      {head + R"({"type": "mbConv", "ic": 2, "oc": 8, "expand": 4, "k": 3}, )" + tail, "b.json: layer 0 (mbConv): block 0: "},
      {head + R"({"type": "mbConv", "ic": 1, "oc": 8, "expand": 4, "k": 3, "seBase": "mid"}, )" + tail,
       "b.json: layer 0 (mbConv): field 'seBase'"},
      {head + R"({"type": "mbConv", "ic": 1, "oc": 8, "expand": 4, "k": 3, "activation": "mish"}, )" + tail,
       "b.json: layer 0 (mbConv): activation 'mish' is not supported"},
      {head + R"({"type": "mbConv", "ic": 1, "oc": 8, "expand": 4, "k": 3, "useSE": 1}, )" + tail,
       "b.json: layer 0 (mbConv): field 'useSE'"},
      {head + R"({"type": "convNextStem", "ic": 1, "oc": 8, "patch": 3}, )" + tail,
       "b.json: layer 0 (convNextStem): field 'patch' is 3: the input is 1x8x8, whose H and W must be multiples of 3"},
      {head + R"({"type": "convNextStem", "ic": 1, "oc": 8, "patch": 0}, )" + tail,
       "b.json: layer 0 (convNextStem): field 'patch' must be a positive integer, got 0"},
      {head + R"({"type": "convNextStem", "ic": 2, "oc": 8}, )" + tail, "b.json: layer 0 (convNextStem): "},
      {head + stem + R"({"type": "convNextStage", "c": 4, "nBlocks": 2}, )" + tail,
       "b.json: layer 1 (convNextStage): field 'c' is 4 but the input is 8x4x4"},
      {head + stem + R"({"type": "convNextStage", "c": 8, "nBlocks": 0}, )" + tail,
       "b.json: layer 1 (convNextStage): field 'nBlocks' must be a positive integer, got 0"},
      {head + stem + R"({"type": "convNextStage", "c": 8, "layerScale": "big"}, )" + tail,
       "b.json: layer 1 (convNextStage): field 'layerScale'"},
      {head + stem + R"({"type": "convNextStage", "c": 8, "kernel": 5}, )" + tail,
       "b.json: layer 1 (convNextStage): unknown field 'kernel'"},
      {head + R"({"type": "convNextStem", "ic": 1, "oc": 8, "patch": 4}, {"type": "convNextDownsample", "ic": 8, "oc": 8}, )" +
           R"({"type": "convNextDownsample", "ic": 8, "oc": 8}, )" + tail,
       "b.json: layer 2 (convNextDownsample): its 2x2 stride-2 conv: the input is 8x1x1, whose H and W must be multiples of 2"},
      {head + stem + R"({"type": "convNextDownsample", "ic": 4, "oc": 8}, )" + tail, "b.json: layer 1 (convNextDownsample): "},
  };
  expect_spec_errors(cases);
}

// The CI twins of `veridl verify --spec specs/{efficientnet_b0,convnext_tiny}.json --batch 2` (224^2,
// docs/results.md): the same spec files, channels divided by 8, on 32x32 images, checked whole by the exact
// backend at batch 2. The 28x28 training specs too (not under the sanitizers, for time).
TEST(WholeNetwork, ReducedWidthTwinsOfTheChapter8And9SpecsAreVerified) {
  const std::pair<NetSpec, size_t> nets[] = {
      {twin("efficientnet_b0.json", 8, 32), 0},
      {twin("convnext_tiny.json", 8, 32), 0},
      {load_netspec(repo("specs/efficientnet_b0_small.json")), 0},
      {load_netspec(repo("specs/convnext_small28.json")), 0},
  };
  for (const auto& [spec, params] : nets) {
    if (kSanitized && spec.imageH == 28) continue;
    const NetCheckReport r = verify_plan(compile(spec, 2), 1, 1);
    EXPECT_TRUE(r.pass) << spec.name << ": " << r.failure;
    EXPECT_EQ(r.params, spec.param_count()) << spec.name;
  }
}

// The float kernels against the double reference through the whole executor on the twins' shapes (64x64:
// EfficientNet's last stages at 2x2, ConvNeXt's at 2x2).
TEST(Executor, FastKernelsMatchTheReferenceOnTheChapter8And9Twins) {
  for (const NetSpec& spec : {twin("efficientnet_b0.json", 8, 64), twin("convnext_tiny.json", 8, 64)})
    expect_fast_kernels_match_reference(spec, 1e-3);
}

// A checkpoint stores the spec's normalised JSON and loading re-parses it: every chapter 8-9 spec comes back
// as itself (the blocks' defaults, e.g. mbConv's activation and seBase, written out) with the same nodes.
TEST(Specs, ChapterEightNineSpecsRoundTripThroughTheirJson) {
  for (const char* file : {"efficientnet_b0.json", "efficientnet_b0_original_layout.json", "convnext_tiny.json",
                           "convnext_tiny_train.json", "convnext_tiny_torchvision.json", "efficientnet_b0_small.json",
                           "convnext_small28.json"}) {
    const NetSpec s = load_netspec(repo(std::string("specs/") + file));
    const NetSpec back = parse_netspec(s.to_json().dump(), file);
    EXPECT_EQ(back.to_json(), s.to_json()) << file;
    const graph::Graph a = lower(s, file), b = lower(back, file);
    ASSERT_EQ(a.nodes.size(), b.nodes.size()) << file;
    for (size_t i = 0; i < a.nodes.size(); ++i) EXPECT_EQ(a.nodes[i].name, b.nodes[i].name) << file;
    EXPECT_EQ(a.n_params, b.n_params) << file;
  }
  const json j = load_netspec(repo("specs/efficientnet_b0.json")).to_json();
  EXPECT_EQ(j["layers"][1]["activation"], "swish");
  EXPECT_EQ(j["layers"][1]["seBase"], "input");
  EXPECT_EQ(j["layers"][1]["useSE"], true);
}
