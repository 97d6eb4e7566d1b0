// Chapters 6-7: the ResNet and MobileNetV2 specs (pinned parameter counts), the NetSpec blocks
// residualBlock / bottleneckBlock / invertedResidual and the net-level convBn activation (their
// expansions against hand-worked structure, their one-line errors), and reduced-width twins of the
// full-size specs checked whole by the exact backend (the 224^2 checks themselves: docs/results.md).
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

// The four counts equal torchvision's resnet18/34/50 and mobilenet_v2 with num_classes=10 (the issue's
// pinned numbers, independent of this code); the CIFAR-style ResNet-18 (3x3/1 stem, no pool) is the
// 224^2 count minus the stem difference 64*3*(49 - 9) = 7,680.
TEST(Specs, PinnedParameterCounts) {
  expect_pinned_counts({
      {"resnet18.json", 11181642},       {"resnet34.json", 21289802},      {"resnet50.json", 23528522},
      {"mobilenetv2.json", 2236682},     {"resnet18_cifar.json", 11181642 - 7680},
      {"mobilenetv2_cifar.json", 2236682},
  });
  for (const char* file : {"resnet18.json", "resnet34.json", "resnet50.json", "mobilenetv2.json"}) {
    const NetSpec s = load_netspec(repo(std::string("specs/") + file));
    EXPECT_EQ(s.imageH, 224u) << file;
    EXPECT_EQ(s.channels, 3u) << file;
  }
  expect_info_prints("resnet34.json", "ResNet-34: 21289802 params, input 3x224x224, 10 classes");
  expect_info_prints("mobilenetv2.json", "MobileNetV2: 2236682 params, input 3x224x224, 10 classes");
}

// ResNet-34's shapes through the stem (7x7/2 conv, 3x3/2 max-pool with padding 1) and the four stages,
// worked by hand: 224 -> 112 -> 56 -> 56, 28, 14, 7 -> 512 -> 10.
TEST(Specs, ResNet34ShapesAndShortcuts) {
  const graph::Graph g = lower(load_netspec(repo("specs/resnet34.json")), "resnet34");
  EXPECT_EQ(out_shape(g, "stem"), "64x112x112");
  EXPECT_EQ(out_shape(g, "pool"), "64x56x56");
  const auto& pool = node(g, "pool").attrs_as<prims::MaxPool::Attrs>().shape;
  EXPECT_EQ(pool.pad_top, 1u);
  EXPECT_EQ(pool.pad_bottom, 1u);
  const std::pair<const char*, const char*> last[] = {
      {"layer1.2.relu", "64x56x56"}, {"layer2.3.relu", "128x28x28"}, {"layer3.5.relu", "256x14x14"}, {"layer4.2.relu", "512x7x7"}};
  for (const auto& [n, shape] : last) EXPECT_EQ(out_shape(g, n), shape) << n;
  // Projections exactly where the shape changes: block 0 of stages 2-4.
  size_t proj = 0, adds = 0;
  for (const auto& n : g.nodes) {
    if (n.name.ends_with(".proj")) ++proj;
    if (op_name(n) == "add") ++adds;
  }
  EXPECT_EQ(proj, 3u);
  EXPECT_EQ(adds, 3u + 4 + 6 + 3);
  EXPECT_FALSE(has_node(g, "layer1.0.proj"));
  EXPECT_EQ(conv(g, "layer2.0.proj").KH, 1u);
  EXPECT_EQ(conv(g, "layer2.0.proj").stride, 2u);
  EXPECT_EQ(input_name(g, "layer2.0.proj", 0), "layer1.2.relu");
  EXPECT_EQ(input_name(g, "layer2.0.add", 1), "layer2.0.proj.bn");
  EXPECT_EQ(input_name(g, "layer2.1.add", 1), "layer2.0.relu");
  EXPECT_EQ(conv(g, "layer2.0.conv1").stride, 2u);
  EXPECT_EQ(conv(g, "layer2.1.conv1").stride, 1u);
  EXPECT_EQ(input_name(g, "layer4.2.relu", 0), "layer4.2.add");
}

// ResNet-50's bottlenecks (v1.5, torchvision: the stride on the 3x3), and MobileNetV2's inverted residuals.
TEST(Specs, BottleneckAndInvertedResidualStructure) {
  const graph::Graph r = lower(load_netspec(repo("specs/resnet50.json")), "resnet50");
  EXPECT_EQ(conv(r, "layer2.0.conv1").KH, 1u);
  EXPECT_EQ(conv(r, "layer2.0.conv1").stride, 1u);
  EXPECT_EQ(conv(r, "layer2.0.conv2").stride, 2u);
  EXPECT_EQ(conv(r, "layer2.0.conv2").O, 128u);
  EXPECT_EQ(conv(r, "layer2.0.conv3").O, 512u);
  EXPECT_EQ(out_shape(r, "layer2.0.relu"), "512x28x28");
  // The first stage changes channels (64 -> 256) at stride 1: a projection anyway.
  EXPECT_TRUE(has_node(r, "layer1.0.proj"));
  EXPECT_EQ(conv(r, "layer1.0.proj").stride, 1u);
  EXPECT_FALSE(has_node(r, "layer1.1.proj"));

  const graph::Graph m = lower(load_netspec(repo("specs/mobilenetv2.json")), "mobilenetv2");
  // Every convBn activation is the net's relu6; the projections are linear.
  size_t relu6 = 0, relu = 0;
  for (const auto& n : m.nodes) {
    relu6 += op_name(n) == "relu6";
    relu += op_name(n) == "relu";
  }
  EXPECT_EQ(relu, 0u);
  EXPECT_EQ(relu6, 2u + 1 + 2 * 16);  // stem, head; block 0 has no expansion; 16 blocks with two each
  EXPECT_EQ(input_name(m, "ir1.0.project", 0), "ir1.0.dw.relu6");
  EXPECT_FALSE(has_node(m, "ir1.0.expand"));  // expand 1
  EXPECT_EQ(conv(m, "ir2.0.expand").O, 16u * 6);
  EXPECT_EQ(conv(m, "ir2.0.dw").G, 96u);
  EXPECT_EQ(conv(m, "ir2.0.dw").stride, 2u);
  EXPECT_EQ(conv(m, "ir2.1.dw").stride, 1u);
  // The residual add only when stride 1 and ic == oc: not in block 0 of a stage that changes channels.
  EXPECT_FALSE(has_node(m, "ir2.0.add"));
  EXPECT_EQ(input_name(m, "ir2.1.add", 1), "ir2.0.project.bn");
  EXPECT_FALSE(has_node(m, "ir7.0.add"));  // 160 -> 320
  EXPECT_FALSE(has_node(m, "ir5.0.add"));  // 64 -> 96 at stride 1
  EXPECT_TRUE(has_node(m, "ir5.1.add"));
  size_t adds = 0;
  for (const auto& n : m.nodes) adds += op_name(n) == "add";
  EXPECT_EQ(adds, (2u - 1) + (3 - 1) + (4 - 1) + (3 - 1) + (3 - 1));  // 10, as torchvision's use_res_connect
  EXPECT_EQ(out_shape(m, "head"), "1280x7x7");
}

TEST(Specs, ConvBnActivationIsTheNetDefaultAndALayerOverridesIt) {
  const std::string layers = R"("layers": [{"type": "convBn", "name": "a", "ic": 1, "oc": 2, "k": 3},
      {"type": "convBn", "name": "b", "ic": 2, "oc": 2, "k": 3, "activation": "relu"},
      {"type": "residualBlock", "name": "r", "ic": 2, "oc": 2},
      {"type": "globalAvgPool"}, {"type": "dense", "fanIn": 2, "fanOut": 3}]})";
  const NetSpec s = parse_netspec(R"({"name": "x", "imageH": 5, "imageW": 5, "convBnActivation": "relu6", )" + layers);
  const graph::Graph g = lower(s, "x");
  EXPECT_EQ(op_name(node(g, "a.relu6")), "relu6");
  EXPECT_EQ(op_name(node(g, "b.relu")), "relu");
  EXPECT_EQ(op_name(node(g, "r.0.relu6")), "relu6");
  EXPECT_EQ(op_name(node(g, "r.0.conv1.relu6")), "relu6");
  // The JSON round trip keeps it; the default (relu) is not written.
  EXPECT_EQ(parse_netspec(s.to_json().dump()).to_json(), s.to_json());
  EXPECT_EQ(s.to_json()["convBnActivation"], "relu6");
  const NetSpec d = parse_netspec(R"({"name": "x", "imageH": 5, "imageW": 5, )" + layers);
  EXPECT_FALSE(d.to_json().contains("convBnActivation"));
  EXPECT_TRUE(has_node(lower(d, "d"), "a.relu"));
}

TEST(Specs, BlockErrorsAreOneLineNamingTheLayerAndField) {
  const std::string head = R"({"name": "x", "imageH": 8, "imageW": 8, "layers": [)";
  const std::string tail = R"({"type": "globalAvgPool"}, {"type": "dense", "fanIn": 8, "fanOut": 3}]})";
  struct Case {
    std::string json, expect;
  } cases[] = {
      {R"({"name": "x", "imageH": 8, "imageW": 8, "convBnActivation": "tanh", "layers": [)" + tail,
       "b.json: convBnActivation 'tanh' is not supported (supported: identity, "},
      {head + R"({"type": "bottleneckBlock", "ic": 1, "oc": 6}, )" + tail,
       "b.json: layer 0 (bottleneckBlock): field 'oc' is 6: a bottleneck's width is oc / 4, so oc must be a multiple of 4"},
      {head + R"({"type": "residualBlock", "ic": 2, "oc": 8}, )" + tail,
       "b.json: layer 0 (residualBlock): block 0: "},
      {head + R"({"type": "residualBlock", "ic": 1, "oc": 8, "nBlocks": 0}, )" + tail,
       "b.json: layer 0 (residualBlock): field 'nBlocks'"},
      {head + R"({"type": "residualBlock", "ic": 1, "oc": 8, "firstStride": 0}, )" + tail,
       "b.json: layer 0 (residualBlock): field 'firstStride'"},
      {head + R"({"type": "invertedResidual", "ic": 1, "oc": 8, "expand": 0}, )" + tail,
       "b.json: layer 0 (invertedResidual): field 'expand' must be a positive integer, got 0"},
      {head + R"({"type": "invertedResidual", "ic": 1, "oc": 8}, )" + tail,
       "b.json: layer 0 (invertedResidual): missing field 'expand'"},
      {head + R"({"type": "invertedResidual", "ic": 1, "oc": 8, "expand": 4, "firstStride": 2}, )" + tail,
       "b.json: layer 0 (invertedResidual): unknown field 'firstStride'"},
      {head + R"({"type": "residualBlock", "ic": 1, "oc": 8, "stride": 2}, )" + tail,
       "b.json: layer 0 (residualBlock): unknown field 'stride'"},
      {head + R"({"type": "convBn", "ic": 1, "oc": 8, "k": 3, "activation": "mish"}, )" + tail,
       "b.json: layer 0 (convBn): activation 'mish' is not supported"},
      {head + R"({"type": "convBn", "ic": 1, "oc": 8, "k": 3}, {"type": "invertedResidual", "ic": 8, "oc": 8, "expand": 4194304}, )" + tail,
       "b.json: layer 1 (invertedResidual): field 'expand' is 4194304"},
  };
  for (const auto& c : cases) {
    const std::string msg = spec_error(c.json);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "json: " << c.json << "\nmessage: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// The CI twins of `veridl verify --spec specs/{resnet34,resnet50,mobilenetv2}.json --batch 2` (224^2,
// docs/results.md): the same spec files, channels divided by 8 (16 for ResNet-50), on 32x32 images, checked
// whole by the exact backend at batch 2. The ResNet-18 and MobileNetV2 small-image training specs too.
TEST(WholeNetwork, ReducedWidthTwinsOfTheFullSizeSpecsAreVerified) {
  const std::pair<NetSpec, size_t> nets[] = {
      {twin("resnet34.json", 8, 32), 0},
      {twin("resnet50.json", 16, 32), 0},
      {twin("mobilenetv2.json", 8, 32), 0},
      {load_netspec(repo("specs/resnet18_small.json")), 701178},
      {load_netspec(repo("specs/mobilenetv2_small.json")), 586890},
  };
  for (const auto& [spec, params] : nets) {
    if (kSanitized && params) continue;  // the 28x28 training specs take most of the time: twins only
    const NetCheckReport r = verify_plan(compile(spec, 2), 1, 1);
    EXPECT_TRUE(r.pass) << spec.name << ": " << r.failure;
    if (params) {
      EXPECT_EQ(r.params, params) << spec.name;
    }
  }
}

// The float kernels (FastKernels: depthwise direct kernels, relu6, globalAvgPool, the residual adds) against
// the double reference through the whole executor, on the twins' shapes: the loss, every parameter
// gradient and the input gradient. 64x64 images: at 32x32 the last stage is 1x1, where BatchNorm over a
// batch of 2 normalises two values whose difference can be near its epsilon's square root, and float
// rounding is amplified (measured: logits 0.017 apart on MobileNetV2's twin, 1e-7 before its head).
TEST(Executor, FastKernelsMatchTheReferenceOnTheTwins) {
  for (const NetSpec& spec : {twin("resnet34.json", 8, 64), twin("resnet50.json", 16, 64), twin("mobilenetv2.json", 8, 64)})
    expect_fast_kernels_match_reference(spec, 1e-3);
}
