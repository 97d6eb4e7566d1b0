// The plan's fusion (net/fuse.hpp): a BatchNorm whose only consumer is a ReLU runs as one node. Fused and unfused
// plans of the shipped specs train the same bits (forward, every gradient, the running statistics, the input gradient,
// the eval forward), with the same parameters and fewer nodes; a BatchNorm read by anything else (a
// residual add) is left alone; the whole-network check passes on the fused plan at the real batch wiring.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/trainer.hpp"

namespace fuse_test {  // named: the unity build puts other test files' helpers beside these

using namespace veridl;
using veridl::testutil::repo;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

size_t count_op(const net::Plan& p, const char* op) {
  const size_t k = prims::index_of(op);
  return static_cast<size_t>(std::count_if(p.nodes.begin(), p.nodes.end(), [&](const graph::Node& n) { return n.op == k; }));
}

size_t fused_bns(const net::Plan& p) {
  size_t n = 0;
  for (const graph::Node& node : p.nodes)
    if (node.op == prims::index_of("batchNorm") && node.attrs_as<prims::BatchNorm::Attrs>().relu) ++n;
  return n;
}

// Every index of the graph consistent: each node's inputs list it as a consumer, each value's producer writes it.
void expect_consistent(const net::Plan& p) {
  for (size_t k = 0; k < p.nodes.size(); ++k) {
    const graph::Node& n = p.nodes[k];
    ASSERT_LT(n.output, p.values.size());
    EXPECT_EQ(p.values[n.output].producer, static_cast<long>(k)) << n.name;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const auto& cs = p.values.at(n.inputs[i]).consumers;
      EXPECT_NE(std::find(cs.begin(), cs.end(), std::pair<size_t, size_t>{k, i}), cs.end()) << n.name;
      EXPECT_LT(p.values[n.inputs[i]].producer, static_cast<long>(k)) << n.name << ": topological order";
    }
  }
  for (size_t v = 0; v < p.values.size(); ++v)
    for (const auto& [c, slot] : p.values[v].consumers) EXPECT_EQ(p.nodes.at(c).inputs.at(slot), v);
  EXPECT_EQ(p.nodes.at(static_cast<size_t>(p.loss_node)).output, p.loss);
  EXPECT_EQ(p.nodes.at(static_cast<size_t>(p.loss_node)).inputs.at(0), p.logits);
}

struct TwoSteps {
  std::vector<float> losses, logits, grads, input_grad, params, eval_logits;
  std::vector<std::vector<float>> running;
};

// Two SGD steps at batch B (the running statistics updated with the original's momenta), the input gradient on the
// second, then an eval forward.
TwoSteps train_two_steps(const net::Plan& plan, const net::NetSpec& spec, size_t B) {
  net::Executor<float, net::FastKernels> ex(plan);
  train::he_init(plan, 5, ex.params().data());
  ex.set_noise(3, 1);
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> x(B * spec.input_size());
  std::vector<int32_t> labels(B);
  TwoSteps r;
  for (int step = 1; step <= 2; ++step) {
    for (float& v : x) v = u(rng);
    for (size_t b = 0; b < B; ++b) labels[b] = static_cast<int32_t>((5 * b + static_cast<size_t>(step)) % spec.num_classes());
    Decisions D;
    ex.set_running_momentum(ops::running_stat_momentum(static_cast<uint64_t>(step)));
    r.losses.push_back(ex.forward_loss(x.data(), labels.data(), B, D, net::Mode::Train));
    const bool last = step == 2;
    ex.backward(1.0f, last);
    const std::vector<float>& g = ex.grads();
    r.grads.insert(r.grads.end(), g.begin(), g.end());
    if (last) {
      r.logits = ex.logits();
      r.input_grad = ex.input_grad();
    }
    for (size_t i = 0; i < g.size(); ++i) ex.params()[i] -= 0.05f * g[i];
  }
  r.params = ex.params();
  for (auto* s : ex.running_stats()) r.running.push_back(*s);
  Decisions D;
  ex.forward(x.data(), B, D, net::Mode::Eval);
  r.eval_logits = ex.logits();
  return r;
}

TEST(Fusion, FusedAndUnfusedPlansTrainTheSameBits) {
  struct Case {
    const char* spec;
    size_t fused;  // BatchNorm -> ReLU pairs
  };
  for (const Case& c : {Case{"mnist_cnn_bn", 4}, Case{"mnist_resnet_tiny", 4}, Case{"cifar_cnn_bn", 0},
                        Case{"resnet18_small", 0}, Case{"mnist_mlp", 0}}) {
    const net::NetSpec spec = net::load_netspec(repo("specs/" + std::string(c.spec) + ".json"));
    const size_t B = 6;
    const net::Plan fused = net::compile(spec, B, 0.1);
    const net::Plan plain = net::compile(spec, B, 0.1, net::Fusion::Off);
    expect_consistent(fused);
    if (c.fused) {
      EXPECT_EQ(fused_bns(fused), c.fused) << c.spec;
    }
    EXPECT_EQ(fused_bns(plain), 0u) << c.spec;
    EXPECT_EQ(plain.nodes.size() - fused.nodes.size(), fused_bns(fused)) << c.spec;
    EXPECT_EQ(count_op(plain, "relu") - count_op(fused, "relu"), fused_bns(fused)) << c.spec;
    // The same parameters and running state, name for name and offset for offset.
    ASSERT_EQ(fused.params.size(), plain.params.size()) << c.spec;
    for (size_t t = 0; t < fused.params.size(); ++t) {
      EXPECT_EQ(fused.params[t].name, plain.params[t].name);
      EXPECT_EQ(fused.params[t].offset, plain.params[t].offset);
    }
    const TwoSteps a = train_two_steps(fused, spec, B), b = train_two_steps(plain, spec, B);
    EXPECT_TRUE(same_bits(a.losses, b.losses)) << c.spec << ": loss " << a.losses[0] << " vs " << b.losses[0];
    EXPECT_TRUE(same_bits(a.logits, b.logits)) << c.spec;
    EXPECT_TRUE(same_bits(a.grads, b.grads)) << c.spec << ": parameter gradients";
    EXPECT_TRUE(same_bits(a.input_grad, b.input_grad)) << c.spec << ": input gradient";
    EXPECT_TRUE(same_bits(a.params, b.params)) << c.spec;
    ASSERT_EQ(a.running.size(), b.running.size()) << c.spec;
    for (size_t i = 0; i < a.running.size(); ++i) EXPECT_TRUE(same_bits(a.running[i], b.running[i])) << c.spec;
    EXPECT_TRUE(same_bits(a.eval_logits, b.eval_logits)) << c.spec << ": eval forward";
  }
}

// A ReLU after a residual add, and the BatchNorm the add reads, stay as they are; the fused node keeps the BatchNorm's
// name and parameters and writes the ReLU's value.
TEST(Fusion, OnlyABatchNormWhoseOnlyConsumerIsAReluIsFused) {
  const net::NetSpec spec = net::load_netspec(repo("specs/mnist_resnet_tiny.json"));
  const net::Plan p = net::compile(spec, 2);
  auto node = [&](const std::string& name) -> const graph::Node& {
    for (const graph::Node& n : p.nodes)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  };
  const graph::Node& stem = node("stem.bn");
  EXPECT_TRUE(stem.attrs_as<prims::BatchNorm::Attrs>().relu);
  EXPECT_EQ(p.values[stem.output].name, "stem.relu");
  EXPECT_EQ(p.params[stem.params.at(0)].name, "stem.bn.gamma");
  EXPECT_THROW(node("stem.relu"), std::runtime_error);
  const graph::Node& last = node("stage1.0.bn");  // read by the block's add
  EXPECT_FALSE(last.attrs_as<prims::BatchNorm::Attrs>().relu);
  EXPECT_EQ(node("stage1.0.4").op, prims::index_of("relu"));  // the ReLU after the add
  // The fused node saves its mask: one byte per element, training only.
  const graph::SavedDecl& mask = stem.decl.saved.back();
  EXPECT_EQ(mask.elem, graph::Elem::U8);
  EXPECT_EQ(mask.per_example, 16u * 28 * 28);
  EXPECT_TRUE(mask.training_only);
  // A graph with nothing to fuse is returned as it was.
  graph::Graph g = p;
  EXPECT_EQ(net::fuse(g), 0u);
  EXPECT_EQ(g.nodes.size(), p.nodes.size());
}

// The whole-network contract (prime fields, the reference kernels through the shared executor) on the fused plan,
// and the unfused one, of the BN CNN at a small batch.
TEST(Fusion, TheWholeNetworkCheckPassesOnTheFusedPlan) {
  const net::NetSpec spec = net::load_netspec(repo("specs/mnist_cnn_bn.json"));
  for (net::Fusion f : {net::Fusion::On, net::Fusion::Off}) {
    const net::Plan p = net::compile(spec, 2, 0.1, f);
    EXPECT_EQ(fused_bns(p), f == net::Fusion::On ? 4u : 0u);
    const NetCheckReport r = verify_plan(p, 3, 1);
    EXPECT_TRUE(r.pass) << r.failure;
  }
}

}  // namespace fuse_test
