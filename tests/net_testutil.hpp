// Whole-network test helpers: NetSpec errors, looking into a lowered graph, pinned counts, reduced-width twins,
// and the float kernels against the double reference through the executor.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"

namespace veridl::testutil {

// The one-line error parse_netspec gives `json` as file `file` ("(no error)" if none).
inline std::string spec_error(const std::string& json, const std::string& file = "b.json") {
  try {
    net::parse_netspec(json, file);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A NetSpec that must be refused: parse_netspec's error on `json` contains `expect`, on one line.
struct SpecErrorCase {
  std::string json, expect;
};
inline void expect_spec_errors(const std::vector<SpecErrorCase>& cases, const std::string& file = "b.json") {
  for (const auto& c : cases) {
    const std::string msg = spec_error(c.json, file);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "json: " << c.json << "\nmessage: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// Looking into a lowered graph: a node by name (throws if absent), its primitive's name, the name of its
// i-th input value, its output shape.
inline const std::string& op_name(const graph::Node& n) { return prims::table()[n.op].name; }
inline const graph::Node& node(const graph::Graph& g, const std::string& name) {
  for (const auto& n : g.nodes)
    if (n.name == name) return n;
  throw std::runtime_error("no node " + name);
}
inline bool has_node(const graph::Graph& g, const std::string& name) {
  for (const auto& n : g.nodes)
    if (n.name == name) return true;
  return false;
}
inline std::string input_name(const graph::Graph& g, const std::string& n, size_t i) {
  return g.values[node(g, n).inputs.at(i)].name;
}
inline std::string out_shape(const graph::Graph& g, const std::string& n) { return g.values[node(g, n).output].shape.str(); }
inline const ops::Conv2dShape& conv(const graph::Graph& g, const std::string& n) {
  return node(g, n).attrs_as<prims::Conv2d::Attrs>().shape;
}

// Each spec file (under specs/) has its pinned parameter count and 10 classes.
inline void expect_pinned_counts(const std::map<std::string, size_t>& pinned) {
  for (const auto& [file, count] : pinned) {
    const net::NetSpec s = net::load_netspec(repo("specs/" + file));
    EXPECT_EQ(s.param_count(), count) << file;
    EXPECT_EQ(s.num_classes(), 10u) << file;
  }
}

// `veridl info --spec specs/<file>` succeeds and prints `line`.
inline void expect_info_prints(const std::string& file, const std::string& line) {
  const Cmd c = sh("info --spec " + repo("specs/" + file));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find(line), std::string::npos) << c.out;
}

// A reduced-width twin of a full-size spec file: the same layers and blocks (so the same topology: block
// counts, strides, shortcuts, activations), every channel count (oc, fanIn, c, and ic unless it is the
// image's 3) divided by `div`, on a `hw` x `hw` image.
inline net::NetSpec twin(const std::string& file, size_t div, size_t hw) {
  nlohmann::json j = nlohmann::json::parse(read_bytes(repo("specs/" + file)));
  j["name"] = j["name"].get<std::string>() + "-twin";
  j["imageH"] = hw;
  j["imageW"] = hw;
  for (auto& l : j["layers"])
    for (const char* f : {"oc", "fanIn", "c"})
      if (l.contains(f)) l[f] = l[f].get<size_t>() / div;
  for (auto& l : j["layers"])
    if (l.contains("ic") && l["ic"].get<size_t>() != 3) l["ic"] = l["ic"].get<size_t>() / div;
  return net::parse_netspec(j.dump(), file + " (twin)");
}

// One batch of 2 through Executor<float, FastKernels> and Executor<double, RefKernels> with the same
// parameters and inputs: the loss within `tol` relative, every parameter gradient and the input gradient
// within `tol` of (1 + the largest reference gradient).
inline void expect_fast_kernels_match_reference(const net::NetSpec& spec, double tol) {
  const net::Plan p = net::compile(spec, 2, 0.1);
  net::Executor<float, net::FastKernels> fast(p);
  net::Executor<double, net::RefKernels> ref(p);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n(0, 0.3f);
  for (size_t i = 0; i < p.n_params; ++i) ref.params()[i] = fast.params()[i] = n(rng);
  std::vector<float> x(2 * p.input_width());
  for (auto& e : x) e = n(rng);
  const std::vector<double> xd(x.begin(), x.end());
  std::vector<int32_t> y{1, 3};
  Decisions d1, d2;
  const float lf = fast.forward_loss(x.data(), y.data(), 2, d1);
  const double lr = ref.forward_loss(xd.data(), y.data(), 2, d2);
  EXPECT_NEAR(lf, lr, tol * (1 + std::fabs(lr))) << spec.name;
  fast.backward(1.0f, true);
  ref.backward(1.0, true);
  double gmax = 0;
  for (double g : ref.grads()) gmax = std::max(gmax, std::fabs(g));
  for (size_t i = 0; i < p.n_params; ++i)
    ASSERT_NEAR(fast.grads()[i], ref.grads()[i], tol * (1 + gmax)) << spec.name << " param " << i;
  const auto gx = fast.input_grad();
  const auto rx = ref.input_grad();
  for (size_t i = 0; i < gx.size(); ++i) ASSERT_NEAR(gx[i], rx[i], tol * (1 + gmax)) << spec.name << " x " << i;
}

// The chapter 8-9 test networks, shared by their unit tests and the export tests.
// LayerNorm and LayerScale, image 6x6x3: LayerNorm over the channels (eps 1e-6) and over the last axis of a
// 3-D value, LayerScale on channels first, both on flat features:
//   conv2d 3->8 k3 (stem) -> layerNorm (channels) -> conv2d 8->16 k1 relu -> conv2d 16->8 k1 (no bias) ->
//   layerScale 0.5 -> add the stem -> layerNorm (last: over W) -> conv2d 8->8 k1 relu -> globalAvgPool ->
//   layerNorm (flat) -> layerScale 2 -> dense
inline net::NetSpec layernorm_net() {
  return net::NetBuilder("LayerNormNet")
      .image(6, 6, 3)
      .layer("conv2d", {{"ic", 3}, {"oc", 8}, {"k", 3}, {"activation", "identity"}}, "stem")
      .layer("layerNorm", {{"eps", 1e-6}}, "ln")
      .layer("conv2d", {{"ic", 8}, {"oc", 16}, {"k", 1}})
      // no bias: a per-channel constant is constant along W, and the LayerNorm over W below cancels it
      .layer("conv2d", {{"ic", 16}, {"oc", 8}, {"k", 1}, {"bias", false}, {"activation", "identity"}})
      .layer("layerScale", {{"init", 0.5}}, "ls")
      .layer("add", {}, "res", {"ls", "stem"})
      .layer("layerNorm", {{"axis", "last"}})
      .layer("conv2d", {{"ic", 8}, {"oc", 8}, {"k", 1}})  // a mean over W right after would cancel xhat
      .layer("globalAvgPool")
      .layer("layerNorm", {{"eps", 1e-6}})
      .layer("layerScale", {{"init", 2.0}})
      .dense(8, 4)
      .build();
}

// The activations of chapters 8-9 and MobileNetV3, image 6x6x2:
//   convBn 2->6 k3 swish (convBnActivation) -> conv2d 6->6 k3 hardSwish -> conv2d 6->6 k1 gelu ->
//   conv2d 6->4 k1 -> geluErf -> globalAvgPool -> sigmoid -> dense 4->4
inline net::NetSpec activation_net() {
  return net::NetBuilder("ActivationNet")
      .image(6, 6, 2)
      .conv_bn_activation("swish")
      .layer("convBn", {{"ic", 2}, {"oc", 6}, {"k", 3}})
      .layer("conv2d", {{"ic", 6}, {"oc", 6}, {"k", 3}, {"activation", "hardSwish"}})
      .layer("conv2d", {{"ic", 6}, {"oc", 6}, {"k", 1}, {"activation", "gelu"}})
      .layer("conv2d", {{"ic", 6}, {"oc", 4}, {"k", 1}, {"activation", "identity"}})
      .layer("geluErf")
      .layer("globalAvgPool")
      .layer("sigmoid")
      .dense(4, 4)
      .build();
}

// Stochastic depth and dropout, image 6x6x2, net-level dropPath 0.4 over the 3 blocks of one residual stage
// (rates 0, 0.2, 0.4: block 0 gets no node):
//   conv2d 2->4 k3 -> residualBlock 4->4 x3 (conv-BN-relu, conv-BN, dropPath, + skip, relu) -> flatten ->
//   dropout 0.3 -> dense 144->4
inline net::NetSpec drop_net() {
  return net::NetBuilder("DropNet")
      .image(6, 6, 2)
      .drop_path(0.4)
      .layer("conv2d", {{"ic", 2}, {"oc", 4}, {"k", 3}, {"activation", "identity"}})
      .layer("residualBlock", {{"ic", 4}, {"oc", 4}, {"nBlocks", 3}})
      .flatten()
      .layer("dropout", {{"rate", 0.3}})
      .dense(144, 4)
      .build();
}

// A tiny Vision Transformer (chapter 10), image 8x8x1: patchEmbed 4x4 patches (4 + CLS = 5 tokens of width 8),
// transformerEncoder 2 blocks, 2 heads, MLP 16 (dropPath 0.3: block 1 drops both branches at 0.3), dense 8->4.
// `causal`: the encoder's causalMask; `keep_sequence`: the encoder keeps the [5, 8] tokens and a standalone
// clsPool layer takes the CLS row.
inline net::NetSpec vit_net(bool causal = false, bool keep_sequence = false) {
  net::NetBuilder b(causal ? "TinyCausalViT" : keep_sequence ? "TinyViTSequence" : "TinyViT");
  b.image(8, 8, 1).drop_path(0.3);
  b.layer("patchEmbed", {{"ic", 1}, {"dim", 8}, {"p", 4}, {"nPatches", 4}}, "patch");
  b.layer("transformerEncoder", {{"dim", 8}, {"heads", 2}, {"mlpDim", 16}, {"nBlocks", 2}, {"causalMask", causal},
                                 {"keepSequence", keep_sequence}},
          "enc");
  if (keep_sequence) b.layer("clsPool");
  return b.dense(8, 4).build();
}

// One attention layer two ways, image 8x8x1 -> patchEmbed (5 tokens of width 8) -> dense q, k, v -> attention with
// 2 heads of 4 -> clsPool -> dense 8->4: `fused` the sdpa primitive; otherwise the matrix kit by hand (splitHeads
// each, matmul q k^T (transposeB), scale 1/sqrt(4), softmax, matmul by v, mergeHeads). Same parameters, same order.
inline net::NetSpec attention_kit_net(bool fused) {
  net::NetBuilder b(fused ? "FusedAttention" : "KitAttention");
  b.image(8, 8, 1);
  b.layer("patchEmbed", {{"ic", 1}, {"dim", 8}, {"p", 4}, {"nPatches", 4}}, "pe");
  for (const char* n : {"q", "k", "v"}) b.layer("dense", {{"fanIn", 8}, {"fanOut", 8}}, n, {"pe"});
  if (fused) {
    b.layer("sdpa", {{"heads", 2}}, "att", {"q", "k", "v"});
  } else {
    for (const char* n : {"q", "k", "v"}) b.layer("splitHeads", {{"heads", 2}}, std::string(n) + "h", {n});
    b.layer("matmul", {{"transposeB", true}}, "s", {"qh", "kh"});
    b.layer("scale", {{"by", 0.5}}, "ss", {"s"});
    b.layer("softmax", {}, "p", {"ss"});
    b.layer("matmul", {}, "o", {"p", "vh"});
    b.layer("mergeHeads", {}, "att", {"o"});
  }
  b.layer("clsPool");
  return b.layer("dense", {{"fanIn", 8}, {"fanOut", 4}}, "head").build();
}

}  // namespace veridl::testutil
