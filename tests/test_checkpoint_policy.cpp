// Checkpoint policy (issue 18 item 4): --keep-last K keeps the last K epoch checkpoints beside --out, and the early-
// stopping state (best metric, its epoch, validations since) is saved in the resumable checkpoint, so that a resumed
// run stops and writes best.safetensors at the epochs the uninterrupted run does.
//
// The scenario: the linear net on the bundled digits at lr 0.5 with --patience 2 validates 85.62, 88.88, ... 90.50
// (epoch 5), 89.88, 91.62 (epoch 7), 90.62, 90.88 % and stops after epoch 9 with its best at epoch 7. A run interrupted
// in epoch 8 (after the best, one validation without improvement) and resumed must stop at epoch 9 too, with the same
// best epoch and the same bytes in best.safetensors and the final checkpoint. A resume that forgot the state would take
// epoch 8's 90.62 % as its best and run on.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/file.hpp"

namespace checkpoint_policy_test {

namespace fs = std::filesystem;
using namespace veridl;
using namespace veridl::testutil;

class CheckpointPolicy : public ScratchDirTest {
 protected:
  CheckpointPolicy() : ScratchDirTest("veridl_checkpoint_policy_") {}
  static const char* flags() {
    return " --epochs 30 --lr 0.5 --patience 2 --no-progress --threads 2 --checkpoint-every 1";
  }
};

const std::string kSpec = repo("specs/mnist_linear.json");

// "" when the two checkpoints hold the same tensors and metadata except 'run_dir' (which names a run folder).
std::string same_but_run_dir(const std::string& x, const std::string& y) {
  train::Checkpoint a = train::load_safetensors(x), b = train::load_safetensors(y);
  a.metadata.erase("run_dir");
  b.metadata.erase("run_dir");
  if (a.metadata != b.metadata) return "metadata differs";
  if (a.tensors.size() != b.tensors.size()) return "tensor count differs";
  for (size_t k = 0; k < a.tensors.size(); ++k)
    if (a.tensors[k].name != b.tensors[k].name || a.tensors[k].shape != b.tensors[k].shape ||
        a.tensors[k].data != b.tensors[k].data)
      return "tensor " + a.tensors[k].name + " differs";
  return "";
}

// The uninterrupted run's facts the scenario relies on (checked, so that the resume tests below can bite).
TEST_F(CheckpointPolicy, KeepLastKeepsTheNewestEpochCheckpointsAndAResumedRunStopsWhereTheUninterruptedOneDoes) {
  Cmd a = sh("train --spec " + kSpec + flags() + " --keep-last 3 --out " + path("a/m.safetensors") + " --run-dir " +
             path("a/run"));
  ASSERT_EQ(a.status, 0) << a.out;
  ASSERT_NE(a.out.find("early stopping: val_accuracy has not improved for 2 validations (best 91.625 at epoch 7)"),
            std::string::npos)
      << a.out;
  // Epochs 7, 8, 9 kept (the last checkpoint is the epoch file of the stopping epoch); 1..6 deleted as they aged.
  for (int e = 1; e <= 9; ++e)
    EXPECT_EQ(fs::exists(path("a/m.epoch-" + std::to_string(e) + ".safetensors")), e >= 7) << e;
  EXPECT_NE(a.out.find("Saved params to " + path("a/m.safetensors") + " and " + path("a/m.epoch-4.safetensors") +
                       " (keeping the last 3; removed " + path("a/m.epoch-1.safetensors") + ")"),
            std::string::npos)
      << a.out;
  EXPECT_EQ(read_bytes(path("a/m.epoch-9.safetensors")), read_bytes(path("a/m.safetensors")));
  // Epoch 8's file records the state after one validation without improvement.
  const train::Resumable r8 = train::load_resume_state(path("a/m.epoch-8.safetensors"));
  EXPECT_FALSE(r8.complete);
  EXPECT_EQ(r8.state.epoch, 8u);
  EXPECT_EQ(r8.state.best_epoch, 7u);
  EXPECT_EQ(r8.state.best_value, 91.625);
  EXPECT_EQ(r8.state.since_best, 1u);
  EXPECT_TRUE(r8.state.stopping_state);
  EXPECT_EQ(r8.cfg.keep_last, 3u);

  // Resumed from epoch 8's file (--out defaults to the run's m.safetensors beside it): stops after epoch 9, best 7.
  fs::create_directories(path("b"));
  for (const char* f : {"m.epoch-7.safetensors", "m.epoch-8.safetensors"}) fs::copy_file(path(std::string("a/") + f), path(std::string("b/") + f));
  fs::create_directories(path("b/run"));
  fs::copy_file(path("a/run/best.safetensors"), path("b/run/best.safetensors"));
  const std::string best_before = read_bytes(path("b/run/best.safetensors"));
  Cmd b = sh("train --resume " + path("b/m.epoch-8.safetensors") + " --no-progress --threads 2 --run-dir " +
             path("b/run"));
  ASSERT_EQ(b.status, 0) << b.out;
  EXPECT_NE(b.out.find("resuming at epoch 9 batch 0"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("early stopping: val_accuracy has not improved for 2 validations (best 91.625 at epoch 7)"),
            std::string::npos)
      << b.out;
  EXPECT_EQ(b.out.find("Epoch 10/30"), std::string::npos) << b.out;
  // The same checkpoint but for the run folder it names.
  EXPECT_EQ(same_but_run_dir(path("b/m.safetensors"), path("a/m.safetensors")), "");
  EXPECT_EQ(read_bytes(path("b/m.epoch-9.safetensors")), read_bytes(path("b/m.safetensors")));
  EXPECT_EQ(read_bytes(path("b/run/best.safetensors")), best_before) << "epoch 9 is no improvement: best stays epoch 7's";
  EXPECT_EQ(nlohmann::json::parse(read_bytes(path("b/run/summary.json"))).at("best_epoch"), 7);
  EXPECT_FALSE(fs::exists(path("b/m.epoch-6.safetensors")));
  EXPECT_TRUE(fs::exists(path("b/m.epoch-7.safetensors")));  // the last 3: 7, 8, 9
  // Without --out there is nowhere to keep them.
  EXPECT_EQ(sh("train --spec " + kSpec + " --keep-last 2").out,
            "veridl train: error: --keep-last needs --out (the epoch checkpoints are kept beside it as <out "
            "stem>.epoch-<N>.safetensors)\n");
}

// In-process, interrupted in the middle of epoch 8 (a stop request after its 20th step): the resumed run ends exactly
// as the uninterrupted one (stop epoch, best epoch, parameters, best.safetensors). With the state stripped from the
// checkpoint (as an older VeriDL wrote it) the resumed run says so and starts the state afresh: its best is then a
// later epoch's, not 7's, which is what a run that ignored the saved state would do too.
TEST_F(CheckpointPolicy, MidEpochInterruptionKeepsTheEarlyStoppingStateAndOldCheckpointsStartItAfresh) {
  const net::NetSpec spec = net::load_netspec(kSpec);
  data::Split split = mnist();
  data::hold_out_validation(split, 0.1);
  FILE* null = std::fopen("/dev/null", "w");
  auto config = [&](const std::string& dir) {
    train::TrainConfig c;
    c.epochs = 30;
    c.batch = 128;
    c.optim.lr = 0.5;
    c.patience = 2;
    c.threads = 2;
    c.val_split = 0.1;
    c.checkpoint_every = 0;
    c.log = null;
    fs::create_directories(path(dir));
    c.run_dir = path(dir);
    c.out = path(dir + "/m.safetensors");
    return c;
  };
  const train::TrainResult a = train::train(spec, config("a"), split);
  ASSERT_TRUE(a.stopped_early);
  ASSERT_EQ(a.best_epoch, 7u);
  ASSERT_EQ(a.epoch_loss.size(), 9u);

  train::TrainConfig cb = config("b");
  const size_t bpe = split.train.n / cb.batch, stop_at = 7 * bpe + 20;
  cb.on_step = [&](size_t step) {
    if (step == stop_at) train::request_stop();
  };
  const train::TrainResult b1 = train::train(spec, cb, split);
  ASSERT_TRUE(b1.interrupted);
  train::Resumable r = train::load_resume_state(cb.out);
  EXPECT_EQ(r.state.epoch, 7u);  // 0-based: in epoch 8
  EXPECT_EQ(r.state.batch, 20u);
  EXPECT_EQ(r.state.best_epoch, 7u);
  EXPECT_EQ(r.state.since_best, 0u);
  r.cfg.log = null;
  r.cfg.run_dir = cb.run_dir;
  r.cfg.out = cb.out;
  r.cfg.threads = 2;
  EXPECT_EQ(r.cfg.patience, 2u) << "the checkpoint's config keeps --patience";
  EXPECT_EQ(r.state.run_dir, cb.run_dir);
  const train::TrainResult b2 = train::train(r.spec, r.cfg, split, &r.state);
  EXPECT_TRUE(b2.stopped_early);
  EXPECT_EQ(b2.best_epoch, 7u);
  EXPECT_EQ(b2.epoch_loss.size(), 2u) << "epochs 8 and 9";
  EXPECT_EQ(b2.model.params, a.model.params);
  EXPECT_EQ(read_bytes(path("b/best.safetensors")), read_bytes(path("a/best.safetensors")));

  // The same interrupted checkpoint (run again into c/: b's was overwritten by its end) without the state, as an
  // older VeriDL wrote it.
  train::TrainConfig cc = config("c");
  cc.on_step = cb.on_step;
  ASSERT_TRUE(train::train(spec, cc, split).interrupted);
  train::Checkpoint ck = train::load_safetensors(cc.out);
  ASSERT_EQ(ck.metadata.count("best_epoch"), 1u);
  for (const char* k : {"best_epoch", "best_value", "since_best", "run_dir"}) ck.metadata.erase(k);
  train::save_safetensors(cc.out, ck);
  train::Resumable old = train::load_resume_state(cc.out);
  EXPECT_FALSE(old.state.stopping_state);
  EXPECT_EQ(old.state.best_epoch, 0u);
  const std::string log_path = path("c/log.txt");
  FILE* log = std::fopen(log_path.c_str(), "w");
  old.cfg.log = log;
  old.cfg.run_dir = cc.run_dir;
  old.cfg.out = cc.out;
  old.cfg.threads = 2;
  const train::TrainResult c2 = train::train(old.spec, old.cfg, split, &old.state);
  std::fclose(log);
  EXPECT_NE(read_bytes(log_path).find("note: the checkpoint has no early-stopping state (written by an older VeriDL): "
                                      "the best val_accuracy and the --patience count start afresh at this epoch"),
            std::string::npos)
      << read_bytes(log_path);
  EXPECT_GT(c2.best_epoch, 7u) << "afresh: epoch 8 (90.62 %) becomes the best, then later ones";
  std::fclose(null);
}

TEST(CheckpointPolicyPaths, EpochFilesAreNamedAfterTheOutStemAndResumeFromThemWritesTheRunsFile) {
  EXPECT_EQ(train::epoch_checkpoint_path("runs/m.safetensors", 3), "runs/m.epoch-3.safetensors");
  EXPECT_EQ(train::epoch_checkpoint_path("m.ckpt", 12), "m.ckpt.epoch-12.safetensors");
  EXPECT_EQ(train::resume_out_path("runs/m.epoch-3.safetensors"), "runs/m.safetensors");
  EXPECT_EQ(train::resume_out_path("runs/m.safetensors"), "runs/m.safetensors");
  EXPECT_EQ(train::resume_out_path("runs/m.epoch-x.safetensors"), "runs/m.epoch-x.safetensors");
  EXPECT_EQ(train::resume_out_path("runs/.epoch-3.safetensors"), "runs/.epoch-3.safetensors");
}

}  // namespace checkpoint_policy_test
