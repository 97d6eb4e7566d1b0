// NetSpec parsing and validation, the plan, the fast-vs-reference executor, and the whole-network check.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "net_testutil.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"

using namespace veridl;
using namespace veridl::net;

namespace {
std::string spec_path() { return repo("specs/mnist_linear.json"); }  // test_util.hpp (a "+" here met a GCC 12 -Warray-bounds false positive)

std::string netspec_error(const std::string& json) { return testutil::spec_error(json, "test.json"); }
}  // namespace

TEST(NetSpec, TheBooksLinearModel) {
  NetSpec s = load_netspec(spec_path());
  EXPECT_EQ(s.name, "MNIST-Linear");
  EXPECT_EQ(s.param_count(), 7850u);
  EXPECT_EQ(s.num_classes(), 10u);
  ASSERT_TRUE(s.recipe.has_value());
  EXPECT_EQ(s.recipe->batch, 128u);
  EXPECT_EQ(s.recipe->epochs, 12u);
  EXPECT_DOUBLE_EQ(s.recipe->lr, 0.1);
}

TEST(NetSpec, TheBuilderProducesTheSameSpec) {
  NetSpec b = NetBuilder("MNIST-Linear").image(28, 28, 1).flatten().dense(784, 10).recipe(Recipe{}).build();
  NetSpec j = load_netspec(spec_path());
  EXPECT_EQ(b.to_json(), j.to_json());
  // and the JSON form round-trips
  EXPECT_EQ(parse_netspec(j.to_json().dump()).to_json(), j.to_json());
}

TEST(NetSpec, ClearOneLineErrors) {
  struct Case {
    std::string json, expect;
  } cases[] = {
      {R"({"name": "x", "layers": [)", "test.json: malformed JSON"},
      {R"({"name": 1e400, "layers": []})", "test.json: malformed JSON"},  // out-of-range number (found by fuzzing)
      {R"({"name": "x", "layers": [{"type": "conv9"}]})", "test.json: layer 0 (conv9): unknown layer type 'conv9'"},
      {R"({"name": "x", "layers": [{"type": "dense", "fanIn": 784, "fanOut": 10, "bias": true}]})",
       "test.json: layer 0 (dense): unknown field 'bias'"},
      {R"({"name": "x", "colour": 1, "layers": []})", "test.json: unknown field 'colour'"},
      {R"({"name": "x", "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 100, "fanOut": 10}]})",
       "test.json: layer 1 (dense): fanIn is 100 but the incoming activation has 784 features"},
      {R"({"name": "x", "layers": [{"type": "dense", "fanIn": 784, "fanOut": 0}]})",
       "test.json: layer 0 (dense): field 'fanOut' must be a positive integer, got 0"},
      {R"({"name": "x", "imageH": 0, "layers": []})", "test.json: field 'imageH' must be a positive integer"},
      {R"({"name": "x", "layers": []})", "test.json: field 'layers' is empty"},
      {R"({"layers": []})", "test.json: missing field 'name'"},
      {R"({"name": "x", "layers": [{"type": "dense", "fanIn": 784, "fanOut": 10, "activation": "mish"}]})",
       "test.json: layer 0 (dense): activation 'mish' is not supported"},
      {R"({"name": "x", "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 784, "fanOut": 10}], "recipe": {"lr": -1}})",
       "test.json: recipe.lr must be positive"},
      {R"({"name": "x", "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 784, "fanOut": 10}], "recipe": {"batch": 0}})",
       "test.json: recipe: field 'batch' must be a positive integer, got 0"},
      {R"({"name": "x", "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 784, "fanOut": 10}], "recipe": {"epochs": 0}})",
       "test.json: recipe: field 'epochs' must be a positive integer, got 0"},
      {R"({"name": "x", "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 784, "fanOut": 1}]})", "at least 2"},
      {R"({"name": "x", "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 784, "fanOut": 10}, {"type": "flatten"}]})",
       "flatten after the activation is already flat"},
      {R"({"name": "x", "layers": [{"type": "dense", "fanIn": 784, "fanOut": 10}]})",
       "layer 0 (dense): needs a flat input: add a flatten layer before it"},
      {R"({"name": "x", "layers": [{"type": "convBn", "ic": 3, "oc": 8, "k": 3}, {"type": "flatten"}, {"type": "dense", "fanIn": 6272, "fanOut": 10}]})",
       "layer 0 (convBn): ic is 3 but the incoming activation has 1 channels"},
      {R"({"name": "x", "imageH": 4, "imageW": 4, "layers": [{"type": "conv2d", "ic": 1, "oc": 8, "k": 7, "padding": "valid"}, {"type": "flatten"}, {"type": "dense", "fanIn": 8, "fanOut": 10}]})",
       "layer 0 (conv2d): kernel 7x7 is larger than the padded 1x4x4 input"},
      {R"({"name": "x", "layers": [{"type": "maxPool", "size": 0}]})", "layer 0 (maxPool): field 'size' must be a positive integer"},
      {R"({"name": "x", "layers": [{"type": "conv2d", "ic": 1, "oc": 8, "k": 3, "padding": "full"}]})",
       "field 'padding' must be \"same\" or \"valid\""},
  };
  for (const auto& c : cases) {
    std::string msg = netspec_error(c.json);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "json: " << c.json << "\nmessage: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;  // one line
  }
  EXPECT_THROW(load_netspec("/nonexistent/spec.json"), Error);
}

// Fuzzing findings: a deeply nested value overflowed the stack while its error message printed it, and sizes
// whose products wrap 64 bits passed validation and crashed training. Both are one-line errors now.
TEST(NetSpec, HostileSpecsAreRefusedNotCrashed) {
  const size_t depth = 1'000'000;
  std::string deep = R"({"name": )" + std::string(depth, '[') + std::string(depth, ']') + "}";
  EXPECT_NE(netspec_error(deep).find("test.json: malformed JSON: nested deeper than 64 levels"), std::string::npos);
  const std::string tail = R"(, "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 4, "fanOut": 10}]})";
  struct Case {
    std::string json, expect;
  } cases[] = {
      {R"({"name": "x", "imageH": 4611686018427387904, "imageW": 4)" + tail,
       "test.json: field 'imageH' is 4611686018427387904, more than the limit of 16777216"},
      {R"({"name": "x", "imageH": 16000000, "imageW": 16000000)" + tail,
       "image shape 1x16000000x16000000 (channels x imageH x imageW) is absurdly large"},
      {R"({"name": "x", "imageH": 8, "imageW": 8, "layers": [{"type": "conv2d", "ic": 1, "oc": 2, "k": 4294967296}]})",
       "test.json: layer 0 (conv2d): field 'k' is 4294967296, more than the limit of 16777216"},
      {R"({"name": "x", "imageH": 8, "imageW": 8, "layers": [{"type": "conv2d", "ic": 1, "oc": 16777216, "k": 16777216}]})",
       "layer 0 (conv2d): the 16777216x1x16777216x16777216 kernel is absurdly large"},
      {R"({"name": "x", "imageH": 16384, "imageW": 16384, "layers": [{"type": "conv2d", "ic": 1, "oc": 4096, "k": 1}]})",
       "layer 0 (conv2d): its 4096x16384x16384 output is absurdly large"},
      {R"({"name": "x", "imageH": 2, "imageW": 2)" + tail.substr(0, tail.size() - 1) +
           R"(, "recipe": {"batch": 9223372036854775807}})",
       "recipe: field 'batch' is 9223372036854775807, more than the limit of 16777216"},
  };
  for (const auto& c : cases) {
    std::string msg = netspec_error(c.json);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "json: " << c.json << "\nmessage: " << msg;
  }
}

TEST(NetSpec, TheChapterNetsHaveTheBooksParameterCounts) {
  const std::string dir = std::string(VERIDL_SOURCE_DIR) + "/specs/";
  EXPECT_EQ(load_netspec(dir + "mnist_mlp.json").param_count(), 669706u);
  EXPECT_EQ(load_netspec(dir + "mnist_cnn_bn.json").param_count(), 1676458u);
  EXPECT_EQ(load_netspec(dir + "cifar_cnn_bn.json").param_count(), 2431210u);
  Plan p = compile(load_netspec(dir + "mnist_cnn_bn.json"), 2);
  EXPECT_EQ(p.n_params, 1676458u);
  size_t bn = 0;
  for (const auto& n : p.nodes) bn += prims::table()[n.op].name == "batchNorm";
  EXPECT_EQ(bn, 4u);
  EXPECT_EQ(p.params[0].shape, (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(p.params[1].name, "layers.0.bn.gamma");
}

TEST(Plan, ParameterLayoutAndNames) {
  Plan p = compile(load_netspec(spec_path()), 128);
  EXPECT_EQ(p.n_params, 7850u);
  ASSERT_EQ(p.params.size(), 2u);
  EXPECT_EQ(p.params[0].name, "layers.1.weight");
  EXPECT_EQ(p.params[0].shape, (std::vector<int64_t>{784, 10}));
  EXPECT_EQ(p.params[1].name, "layers.1.bias");
  EXPECT_EQ(p.params[1].offset, 7840u);
}

TEST(Executor, FastKernelsMatchTheReferenceOnThePlansShapes) {
  Plan p = compile(load_netspec(spec_path()), 128, 0.1);
  Executor<float, FastKernels> fast(p);
  Executor<double, RefKernels> ref(p);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(0, 1);
  std::normal_distribution<float> n(0, 0.05f);
  std::vector<float> x(128 * 784);
  for (auto& e : x) e = u(rng);
  std::vector<int32_t> y(128);
  for (auto& e : y) e = static_cast<int32_t>(rng() % 10);
  for (size_t i = 0; i < p.n_params; ++i) {
    fast.params()[i] = n(rng);
    ref.params()[i] = fast.params()[i];
  }
  std::vector<double> xd(x.begin(), x.end());
  Decisions d1, d2;
  float lf = fast.forward_loss(x.data(), y.data(), 128, d1);
  double lr = ref.forward_loss(xd.data(), y.data(), 128, d2);
  EXPECT_NEAR(lf, lr, 1e-5 * (1 + std::fabs(lr)));
  fast.backward(1.0f, true);
  ref.backward(1.0, true);
  for (size_t i = 0; i < p.n_params; ++i) EXPECT_NEAR(fast.grads()[i], ref.grads()[i], 1e-5) << i;
  for (size_t i = 0; i < xd.size(); i += 97) EXPECT_NEAR(fast.input_grad()[i], ref.input_grad()[i], 1e-6) << i;
}

TEST(WholeNetwork, TheLinearModelIsVerifiedAtItsRealShape) {
  NetCheckReport r = verify_net_spec(spec_path(), std::nullopt, 1, 2);
  EXPECT_TRUE(r.pass) << r.failure;
  EXPECT_EQ(r.batch, 128u);
  EXPECT_EQ(r.params, 7850u);
  EXPECT_EQ(r.inputs, 128u * 784u + 7850u);
}

TEST(WholeNetwork, ABrokenExecutorIsRejected) {
  for (Fault f : {Fault::DropBiasGrad, Fault::IgnoreUpstreamGrad}) {
    Plan p = compile(load_netspec(spec_path()), 128);
    p.fault = f;
    NetCheckReport r = verify_plan(p, 1, 2);
    EXPECT_FALSE(r.pass) << static_cast<int>(f);
    EXPECT_NE(r.failure.find("real mismatch"), std::string::npos) << r.failure;
  }
}

namespace {
// A small network with every chapter 3-5 step kind: conv+BN+ReLU, max-pool, strided conv, dense+ReLU.
NetSpec small_cnn() {
  return NetBuilder("small-cnn")
      .image(8, 8, 2)
      .conv_bn(2, 4, 3)
      .max_pool(2, 2)
      .conv2d(4, 6, 3, Activation::Relu, 2)
      .flatten()
      .dense(24, 12, Activation::Relu)
      .dense(12, 5)
      .build();
}
}  // namespace

TEST(Executor, FastKernelsMatchTheReferenceOnACnnPlan) {
  Plan p = compile(small_cnn(), 6, 0.1);
  Executor<float, FastKernels> fast(p);
  Executor<double, RefKernels> ref(p);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n(0, 0.5f);
  std::vector<float> x(6 * p.input_width());
  for (auto& e : x) e = n(rng);
  std::vector<int32_t> y{0, 1, 2, 3, 4, 0};
  for (size_t i = 0; i < p.n_params; ++i) {
    fast.params()[i] = n(rng);
    ref.params()[i] = fast.params()[i];
  }
  std::vector<double> xd(x.begin(), x.end());
  Decisions d1, d2;
  float lf = fast.forward_loss(x.data(), y.data(), 6, d1);
  double lr = ref.forward_loss(xd.data(), y.data(), 6, d2);
  EXPECT_NEAR(lf, lr, 1e-4 * (1 + std::fabs(lr)));
  fast.backward(1.0f, true);
  ref.backward(1.0, true);
  double gmax = 0;
  for (double g : ref.grads()) gmax = std::max(gmax, std::fabs(g));
  for (size_t i = 0; i < p.n_params; ++i) EXPECT_NEAR(fast.grads()[i], ref.grads()[i], 1e-4 * (1 + gmax)) << i;
  for (size_t i = 0; i < xd.size(); ++i) EXPECT_NEAR(fast.input_grad()[i], ref.input_grad()[i], 1e-4 * (1 + gmax)) << i;
}

// An inference executor (no gradient buffers) computes the same Eval-mode logits and loss as a training
// executor with the same parameters and running statistics, and refuses what needs the missing buffers.
TEST(Executor, AnInferenceExecutorMatchesTheTrainingOneInEvalModeAndRefusesToTrain) {
  Plan p = compile(small_cnn(), 5, 0.0);
  Executor<float, FastKernels> train(p);
  Executor<float, FastKernels> infer(p, Purpose::Inference);
  std::mt19937_64 rng(9);
  std::normal_distribution<float> n(0, 0.5f);
  for (size_t i = 0; i < p.n_params; ++i) train.params()[i] = infer.params()[i] = n(rng);
  auto rs_train = train.running_stats(), rs_infer = infer.running_stats();
  ASSERT_EQ(rs_train.size(), rs_infer.size());
  ASSERT_FALSE(rs_train.empty());
  for (size_t k = 0; k < rs_train.size(); ++k)
    for (auto& v : *rs_train[k]) v = std::fabs(n(rng)) + (k % 2 ? 0.5f : 0.0f);  // variances positive
  for (size_t k = 0; k < rs_train.size(); ++k) *rs_infer[k] = *rs_train[k];
  std::vector<float> x(5 * p.input_width());
  for (auto& e : x) e = n(rng);
  std::vector<int32_t> y{0, 1, 2, 3, 4};
  Decisions d1, d2;
  const float l1 = train.forward_loss(x.data(), y.data(), 5, d1, Mode::Eval);
  const float l2 = infer.forward_loss(x.data(), y.data(), 5, d2, Mode::Eval);
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(train.logits(), infer.logits());
  EXPECT_TRUE(infer.grads().empty());
  EXPECT_THROW(infer.backward(1.0f), std::logic_error);
  EXPECT_THROW(infer.forward(x.data(), 5, d2, Mode::Train), std::logic_error);
}

TEST(WholeNetwork, ASmallCnnIsVerifiedAndItsFaultsRejected) {
  Plan p = compile(small_cnn(), 3);
  NetCheckReport ok = verify_plan(p, 1, 2);
  EXPECT_TRUE(ok.pass) << ok.failure;
  for (Fault f : {Fault::DropBiasGrad, Fault::IgnoreUpstreamGrad}) {
    Plan bad = p;
    bad.fault = f;
    EXPECT_FALSE(verify_plan(bad, 1, 2).pass) << static_cast<int>(f);
  }
}

TEST(WholeNetwork, TheMlpIsVerifiedAtASmallBatch) {
  NetCheckReport r = verify_net_spec(std::string(VERIDL_SOURCE_DIR) + "/specs/mnist_mlp.json", 2, 1, 1);
  EXPECT_TRUE(r.pass) << r.failure;
  EXPECT_EQ(r.params, 669706u);
}
