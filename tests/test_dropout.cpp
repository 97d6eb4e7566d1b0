// Dropout and dropPath (stochastic depth; book ch. 9-10): their contracts and mutants, the counter-based generator
// of their decisions (keep rate, independence across steps, nodes and elements), eval's identity, fast and
// reference executors drawing the same decisions, the NetSpec's linear stochastic-depth ramp, the whole-network
// check with the decisions on the tape, and training runs that are reproducible and resume bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "contract_testutil.hpp"
#include "net_testutil.hpp"
#include "test_util.hpp"
#include "veridl/calculus/decisions.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/dropout/primitive.hpp"
#include "veridl/train/trainer.hpp"

namespace {

using namespace veridl;
namespace fs = std::filesystem;

const std::vector<std::string> kDropContracts = {"dropout_has_vjp_correct", "dropPath_has_vjp_correct"};

TEST(Dropout, ContractsVerifyAndEveryMutantIsRejected) {
  testutil::expect_contracts_verified(kDropContracts);
  testutil::expect_mutants_rejected(kDropContracts, {1, 2, 3});
}

// ---- the generator ---------------------------------------------------------------------------------------------

// Decision i keeps with probability q (within 5 standard deviations over 2^20 draws), for several keys.
TEST(DropNoise, KeepsWithTheRequestedProbability) {
  const size_t n = size_t{1} << 20;
  for (double q : {0.9, 0.7, 0.25, 0.5}) {
    const uint32_t th = noise::keep_threshold(q);
    for (uint64_t key : {uint64_t{0}, noise::node_key(1, 1, 3), noise::node_key(42, 1000, 0)}) {
      size_t kept = 0;
      for (size_t i = 0; i < n; ++i) kept += noise::keep(key, i, th);
      const double rate = double(kept) / double(n), sd = std::sqrt(q * (1 - q) / double(n));
      EXPECT_NEAR(rate, q, 5 * sd) << "q=" << q << " key=" << key;
    }
  }
  EXPECT_EQ(noise::keep_threshold(1.0), 1u << 24);  // rate 0: every decision keeps
  for (size_t i = 0; i < 1000; ++i) EXPECT_TRUE(noise::keep(12345, i, noise::keep_threshold(1.0)));
}

// Masks of different steps, nodes and seeds agree on a fraction q^2 + (1-q)^2 of their decisions (independent),
// not on all of them (the same mask reused) nor on none.
TEST(DropNoise, StepsNodesAndSeedsDrawIndependentMasks) {
  const double q = 0.7;
  const uint32_t th = noise::keep_threshold(q);
  const size_t n = 200000;
  auto agreement = [&](uint64_t a, uint64_t b) {
    size_t same = 0;
    for (size_t i = 0; i < n; ++i) same += noise::keep(a, i, th) == noise::keep(b, i, th);
    return double(same) / double(n);
  };
  const double expect = q * q + (1 - q) * (1 - q), tol = 5 * std::sqrt(expect * (1 - expect) / double(n));
  const uint64_t base = noise::node_key(7, 10, 4);
  EXPECT_NEAR(agreement(base, noise::node_key(7, 11, 4)), expect, tol) << "the next step";
  EXPECT_NEAR(agreement(base, noise::node_key(7, 10, 5)), expect, tol) << "the next node";
  EXPECT_NEAR(agreement(base, noise::node_key(8, 10, 4)), expect, tol) << "another seed";
  EXPECT_EQ(agreement(base, noise::node_key(7, 10, 4)), 1.0) << "the same (seed, step, node) draws the same mask";
  // Neighbouring decisions of one mask are independent too: runs of equal decisions as a fair source gives.
  size_t changes = 0;
  for (size_t i = 1; i < n; ++i) changes += noise::keep(base, i, th) != noise::keep(base, i - 1, th);
  EXPECT_NEAR(double(changes) / double(n - 1), 2 * q * (1 - q), tol);
  std::set<uint64_t> keys;
  for (uint64_t seed = 0; seed < 4; ++seed)
    for (uint64_t step = 0; step < 50; ++step)
      for (uint64_t node = 0; node < 50; ++node) keys.insert(noise::node_key(seed, step, node));
  EXPECT_EQ(keys.size(), 4u * 50 * 50);
}

// ---- the primitive in the executors ----------------------------------------------------------------------------

std::vector<float> random_input(const net::Plan& p, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n * p.input_width());
  for (float& v : x) v = nd(rng);
  return x;
}

size_t node_index(const net::Plan& p, const std::string& name) {
  for (size_t k = 0; k < p.nodes.size(); ++k)
    if (p.nodes[k].name == name) return k;
  ADD_FAILURE() << "no node " << name;
  return 0;
}

TEST(Dropout, TheFastAndReferenceExecutorsAgreeWithTheSameDecisions) {
  testutil::expect_fast_kernels_match_reference(testutil::drop_net(), 2e-4);
}

// In training, the dropout node's output is x / q where kept and 0 where dropped, with the decisions it saved; the
// same (seed, step) draws the same decisions, the next step others; in evaluation the net is the net without them.
TEST(Dropout, TrainingDropsAndScalesAndEvaluationIsTheIdentity) {
  const size_t B = 8;
  const net::Plan p = net::compile(testutil::drop_net(), B);
  net::Executor<float, net::FastKernels> ex(p);
  train::he_init(p, 3, ex.params().data());
  const std::vector<float> x = random_input(p, B, 9);
  Decisions live;
  const size_t k = node_index(p, "layers.3");  // the dropout
  ASSERT_EQ(p.nodes[k].name, "layers.3");
  const size_t W = p.values[p.nodes[k].inputs[0]].shape.size();
  auto run = [&](uint64_t step) {
    ex.set_noise(5, step);
    ex.forward(x.data(), B, live, net::Mode::Train);
    return std::vector<uint8_t>(ex.saved8(k, 0), ex.saved8(k, 0) + B * W);
  };
  const std::vector<uint8_t> m1 = run(1);
  size_t kept = 0;
  for (uint8_t v : m1) kept += v;
  EXPECT_GT(kept, B * W / 2);  // rate 0.3: about 70% kept
  EXPECT_LT(kept, B * W * 9 / 10);
  EXPECT_EQ(run(1), m1) << "the same seed and step draw the same decisions";
  EXPECT_NE(run(2), m1) << "the next step draws other decisions";

  // The dropout node's output against its input, at step 1.
  net::Executor<double, net::RefKernels> ref(p);
  std::copy(ex.params().begin(), ex.params().end(), ref.params().begin());
  ref.set_noise(5, 1);
  Decisions rec(Decisions::Mode::Record);
  const std::vector<double> xd(x.begin(), x.end());
  ref.forward(xd.data(), B, rec, net::Mode::Train);
  EXPECT_EQ(std::vector<uint8_t>(ref.saved8(k, 0), ref.saved8(k, 0) + B * W), m1)
      << "the reference draws the fast kernels' decisions (same key)";

  // Evaluation: the logits of the same net without dropout and dropPath (no parameters of their own).
  net::NetSpec plain = testutil::drop_net();
  plain.drop_path = 0;
  plain.layers.erase(plain.layers.begin() + 3);
  const net::Plan pp = net::compile(plain, B);
  ASSERT_EQ(pp.n_params, p.n_params);
  net::Executor<float, net::FastKernels> ev(pp);
  ev.params() = ex.params();
  for (size_t s = 0; s < ex.running_stats().size(); ++s) *ev.running_stats()[s] = *ex.running_stats()[s];
  const float* a = ex.forward(x.data(), B, live, net::Mode::Eval);
  const std::vector<float> la(a, a + B * 4);
  const float* b = ev.forward(x.data(), B, live, net::Mode::Eval);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i], b[i]) << i;
}

// The whole-network contract with dropout and dropPath nodes: the decisions recorded by the real run are
// replayed over the field (and a random tape covers the other patterns).
TEST(Dropout, TheWholeNetworkVerifiesWithItsDecisionsOnTheTape) {
  const net::Plan p = net::compile(testutil::drop_net(), 3);
  const NetCheckReport r = verify_plan(p, 11, 2);
  EXPECT_TRUE(r.pass) << r.failure;
}

// ---- the NetSpec -------------------------------------------------------------------------------------------------

std::map<std::string, double> drop_rates(const net::NetSpec& spec) {
  const graph::Graph g = net::lower(spec, "<test>");
  std::map<std::string, double> r;
  for (const graph::Node& n : g.nodes)
    if (testutil::op_name(n) == "dropPath") r[n.name] = n.attrs_as<prims::DropPath::Attrs>().rate;
  return r;
}

TEST(DropPath, TheNetSpecRampsTheRateLinearlyOverTheResidualBlocks) {
  // DropNet: 3 blocks, rates 0, 0.2, 0.4 (block 0 gets no node); the dropPath sits on the branch, before the add.
  const std::map<std::string, double> dn = drop_rates(testutil::drop_net());
  ASSERT_EQ(dn.size(), 2u);
  EXPECT_DOUBLE_EQ(dn.at("layers.1.1.drop"), 0.2);
  EXPECT_DOUBLE_EQ(dn.at("layers.1.2.drop"), 0.4);
  const graph::Graph g = net::lower(testutil::drop_net(), "<test>");
  EXPECT_EQ(testutil::input_name(g, "layers.1.1.add", 0), "layers.1.1.drop");
  EXPECT_EQ(testutil::input_name(g, "layers.1.1.drop", 0), "layers.1.1.conv2.bn");

  // EfficientNet-B0 (its 28x28 variant): 16 blocks, 9 with a skip; block i drops with 0.2 i / 15 (the original's
  // dropKeeps: the global block index over blocks - 1, the blocks without a skip counted too).
  net::NetSpec enet = net::load_netspec(repo("specs/efficientnet_b0_small.json"));
  const size_t params = enet.param_count();
  enet.drop_path = 0.2;
  const std::map<std::string, double> er = drop_rates(enet);
  EXPECT_EQ(er.size(), 9u);
  EXPECT_EQ(enet.param_count(), params) << "dropPath adds no parameter";
  std::vector<double> rates;
  for (const auto& [name, rate] : er) rates.push_back(rate);
  std::set<double> expected;
  for (int i : {2, 4, 6, 7, 9, 10, 12, 13, 14}) expected.insert(0.2 * i / 15);
  std::set<double> got(rates.begin(), rates.end());
  ASSERT_EQ(got.size(), expected.size());
  for (auto a = got.begin(), b = expected.begin(); a != got.end(); ++a, ++b) EXPECT_NEAR(*a, *b, 1e-15);

  // ConvNeXt (28x28 variant): every block has a skip; the last block drops with the net's rate.
  net::NetSpec cnx = net::load_netspec(repo("specs/convnext_small28.json"));
  size_t blocks = 0;
  for (const net::LayerSpec& l : cnx.layers)
    if (l.type == "convNextStage") blocks += l.fields.at("nBlocks").get<size_t>();
  cnx.drop_path = 0.1;
  const std::map<std::string, double> cr = drop_rates(cnx);
  EXPECT_EQ(cr.size(), blocks - 1);
  double top = 0;
  for (const auto& [name, rate] : cr) top = std::max(top, rate);
  EXPECT_DOUBLE_EQ(top, 0.1);

  // None without the field; the normalised JSON keeps it (a checkpoint's spec re-lowers to the same graph).
  EXPECT_TRUE(drop_rates(net::load_netspec(repo("specs/convnext_small28.json"))).empty());
  const net::NetSpec back = net::parse_netspec(cnx.to_json().dump(), "<roundtrip>");
  EXPECT_EQ(back.drop_path, 0.1);
  EXPECT_EQ(drop_rates(back), cr);
}

// specs/convnext_small28_dp.json: `veridl info` lists each block's dropPath node with its rate on the ramp.
TEST(DropPath, InfoShowsEachBlocksRate) {
  const Cmd c = sh("info --spec " + repo("specs/convnext_small28_dp.json"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("ConvNeXt-Small28-DropPath: 175210 params"), std::string::npos) << c.out;
  // (the type column is as wide as the plan's longest primitive name, globalAvgPool)
  for (const char* line : {"stage1.1.drop      dropPath      stage1.1.ls                 -> 32x14x14   rate=0.02",
                           "stage2.3.drop      dropPath      stage2.3.ls                 -> 64x7x7     rate=0.1"})
    EXPECT_NE(c.out.find(line), std::string::npos) << line << "\n" << c.out;
  EXPECT_EQ(c.out.find("stage1.0.drop"), std::string::npos) << "block 0 has rate 0: no node";
}

TEST(DropPath, BadRatesAreOneLineErrorsNamingTheField) {
  const std::string layers = R"("layers": [{"type": "flatten"}, {"type": "dropout", "rate": RATE}, {"type": "dense", "fanIn": 784, "fanOut": 10}])";
  auto with_rate = [&](const std::string& rate) {
    std::string l = layers;
    l.replace(l.find("RATE"), 4, rate);
    return testutil::spec_error(R"({"name": "d", )" + l + "}");
  };
  EXPECT_TRUE(mentions(with_rate("1"), {"b.json", "layer 1 (dropout)", "field 'rate' must be in [0, 1)", "got 1"}));
  EXPECT_TRUE(mentions(with_rate("-0.1"), {"layer 1 (dropout)", "field 'rate'"}));
  std::string ok = layers;
  ok.replace(ok.find("RATE"), 4, "0.1");
  EXPECT_TRUE(mentions(testutil::spec_error(R"({"name": "d", "dropPath": 1.5, )" + ok + "}"),
                       {"b.json", "field 'dropPath' must be in [0, 1)", "got 1.5"}));
}

// ---- training ----------------------------------------------------------------------------------------------------

// A linear classifier behind a dropout layer on the bundled digits: two runs with one seed are identical, another
// seed or no dropout differs, and a run interrupted mid-epoch and resumed draws the masks the whole run drew.
TEST(Dropout, TrainingIsReproducibleAndResumesBitForBit) {
  const fs::path d = fs::temp_directory_path() / ("veridl_dropout_" + std::to_string(::getpid()));
  fs::create_directories(d);
  const net::NetSpec spec = net::NetBuilder("DropLinear").flatten().layer("dropout", {{"rate", 0.5}}).dense(784, 10).build();
  train::TrainConfig c;
  c.epochs = 2;
  c.threads = 2;
  c.optim.momentum = 0.9;
  c.log = std::fopen("/dev/null", "w");
  c.out = (d / "full.safetensors").string();
  const auto full = train::train(spec, c, mnist());
  c.out.clear();
  EXPECT_EQ(train::train(spec, c, mnist()).model.params, full.model.params) << "the same seed";
  c.seed = full.steps + 99;
  EXPECT_NE(train::train(spec, c, mnist()).model.params, full.model.params) << "another seed";
  c.seed = train::TrainConfig{}.seed;
  const net::NetSpec plain = net::NetBuilder("DropLinear").flatten().dense(784, 10).build();
  EXPECT_NE(train::train(plain, c, mnist()).model.params, full.model.params) << "the dropout layer does nothing";

  constexpr size_t stop_at = 50;
  c.out = (d / "r.safetensors").string();
  c.on_step = [](size_t step) {
    if (step == stop_at) train::request_stop();
  };
  const auto first = train::train(spec, c, mnist());
  c.on_step = nullptr;
  ASSERT_TRUE(first.interrupted);
  train::Resumable r = train::load_resume_state(c.out);
  const auto second = train::train(r.spec, r.cfg, mnist(), &r.state);
  EXPECT_EQ(second.model.params, full.model.params);
  std::fclose(c.log);
  fs::remove_all(d);
}

}  // namespace
