// Bit pins: every shipped spec trains, through the command line, to a pinned checkpoint and pinned epoch losses,
// so that any change to the numerics of training (a kernel's summation order, the optimizer, the schedule, the
// augmentation, the initialisation, the shuffle, BatchNorm's running statistics, the checkpoint layout) fails
// here instead of drifting silently.
//
// Each test writes a small dataset whose pixels come from a fixed integer formula (no RNG library whose output
// could change): 96 train and 32 test images, labels i % 10, in the format `--data DIR` reads (IDX files for
// the 28x28 specs, CIFAR-10 binary files for the 32x32x3 one), and runs
//   veridl train --spec specs/<spec>.json --data data --epochs 2 --batch 32 --seed 7 --threads 2 --no-progress
//                --val-split 0 --eval-every 10 --out m.safetensors
// in its scratch directory (otherwise the spec's own recipe: SGD for mnist_linear; AdamW with weight decay and
// per-step warmup then cosine for the others (cifar_cnn_bn's 2 warmup epochs fill these 2 epochs); random crop
// and flip for cifar_cnn_bn; BatchNorm for the *_bn specs). Two more runs add the flags no shipped recipe uses:
// SGD momentum, plain Adam, label smoothing and gradient clipping. Each run evaluates after its last epoch. Two
// 64-bit FNV-1a hashes are compared with the pins:
//  - of the whole checkpoint file (parameters, BatchNorm running statistics, optimizer state, and the metadata:
//    spec, config, position, epoch loss as a hex float, test accuracy). The metadata is deterministic: `--data`
//    is given as the relative path "data" (the checkpoint records it as given; the scratch directory's absolute
//    path, which holds the pid, would otherwise make every run's bytes differ) and nothing holds a time;
//  - of the printed loss lines ("  step k/3: loss=...", "Epoch  k/2: loss=... lr=...", and the accuracy line
//    after the last epoch), each without its trailing timing " (<n>ms)" or " (<n>us)".
//
// Where the pins come from: the engine before the graph-IR redesign, commit c7b8f9b (Release, -march=native, on an
// x86-64 machine with AVX2, FMA and AVX-512), ran the command above on the identical dataset files (written by this
// test with VERIDL_BITPIN_KEEP=DIR, which keeps each run's dataset and arguments in DIR/<name>/), and an independent
// FNV-1a (a Python script, not this file's code) of its checkpoint bytes and loss lines gave the constants. The
// redesigned engine (1ea0e04) reproduced all of them. The portable build with runtime kernel dispatch changed the
// checkpoint pins (and the losses of the two BatchNorm runs) once, deliberately: the code outside the kernels (the
// optimizer, the initialisation, BatchNorm's running statistics) is now compiled for x86-64-v2, where GCC has no
// FMA to contract a * b + c into, where -march=native had contracted it; the kernels' numerics did not change (the
// same pins before and after the kernels moved into their AVX2 / AVX-512 variants, on a -march=native build).
// Then the Adam runs' pins changed, deliberately: Adam's 1 - beta constants became PyTorch's (rounded from double:
// 0.001f, not 1 - 0.999f), and the dense input gradient at the MLP's shapes moved from the dot-product nest to the
// broadcast nest (each element one FMA chain instead of 8 lane sums: another rounding). Last, the loss-line pins
// (not the checkpoint pins) changed without any numerics changing: the accuracy line after the last epoch became
// "  test accuracy: ..." when a validation split was introduced (the pinned runs pass --val-split 0 --eval-every 10
// to keep their semantics; an independent Python FNV-1a of the new lines gave the constants). In session 17 the
// 3x3 stride-1 convolutions gained a Winograd F(4x4, 3x3) path (prims/conv2d/winograd.hpp), another rounding, which
// the default policy then took only at larger shapes than these specs'; the three convolutional runs were repeated
// with VERIDL_WINOGRAD=1 (Winograd wherever it applies: every 3x3 convolution of theirs but the first), whose pins
// came from an independent Python FNV-1a of those runs (VERIDL_ISA=avx2 and =avx512 alike). In session 18 Winograd
// became the default wherever it applies (its transforms moved to vectors of channels, with the same operations per
// element, and paid at every shape measured), so the two pairs of pins swapped places: the default runs now give
// the former VERIDL_WINOGRAD=1 pins, and the repeats, now with VERIDL_WINOGRAD=0 (im2col + GEMM), the former
// default pins. No constant is new. In session 25 training began to flush subnormal floats to zero by default
// (kernels/fpenv.hpp, `--keep-subnormals` to keep them): of all the runs only fashion_convnet's default (Winograd)
// checkpoint changed, 0xaeec92eae7d94c07 -> 0x20177296a0967bbe (its losses did not), from an independent Python
// FNV-1a of the run's file; the same run with --keep-subnormals, its checkpoint's "keepSubnormals" entry taken out
// of the header again, hashes to the old pin: the flush is the whole change.
//
// Each test trains under every kernel variant the CPU runs except the portable one (VERIDL_ISA=avx2, and =avx512
// on an AVX-512 CPU) and expects the same pins from each: the AVX2 and AVX-512 variants train bit-identically
// (docs/kernels.md). A deliberate change to the numerics must update these constants in the same commit and say
// in its message why the bits changed (and that the change was intended); an unexplained mismatch is a
// regression. On a mismatch the test prints the actual hashes and the run's output. The portable variant rounds
// differently (no FMA), so is not pinned; a VERIDL_NATIVE=ON build contracts outside the kernels and is skipped;
// and the pins are GCC's (clang contracts multiply-adds into FMA by default and rounds differently: the sanitizer
// build of scripts/ci-checks.sh skips them).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include "test_util.hpp"
#include "veridl/kernels/isa.hpp"

using namespace veridl::testutil;
namespace fs = std::filesystem;

namespace {

constexpr size_t kTrain = 96, kTest = 32;

uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Pixel p of image i of a set (salt tells train from test): a mixed integer hash in 0..127 plus 128 on a
// class-dependent band of pixels, so that the labels are learnable. Unsigned 32-bit arithmetic only.
uint8_t pixel(uint32_t i, uint32_t p, uint32_t salt) {
  uint32_t x = (i + salt) * 2654435761u + p * 2246822519u + 0x9E3779B9u;
  x ^= x >> 13;
  x *= 0x85EBCA6Bu;
  x ^= x >> 16;
  const uint32_t label = i % 10;
  return static_cast<uint8_t>((x & 0x7Fu) + ((p / 7) % 10 == label ? 128u : 0u));
}

void put_be32(std::string& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xFFu));
}

void write_idx(const fs::path& dir, const std::string& prefix, size_t n, uint32_t salt) {
  std::string images, labels;
  put_be32(images, 0x00000803u);
  put_be32(images, static_cast<uint32_t>(n));
  put_be32(images, 28);
  put_be32(images, 28);
  put_be32(labels, 0x00000801u);
  put_be32(labels, static_cast<uint32_t>(n));
  for (uint32_t i = 0; i < n; ++i) {
    for (uint32_t p = 0; p < 28 * 28; ++p) images.push_back(static_cast<char>(pixel(i, p, salt)));
    labels.push_back(static_cast<char>(i % 10));
  }
  write_bytes(dir / (prefix + "-images-idx3-ubyte"), images);
  write_bytes(dir / (prefix + "-labels-idx1-ubyte"), labels);
}

// CIFAR-10 binary: per record, the label byte then 3 x 1024 bytes (the R, G and B planes).
void write_cifar(const fs::path& file, size_t n, uint32_t salt) {
  std::string b;
  for (uint32_t i = 0; i < n; ++i) {
    b.push_back(static_cast<char>(i % 10));
    for (uint32_t p = 0; p < 3 * 1024; ++p) b.push_back(static_cast<char>(pixel(i, p, salt)));
  }
  write_bytes(file, b);
}

// The loss lines of the output, each ending in '\n': "  step k/n: loss=...", "Epoch  k/2: loss=... lr=...",
// "  val accuracy: ..." and "  test accuracy: ...", each without a trailing timing " (<digits>ms)" or " (<digits>us)".
std::string loss_lines(const std::string& out) {
  std::istringstream in(out);
  std::string line, r;
  while (std::getline(in, line)) {
    if (line.rfind("Epoch ", 0) != 0 && line.rfind("  step ", 0) != 0 && line.rfind("  val accuracy: ", 0) != 0 &&
        line.rfind("  test accuracy: ", 0) != 0)
      continue;
    const size_t open = line.rfind(" (");
    if (open != std::string::npos && line.size() > open + 5 && line.back() == ')') {
      const std::string unit = line.substr(line.size() - 3, 2);
      const std::string digits = line.substr(open + 2, line.size() - 3 - (open + 2));
      if ((unit == "ms" || unit == "us") && !digits.empty() &&
          digits.find_first_not_of("0123456789") == std::string::npos)
        line.resize(open);
    }
    r += line + "\n";
  }
  return r;
}

std::string hex(uint64_t v) {
  static const char* d = "0123456789abcdef";
  std::string s = "0x";
  for (int k = 60; k >= 0; k -= 4) s += d[(v >> k) & 0xFu];
  return s;
}

struct Pin {
  const char* name;     // the run's, and its directory's under VERIDL_BITPIN_KEEP
  const char* spec;     // specs/<spec>.json
  const char* flags;    // beyond the common ones (see the top)
  uint64_t checkpoint;  // FNV-1a 64 of the checkpoint file
  uint64_t losses;      // FNV-1a 64 of the loss lines
  // The same run with VERIDL_WINOGRAD=0 (im2col + GEMM at the 3x3 stride-1 convolutions of 16+ channels, which
  // take Winograd by default), for the specs with such convolutions (0: none, the run is not repeated).
  uint64_t checkpoint_im2col = 0, losses_im2col = 0;
};

class BitPin : public ScratchDirTest {
 protected:
  BitPin() : ScratchDirTest("veridl_bitpin_") {}

  void check(const Pin& pin) {
#if defined(VERIDL_NATIVE_BUILD)
    GTEST_SKIP() << "the bit pins are the portable build's: -march=native lets GCC contract a * b + c outside the kernels";
#elif defined(__clang__)
    GTEST_SKIP() << "the bit pins are GCC's: clang contracts a * b + c into one FMA by default (-ffp-contract=on), "
                    "GCC in ISO C++ mode does not, so a clang build (the sanitizer build) rounds differently";
#endif
    if (veridl::kernels::cpu_isa() == veridl::kernels::Isa::Portable)
      GTEST_SKIP() << "the bit pins are the AVX2 and AVX-512 kernel variants' (this CPU runs only the portable ones)";
    const bool cifar = std::string(pin.spec) == "cifar_cnn_bn";
    const fs::path data = dir_ / "data";
    fs::create_directories(data);
    if (cifar) {
      write_cifar(data / "data_batch_1.bin", kTrain, 0);
      write_cifar(data / "test_batch.bin", kTest, 1000);
    } else {
      write_idx(data, "train", kTrain, 0);
      write_idx(data, "t10k", kTest, 1000);
    }
    const std::string args = "train --spec '" + repo("specs/" + std::string(pin.spec) + ".json") +
                             "' --data data --epochs 2 --batch 32 --seed 7 --threads 2 --no-progress" +
                             " --val-split 0 --eval-every 10" +  // the pinned runs' semantics (see the top)
                             " --out m.safetensors" + pin.flags;
    if (const char* keep = std::getenv("VERIDL_BITPIN_KEEP")) {  // the run's files for a reference engine (see the top)
      const fs::path k = fs::path(keep) / pin.name;
      fs::remove_all(k);
      fs::create_directories(k);
      fs::copy(data, k / "data", fs::copy_options::recursive);
      write_bytes(k / "args", args + "\n");
    }
    // Every variant the CPU runs except the portable one trains to the same bits (docs/kernels.md says why).
    for (veridl::kernels::Isa isa : veridl::kernels::supported_isas())
      if (isa != veridl::kernels::Isa::Portable) {
        run_pinned(pin, args, isa, false);
        if (pin.checkpoint_im2col) run_pinned(pin, args, isa, true);
      }
  }

  void run_pinned(const Pin& pin, const std::string& args, veridl::kernels::Isa isa, bool im2col) {
    SCOPED_TRACE(std::string("VERIDL_ISA=") + veridl::kernels::isa_name(isa) + (im2col ? " VERIDL_WINOGRAD=0" : ""));
    std::filesystem::remove(dir_ / "m.safetensors");
    const std::string cmd = "cd '" + dir_.string() + "' && VERIDL_ISA=" + veridl::kernels::isa_name(isa) +
                            (im2col ? " VERIDL_WINOGRAD=0 " : " env -u VERIDL_WINOGRAD ") + VERIDL_BINARY + " " + args;
    const Cmd c = run_command(cmd);
    ASSERT_EQ(c.status, 0) << cmd << "\n" << c.out;
    const std::string ck = read_bytes(dir_ / "m.safetensors"), losses = loss_lines(c.out);
    ASSERT_FALSE(ck.empty()) << c.out;
    ASSERT_NE(losses.find("Epoch  2/2: loss="), std::string::npos) << c.out;
    EXPECT_EQ(hex(fnv1a64(ck)), hex(im2col ? pin.checkpoint_im2col : pin.checkpoint))
        << pin.name << ": the checkpoint's bits changed (" << ck.size() << " bytes); output:\n" << c.out;
    EXPECT_EQ(hex(fnv1a64(losses)), hex(im2col ? pin.losses_im2col : pin.losses))
        << pin.name << ": the losses changed:\n" << losses;
  }
};

// The pins (see the top of the file for how they were obtained and when they may change).
// The shipped specs with their own recipes:
constexpr Pin kMnistLinear{"mnist_linear", "mnist_linear", "", 0x09289efaadcac04cull, 0xac9c57016998da7eull};
constexpr Pin kMnistMlp{"mnist_mlp", "mnist_mlp", "", 0x6a7a472ee00dad3cull, 0x720714dcde79ae59ull};
// fashion_convnet's recipe names its dataset ("dataset": "fashion-mnist"), so the synthetic IDX run needs
// --data-mismatch-ok; both change the checkpoint's metadata (spec and config JSON) only: its tensor bytes and the loss
// pin are what they were (compared with the previous build's checkpoint of the same run).
constexpr Pin kFashionConvnet{"fashion_convnet", "fashion_convnet", " --data-mismatch-ok", 0x20177296a0967bbeull,
                              0x27e49356f9cdabe3ull, 0xf172fb483aead423ull, 0x3c54e694ec246a6full};
constexpr Pin kMnistCnnBn{"mnist_cnn_bn", "mnist_cnn_bn", "", 0xa7c9e96888197d37ull, 0xa8292bebf61fbe2dull,
                          0xd370da90b85bad46ull, 0xbdc498018b381a81ull};
constexpr Pin kCifarCnnBn{"cifar_cnn_bn", "cifar_cnn_bn", "", 0x873040fa5ba01ea6ull, 0x3055237fd6e4939cull,
                          0x3fa708fc3da19d56ull, 0xe0e3fb2ca2a55808ull};
// No shipped recipe uses SGD momentum, plain Adam, label smoothing or gradient clipping (the presets and flags
// do): two cheap runs pin those paths too.
constexpr Pin kLinearMomentumSmoothingClip{"linear_momentum_smoothing_clip", "mnist_linear",
                                           " --momentum 0.9 --label-smoothing 0.1 --clip-norm 0.5",
                                           0x6bae4a841e6a69e7ull, 0x5fe7162c09e47894ull};
constexpr Pin kMlpAdamSmoothingClip{"mlp_adam_smoothing_clip", "mnist_mlp",
                                    " --optimizer adam --label-smoothing 0.1 --clip-norm 1", 0xbef28e164ece143eull,
                                    0xf4c8f243e9804233ull};

}  // namespace

TEST_F(BitPin, MnistLinearSgd) { check(kMnistLinear); }
TEST_F(BitPin, MnistMlpAdamWCosineWarmup) { check(kMnistMlp); }
TEST_F(BitPin, FashionConvnetAdamWCosineWarmup) { check(kFashionConvnet); }
TEST_F(BitPin, MnistCnnBnBatchNorm) { check(kMnistCnnBn); }
TEST_F(BitPin, CifarCnnBnAugmented) { check(kCifarCnnBn); }
TEST_F(BitPin, MnistLinearMomentumLabelSmoothingClipping) { check(kLinearMomentumSmoothingClip); }
TEST_F(BitPin, MnistMlpAdamLabelSmoothingClipping) { check(kMlpAdamSmoothingClip); }
