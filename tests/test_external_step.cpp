// train::ExternalStep (the engine of `veridl train --device iree:...`) against the native engine, bit for bit, with a
// device made of the native pieces: its step is the native forward, backward and optimizer update, and it returns
// what the exported train step returns (parameters, optimizer state, loss, batch statistics, logits), so that
// everything ExternalStep and train() do around the device — the running statistics, the training accuracy,
// evaluation's scoring (padded last chunk), the upload / download of parameters and optimizer state, checkpoints and
// resuming across engines — must give the native run's bits. The IREE device itself is compared within float32
// tolerance by tests/iree_train.py. Deliberate faults (util/plumbing_fault.hpp) must be caught.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/external_step.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/plumbing_fault.hpp"

namespace external_step_test {  // named: the unity build puts other test files' helpers beside these

using namespace veridl::testutil;
namespace train = veridl::train;
namespace net = veridl::net;
namespace data = veridl::data;
using veridl::PlumbingFault;
using veridl::ScopedPlumbingFault;

// The device: native kernels behind the ExternalDevice calls. The BatchNorm batch statistics are read as the running
// statistics of a forward run with momentum 1 (running = batch, exactly); its own running statistics are otherwise
// unused (the eval forward takes the caller's).
struct NativeDevice {
  net::Plan plan, eval_plan;
  net::Executor<float, net::FastKernels> ex;
  net::Executor<float, net::FastKernels> eval_ex;
  train::Optimizer opt;
  veridl::Decisions live;
  size_t steps = 0, loads = 0, fetches = 0;
  NativeDevice(const net::Plan& p, const train::OptimConfig& o, size_t eval_batch)
      : plan(p), eval_plan(net::compile(p.spec, eval_batch, 0.0)), ex(plan), eval_ex(eval_plan, net::Purpose::Inference),
        opt(plan, o) {}
  train::ExternalDevice device() {
    train::ExternalDevice d;
    d.eval_batch = eval_plan.batch;
    d.load = [this](const std::vector<float>& params, const std::vector<std::vector<float>>& state) {
      ++loads;
      ex.params() = params;
      auto s = opt.state();
      ASSERT_EQ(s.size(), state.size());
      for (size_t k = 0; k < s.size(); ++k) *s[k].second = state[k];
    };
    d.fetch = [this](std::vector<float>& params, std::vector<std::vector<float>>& state) {
      ++fetches;
      params = ex.params();
      state.clear();
      for (auto& [name, buf] : opt.state()) state.push_back(*buf);
    };
    d.step = [this](const float* x, const int32_t* labels, float lr, size_t t, std::vector<std::vector<float>>& stats,
                    float* logits) {
      ++steps;
      ex.set_running_momentum(1.0);
      const float loss = ex.forward_loss(x, labels, plan.batch, live, net::Mode::Train);
      std::copy(ex.logits_data(), ex.logits_data() + plan.batch * plan.num_classes, logits);
      auto rs = ex.running_stats();
      for (size_t k = 0; k < rs.size(); ++k) stats[k] = *rs[k];
      ex.backward(1.0f);
      opt.step(ex.params().data(), ex.mutable_grads().data(), lr, t);
      return loss;
    };
    d.forward = [this](const std::vector<std::vector<float>>& running, const float* x, float* logits) {
      eval_ex.params() = ex.params();
      auto rs = eval_ex.running_stats();
      for (size_t k = 0; k < rs.size(); ++k) *rs[k] = running[k];
      const float* z = eval_ex.forward(x, eval_plan.batch, live, net::Mode::Eval);
      std::copy(z, z + eval_plan.batch * eval_plan.num_classes, logits);
    };
    return d;
  }
};

// The first n digits of the bundled training set as training data, the next m as the validation and test sets.
data::Split digits(size_t n, size_t m) {
  const data::Dataset& all = mnist().train;
  auto part = [&](size_t from, size_t count) {
    data::Dataset d;
    d.n = count;
    d.C = all.C;
    d.H = all.H;
    d.W = all.W;
    d.images.resize(count * all.image_size());
    all.copy_images(from, count, d.images.data());
    d.labels.assign(all.labels.begin() + static_cast<std::ptrdiff_t>(from),
                    all.labels.begin() + static_cast<std::ptrdiff_t>(from + count));
    d.num_classes = 10;
    d.source = "digits";
    return d;
  };
  data::Split s;
  s.train = part(0, n);
  s.val = part(n, m);
  s.test = part(n + m, m);
  s.name = "digits";
  return s;
}

// A small BatchNorm CNN: convBn-pool twice, dense.
net::NetSpec bn_cnn() {
  return net::NetBuilder("ExtBN").image(28, 28, 1).conv_bn(1, 4, 3).max_pool(2, 2).conv_bn(4, 6, 3).max_pool(2, 2)
      .flatten().dense(294, 10).build();
}

// A scratch directory, removed at the end of the test.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("veridl_ext_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

train::TrainConfig config(const std::string& out = "") {
  train::TrainConfig c;
  c.epochs = 2;
  c.batch = 8;
  c.optim.kind = "adamw";
  c.optim.lr = 3e-3;
  c.optim.weight_decay = 1e-4;
  c.optim.cosine = true;
  c.optim.warmup_epochs = 0.5;
  c.seed = 7;
  c.threads = 2;
  c.checkpoint_every = 1;
  c.keep_last = out.empty() ? 0 : 2;
  c.out = out;
  c.augment.pad = 2;  // the seeded crop too: the batches are train()'s either way
  static FILE* null = std::fopen("/dev/null", "w");
  c.log = null;
  return c;
}

// The device of a run (kept for its counters) and the engine factory that makes it.
struct Harness {
  std::shared_ptr<NativeDevice> dev;
  train::TrainConfig with_engine(train::TrainConfig c, size_t eval_batch) {
    c.device = "native-as-device";
    c.engine = [this, eval_batch](const net::Plan& p, const train::TrainConfig& cfg) -> std::unique_ptr<train::StepEngine> {
      dev = std::make_shared<NativeDevice>(p, cfg.optim, eval_batch);
      return std::make_unique<train::ExternalStep>(p, cfg.optim, dev->device());
    };
    return c;
  }
};

// Every difference between two runs, as lines ("" when identical bit for bit).
std::string differences(const train::TrainResult& a, const train::TrainResult& b) {
  std::string d;
  if (a.step_loss != b.step_loss) d += "step losses differ\n";
  if (a.epoch_accuracy != b.epoch_accuracy) d += "training accuracies differ\n";
  if (a.model.params != b.model.params) d += "parameters differ\n";
  if (a.model.running != b.model.running) d += "running statistics differ\n";
  if (a.val_evals.size() != b.val_evals.size()) d += "validation counts differ\n";
  for (size_t k = 0; k < std::min(a.val_evals.size(), b.val_evals.size()); ++k)
    if (a.val_evals[k].correct != b.val_evals[k].correct || a.val_evals[k].confusion != b.val_evals[k].confusion)
      d += fmt::format("validation {} differs\n", k);
  if (a.final_eval.correct != b.final_eval.correct || a.final_eval.correct5 != b.final_eval.correct5 ||
      a.final_eval.confusion != b.final_eval.confusion)
    d += "test results differ\n";
  return d;
}

TEST(ExternalStep, ANativeBackedDeviceTrainsBitForBitAsTheNativeEngine) {
  const net::NetSpec spec = bn_cnn();
  const data::Split split = digits(40, 13);  // 5 batches of 8; 13 evaluation images: chunks of 8, the last padded
  const train::TrainResult native = train::train(spec, config(), split);
  Harness h;
  const train::TrainResult ext = train::train(spec, h.with_engine(config(), 8), split);
  EXPECT_EQ(differences(native, ext), "");
  EXPECT_EQ(h.dev->steps, 10u);
  EXPECT_EQ(h.dev->loads, 1u) << "the parameters stay on the device between steps";
  // The evaluation loss sums each chunk's float mean: native chunks max(batch, 128) capped at the set (one of 13
  // here), the device's chunks of its batch (8 + 5): the same to float rounding, not to the bit.
  EXPECT_NEAR(native.final_eval.loss, ext.final_eval.loss, 1e-6 * native.final_eval.loss);
  for (size_t k = 0; k < native.val_evals.size(); ++k)
    EXPECT_NEAR(native.val_evals[k].loss, ext.val_evals[k].loss, 1e-6 * native.val_evals[k].loss);
}

TEST(ExternalStep, TheDeliberateFaultsAreCaught) {
  const net::NetSpec spec = bn_cnn();
  const data::Split split = digits(40, 13);
  const train::TrainResult native = train::train(spec, config(), split);
  {
    ScopedPlumbingFault f(PlumbingFault::ExternalSkipsRunningUpdate);
    Harness h;
    const std::string d = differences(native, train::train(spec, h.with_engine(config(), 8), split));
    EXPECT_NE(d.find("running statistics differ"), std::string::npos) << d;
  }
  {
    ScopedPlumbingFault f(PlumbingFault::ExternalStaleLr);
    Harness h;
    const std::string d = differences(native, train::train(spec, h.with_engine(config(), 8), split));
    EXPECT_NE(d.find("step losses differ"), std::string::npos) << d;
  }
}

// One checkpoint format: a run checkpointed by either engine after epoch 1 resumes on the other, and both give the
// uninterrupted run's bits.
TEST(ExternalStep, CheckpointsResumeAcrossEnginesBitForBit) {
  const net::NetSpec spec = bn_cnn();
  const data::Split split = digits(40, 13);
  ScratchDir dir("resume");
  const std::string nat_out = dir / "nat.safetensors", ext_out = dir / "ext.safetensors";
  const train::TrainResult native = train::train(spec, config(nat_out), split);
  Harness h;
  const train::TrainResult ext = train::train(spec, h.with_engine(config(ext_out), 8), split);
  ASSERT_EQ(differences(native, ext), "");
  // The epoch-1 checkpoints of the two engines: the same bytes.
  const train::Checkpoint a = train::load_safetensors(train::epoch_checkpoint_path(nat_out, 1));
  const train::Checkpoint b = train::load_safetensors(train::epoch_checkpoint_path(ext_out, 1));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t k = 0; k < a.tensors.size(); ++k) EXPECT_EQ(a.tensors[k].data, b.tensors[k].data) << a.tensors[k].name;
  EXPECT_EQ(a.metadata, b.metadata);
  // native epoch 1 -> device; device epoch 1 -> native.
  for (const bool to_device : {true, false}) {
    train::Resumable r = train::load_resume_state(train::epoch_checkpoint_path(to_device ? nat_out : ext_out, 1));
    train::TrainConfig c = config();
    c.epochs = r.cfg.epochs;
    Harness hr;
    const train::TrainResult rest =
        train::train(spec, to_device ? hr.with_engine(c, 8) : c, split, &r.state);
    EXPECT_EQ(rest.model.params, native.model.params) << (to_device ? "native -> device" : "device -> native");
    EXPECT_EQ(rest.model.running, native.model.running);
    EXPECT_EQ(rest.final_eval.confusion, native.final_eval.confusion);
    std::vector<double> second(native.step_loss.begin() + 5, native.step_loss.end());
    EXPECT_EQ(rest.step_loss, second);
    if (to_device) {
      EXPECT_EQ(hr.dev->loads, 1u);
    }
  }
}

TEST(ExternalStep, RefusesWhatTheDeviceIsNotGiven) {
  const net::NetSpec spec = net::NetBuilder("Drop").image(28, 28, 1).flatten().dense(784, 16)
                               .layer("dropout", {{"rate", 0.5}}).dense(16, 10).build();
  const net::Plan plan = net::compile(spec, 4);
  try {
    train::ExternalDevice device;
    device.eval_batch = 4;
    train::ExternalStep s(plan, train::OptimConfig{}, device);
    FAIL() << "a network with dropout was accepted";
  } catch (const veridl::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "Drop has a dropout / dropPath layer ('layers.2'), whose decisions an external device is not given yet: "
              "train it with the native engine (--device native)");
  }
}

}  // namespace external_step_test
