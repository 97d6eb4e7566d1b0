// veridl predict: a checkpoint's top-k classes for an image file, a folder of images or an IDX images file.
#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "veridl/cli.hpp"
#include "veridl/data/augment.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/data/image.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"

namespace veridl::cli {

namespace {

namespace fs = std::filesystem;

const char* kPredictHelp = R"(usage: veridl predict --checkpoint FILE INPUT [--top K] [--json] [--spec FILE]
Classifies INPUT with a trained checkpoint and prints, one line per image, its K most probable classes with
their names and probabilities (softmax of the logits):
  INPUT   a PNG or JPEG file, a folder of them (its files in name order; hidden entries skipped), or an IDX
          images file (MNIST's format, raw or gzip: every image in it, named FILE[i])
Images are resized and center-cropped to the network's input (grey and RGB converted), then normalised as the
training run did: the evaluation path of `veridl eval`. Class names come from the checkpoint (metadata
'classes', written by veridl train: image-folder class folders, the known datasets' names); without them the
class numbers are printed.
  --top K       classes per image (default 5, at most the network's classes)
  --json        one JSON object per line: {"input", "top": [{"class", "name", "probability"}]}
  --spec FILE   the NetSpec, when the checkpoint has none
)";

bool is_idx_images(const std::string& path) {
  // IDX images magic 00 00 08 03, or gzip (1f 8b): the IDX reader checks the inflated header itself.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char m[4] = {0, 0, 0, 0};
  const size_t got = std::fread(m, 1, 4, f);
  std::fclose(f);
  return (got == 4 && m[0] == 0 && m[1] == 0 && m[2] == 8 && m[3] == 3) || (got >= 2 && m[0] == 0x1f && m[1] == 0x8b);
}

struct Inputs {
  std::vector<std::string> names;
  std::vector<float> x;  // names.size() images, C x H x W floats in [0, 1]
};

// Every input decoded, resized and cropped before any forward (an unreadable file stops the command first).
Inputs read_inputs(const std::string& input, const data::ImageShape& shape) {
  Inputs in;
  const size_t per = shape.C * shape.H * shape.W;
  auto add_image = [&](const std::string& path) {
    const data::DecodedImage img = data::decode_image_file(path);
    in.x.resize(in.x.size() + per);
    data::resize_center_crop(img, shape, in.x.data() + in.x.size() - per);
    in.names.push_back(path);
  };
  std::error_code ec;
  if (fs::is_directory(input, ec)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(input, ec)) {
      const std::string name = e.path().filename().string();
      if (!name.empty() && name[0] != '.' && !e.is_directory()) files.push_back(e.path().string());
    }
    if (ec) throw Error(fmt::format("cannot list the folder '{}': {}", input, ec.message()));
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error(fmt::format("the folder '{}' has no images (PNG or JPEG files)", input));
    for (const std::string& f : files) add_image(f);
    return in;
  }
  if (!fs::exists(input, ec)) throw Error(fmt::format("cannot read '{}': no such file or folder", input));
  if (is_idx_images(input)) {
    const data::Dataset ds = data::load_idx_images(input);
    if (ds.C != shape.C || ds.H != shape.H || ds.W != shape.W)
      throw Error(fmt::format("IDX images file '{}': images are {}x{}x{} (channels x height x width) but the network "
                              "takes {}x{}x{}",
                              input, ds.C, ds.H, ds.W, shape.C, shape.H, shape.W));
    in.x.resize(ds.n * per);
    ds.copy_images(0, ds.n, in.x.data());
    for (size_t i = 0; i < ds.n; ++i) in.names.push_back(fmt::format("{}[{}]", input, i));
    return in;
  }
  add_image(input);
  return in;
}

std::vector<std::string> class_names(const train::Checkpoint& ck, const std::string& path, size_t K) {
  auto it = ck.metadata.find("classes");
  if (it == ck.metadata.end()) return {};
  const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
  std::vector<std::string> names;
  if (j.is_array())
    for (const auto& v : j)
      if (v.is_string()) names.push_back(v.get<std::string>());
  if (!j.is_array() || names.size() != j.size() || names.size() != K)
    throw Error(fmt::format("{}: metadata 'classes' must be a JSON array of {} strings (one per class)", path, K));
  return names;
}

}  // namespace

int cmd_predict(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fmt::print("{}", kPredictHelp);
      return 0;
    }
  // The one positional argument (INPUT); the rest are flags.
  std::vector<char*> flags{argv[0], argv[1]};
  std::vector<std::string> positional;
  const std::vector<std::string> value_flags{"--checkpoint", "--top", "--spec"};
  for (int i = 2; i < argc; ++i) {
    const std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      flags.push_back(argv[i]);
      if (std::find(value_flags.begin(), value_flags.end(), s) != value_flags.end() && i + 1 < argc) flags.push_back(argv[++i]);
    } else {
      positional.push_back(s);
    }
  }
  Args a(static_cast<int>(flags.size()), flags.data(), 2, value_flags, {"--json"});
  const auto ck_path = a.get("--checkpoint");
  if (!ck_path) throw Error("--checkpoint FILE is required");
  if (positional.size() != 1)
    throw Error(positional.empty() ? "INPUT is required: an image file, a folder of images or an IDX images file"
                                   : fmt::format("one INPUT expected, got {} ('{}', '{}', ...)", positional.size(),
                                                 positional[0], positional[1]));
  const train::Checkpoint ck = train::load_safetensors(*ck_path);
  train::check_checkpoint_format(ck, *ck_path, false);
  const net::NetSpec spec = checkpoint_spec(ck, *ck_path, a);
  const net::Plan one = net::compile(spec, 1);
  const size_t K = one.num_classes;
  const size_t top = static_cast<size_t>(a.integer("--top", std::min<long long>(5, static_cast<long long>(K)), 1,
                                                   static_cast<long long>(K)));
  const std::vector<std::string> names = class_names(ck, *ck_path, K);
  const train::Model model = train::model_from_checkpoint(one, ck, *ck_path);
  const data::Normalize norm = train::checkpoint_normalization(ck, spec, *ck_path);
  Inputs in = read_inputs(positional[0], data::ImageShape{spec.channels, spec.imageH, spec.imageW, K});

  // The evaluation path: normalise as the run did, then the forward with BatchNorm on its running statistics.
  const size_t n = in.names.size(), chunk = std::min<size_t>(n, 64), per = spec.input_size();
  const net::Plan plan = net::compile(spec, chunk);
  net::Executor<float, net::FastKernels> ex(plan, net::Purpose::Inference);
  ex.params() = model.params;
  auto rs = ex.running_stats();
  for (size_t k = 0; k < rs.size(); ++k) *rs[k] = model.running.at(k);
  const bool json = a.has("--json");
  Decisions live;
  for (size_t start = 0; start < n; start += chunk) {
    const size_t m = std::min(chunk, n - start);
    std::copy(in.x.begin() + static_cast<std::ptrdiff_t>(start * per),
              in.x.begin() + static_cast<std::ptrdiff_t>((start + m) * per), ex.input());
    data::normalize_batch(ex.input(), m, spec.channels, spec.imageH * spec.imageW, norm);
    const float* z = ex.forward(ex.input(), m, live, net::Mode::Eval);
    for (size_t b = 0; b < m; ++b) {
      const float* zb = z + b * K;
      const float mx = *std::max_element(zb, zb + K);
      std::vector<double> p(K);
      double sum = 0;
      for (size_t k = 0; k < K; ++k) sum += p[k] = std::exp(double(zb[k]) - double(mx));
      std::vector<size_t> order(K);
      for (size_t k = 0; k < K; ++k) order[k] = k;
      // Highest logit first; ties to the lower class (the first maximum, as evaluation's argmax).
      std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return zb[i] > zb[j]; });
      const std::string& input = in.names[start + b];
      if (json) {
        nlohmann::json row = {{"input", input}, {"top", nlohmann::json::array()}};
        for (size_t t = 0; t < top; ++t) {
          const size_t k = order[t];
          row["top"].push_back({{"class", k}, {"name", names.empty() ? std::to_string(k) : names[k]}, {"probability", p[k] / sum}});
        }
        fmt::print("{}\n", row.dump());
        continue;
      }
      std::vector<std::string> parts;
      for (size_t t = 0; t < top; ++t) {
        const size_t k = order[t];
        parts.push_back(names.empty() ? fmt::format("{} {:.2f}%", k, 100 * p[k] / sum)
                                      : fmt::format("{} (class {}) {:.2f}%", names[k], k, 100 * p[k] / sum));
      }
      fmt::print("{}: {}\n", input, fmt::join(parts, ", "));
    }
  }
  return 0;
}

}  // namespace veridl::cli
