#include "veridl/data/augment.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "veridl/util/error.hpp"

namespace veridl::data {

namespace {
uint64_t step(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// A uniform double in [lo, hi) from the next xorshift64 draw (53 bits).
double uniform(uint64_t& s, double lo, double hi) {
  const double u = static_cast<double>(step(s) >> 11) * 0x1p-53;
  return lo + (hi - lo) * u;
}

// splitmix64 (Steele, Lea, Flood): a well-mixed 64-bit value from any input (xorshift64 from a small seed such as
// 1, 2, 3 starts with tiny outputs).
uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Python's round(): to the nearest integer, ties to even. x >= 0 here.
long long round_half_even(double x) {
  double r = std::floor(x);
  const double frac = x - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0)) r += 1;
  return static_cast<long long>(r);
}
}  // namespace

namespace {
void crop_flip(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
               float* scratch, AugmentDraw* drawn, size_t first) {
  if (cfg.pad == 0 && !cfg.flip) return;
  uint64_t s = seed + 1;
  for (size_t k = 0; k < 3 * first; ++k) step(s);  // the draws of the global batch's examples before `first`
  const size_t span = 2 * cfg.pad + 1;
  const size_t img = C * H * W;
  for (size_t b = 0; b < B; ++b) {
    float* x = images + b * img;
    // Draw in a fixed order whatever is enabled, so turning flip on does not change the crops.
    const size_t dy = step(s) % span, dx = step(s) % span;
    const bool flip = (step(s) & 1) != 0;
    if (drawn) drawn[b] = {cfg.pad > 0 ? dy : 0, cfg.pad > 0 ? dx : 0, cfg.flip && flip};
    if (cfg.pad > 0) {
      std::memcpy(scratch, x, img * sizeof(float));
      // output (h, w) reads padded input (h + dy, w + dx) = input (h + dy - pad, w + dx - pad), zero outside
      for (size_t c = 0; c < C; ++c)
        for (size_t h = 0; h < H; ++h) {
          const ptrdiff_t sh = static_cast<ptrdiff_t>(h + dy) - static_cast<ptrdiff_t>(cfg.pad);
          float* row = x + (c * H + h) * W;
          if (sh < 0 || sh >= static_cast<ptrdiff_t>(H)) {
            std::fill_n(row, W, 0.0f);
            continue;
          }
          const float* src = scratch + (c * H + static_cast<size_t>(sh)) * W;
          for (size_t w = 0; w < W; ++w) {
            const ptrdiff_t sw = static_cast<ptrdiff_t>(w + dx) - static_cast<ptrdiff_t>(cfg.pad);
            row[w] = sw < 0 || sw >= static_cast<ptrdiff_t>(W) ? 0.0f : src[sw];
          }
        }
    }
    if (cfg.flip && flip)
      for (size_t c = 0; c < C; ++c)
        for (size_t h = 0; h < H; ++h) std::reverse(x + (c * H + h) * W, x + (c * H + h + 1) * W);
  }
}
}  // namespace

void augment_batch(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
                   float* scratch, AugmentDraw* drawn, size_t first) {
  crop_flip(images, B, C, H, W, cfg, seed, scratch, drawn, first);
  if (cfg.jitter())  // after crop-pad and flip (on the padded crop, as torchvision's pipeline orders them)
    for (size_t b = 0; b < B; ++b) {
      const JitterDraw d = draw_jitter(cfg, jitter_seed(seed, first + b));
      if (drawn) drawn[b].jitter = d;
      color_jitter(images + b * C * H * W, C, H, W, d);
    }
}

uint64_t jitter_seed(uint64_t batch_seed, size_t b) {
  const uint64_t s = splitmix64(example_seed(batch_seed, b) ^ 0x6A09E667F3BCC909ull);
  return s != 0 ? s : 0x9E3779B97F4A7C15ull;
}

JitterDraw draw_jitter(const AugmentConfig& cfg, uint64_t seed) {
  uint64_t s = seed != 0 ? seed : 0x9E3779B97F4A7C15ull;
  JitterDraw d{{0, 1, 2}, 1, 1, 1};
  for (int i = 2; i > 0; --i) std::swap(d.order[i], d.order[step(s) % static_cast<uint64_t>(i + 1)]);
  auto factor = [&](double x) {
    const double f = uniform(s, std::max(0.0, 1 - x), 1 + x);
    return x > 0 ? f : 1.0;
  };
  d.brightness = factor(cfg.brightness);
  d.contrast = factor(cfg.contrast);
  d.saturation = factor(cfg.saturation);
  return d;
}

void color_jitter(float* x, size_t C, size_t H, size_t W, const JitterDraw& d) {
  if (C != 1 && C != 3) throw Error(fmt::format("colour jitter needs 1 or 3 channels, got {}", C));
  const size_t HW = H * W, n = C * HW;
  auto blend = [](float f, float v, float other) { return std::clamp(f * v + (1.0f - f) * other, 0.0f, 1.0f); };
  auto grey = [&](size_t p) { return C == 3 ? 0.2989f * x[p] + 0.587f * x[HW + p] + 0.114f * x[2 * HW + p] : x[p]; };
  for (int k : d.order) {
    if (k == 0 && d.brightness != 1) {
      const auto f = static_cast<float>(d.brightness);
      for (size_t i = 0; i < n; ++i) x[i] = std::clamp(f * x[i], 0.0f, 1.0f);
    } else if (k == 1 && d.contrast != 1) {
      double sum = 0;
      for (size_t p = 0; p < HW; ++p) sum += grey(p);
      const auto m = static_cast<float>(sum / static_cast<double>(HW)), f = static_cast<float>(d.contrast);
      for (size_t i = 0; i < n; ++i) x[i] = blend(f, x[i], m);
    } else if (k == 2 && d.saturation != 1 && C == 3) {
      const auto f = static_cast<float>(d.saturation);
      for (size_t p = 0; p < HW; ++p) {
        const float g = grey(p);
        for (size_t c = 0; c < 3; ++c) x[c * HW + p] = blend(f, x[c * HW + p], g);
      }
    }
  }
}

uint64_t example_seed(uint64_t batch_seed, size_t b) {
  // splitmix64 of the batch seed, then of that mixed with the position.
  const uint64_t s = splitmix64(splitmix64(batch_seed) ^ static_cast<uint64_t>(b));
  return s != 0 ? s : 0x9E3779B97F4A7C15ull;
}

CropBox random_resized_crop_box(size_t width, size_t height, uint64_t seed) {
  if (width == 0 || height == 0) throw Error(fmt::format("random_resized_crop_box: empty {}x{} image", width, height));
  constexpr double kScaleLo = 0.08, kScaleHi = 1.0, kRatioLo = 3.0 / 4.0, kRatioHi = 4.0 / 3.0;
  constexpr int kAttempts = 10;
  uint64_t s = splitmix64(seed);
  if (s == 0) s = 0x9E3779B97F4A7C15ull;  // xorshift64 stays at 0 from 0
  const double area = static_cast<double>(width) * static_cast<double>(height);
  const double log_lo = std::log(kRatioLo), log_hi = std::log(kRatioHi);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const double target_area = area * uniform(s, kScaleLo, kScaleHi);
    const double aspect = std::exp(uniform(s, log_lo, log_hi));
    const long long w = round_half_even(std::sqrt(target_area * aspect));
    const long long h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && h > 0 && static_cast<size_t>(w) <= width && static_cast<size_t>(h) <= height) {
      CropBox box;
      box.w = static_cast<size_t>(w);
      box.h = static_cast<size_t>(h);
      box.y0 = static_cast<size_t>(step(s) % (height - box.h + 1));
      box.x0 = static_cast<size_t>(step(s) % (width - box.w + 1));
      return box;
    }
  }
  // Fallback to the central crop.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  CropBox box{0, 0, width, height};
  if (in_ratio < kRatioLo) {
    box.h = std::clamp<size_t>(static_cast<size_t>(std::max(0LL, round_half_even(static_cast<double>(width) / kRatioLo))),
                               1, height);
  } else if (in_ratio > kRatioHi) {
    box.w = std::clamp<size_t>(static_cast<size_t>(std::max(0LL, round_half_even(static_cast<double>(height) * kRatioHi))),
                               1, width);
  }
  box.y0 = (height - box.h) / 2;
  box.x0 = (width - box.w) / 2;
  return box;
}

void gather_example(const Dataset& ds, size_t i, const AugmentConfig& cfg, uint64_t batch_seed, size_t b, float* dst,
                    CropBox* box) {
  if (!cfg.resized_crop) {
    ds.copy_images(i, 1, dst);
    return;
  }
  const auto [w, h] = ds.stored_size(i);
  const CropBox drawn = random_resized_crop_box(w, h, example_seed(batch_seed, b));
  if (box) *box = drawn;
  ds.crop_resize(i, drawn, dst);
}

namespace {
struct Preset {
  const char* name;
  std::vector<float> mean, std;
};
const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = {
      {"imagenet", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}},
      {"mnist", {0.1307f}, {0.3081f}},
      {"fashion-mnist", {0.2860f}, {0.3530f}},
      {"cifar10", {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}},
  };
  return p;
}
}  // namespace

Normalize parse_normalize(const std::string& name, const std::string& what) {
  if (name == "none") return Normalize::None;
  for (const Preset& p : presets())
    if (name == p.name) return Normalize{p.name, p.mean, p.std};
  std::string shown = name;
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  throw Error(fmt::format("{}: '{}' is not supported (supported: {}, or per-channel mean and std)", what, shown,
                          kNormalizePresets));
}

Normalize normalize_mean_std(const std::vector<double>& mean, const std::vector<double>& std, const std::string& what) {
  if (mean.empty() || mean.size() != std.size())
    throw Error(fmt::format("{}: {} mean value{} and {} std value{}; give one of each per channel", what, mean.size(),
                            mean.size() == 1 ? "" : "s", std.size(), std.size() == 1 ? "" : "s"));
  Normalize n{"custom", {}, {}};
  for (size_t c = 0; c < mean.size(); ++c) {
    if (!std::isfinite(mean[c])) throw Error(fmt::format("{}: mean[{}] is {}, not a finite number", what, c, mean[c]));
    if (!(std[c] > 0) || !std::isfinite(std[c]))
      throw Error(fmt::format("{}: std[{}] is {}; it must be a finite number > 0", what, c, std[c]));
    n.mean.push_back(static_cast<float>(mean[c]));
    n.std.push_back(static_cast<float>(std[c]));
    if (!(n.std.back() > 0) || !std::isfinite(n.std.back()) || !std::isfinite(n.mean.back()))
      throw Error(fmt::format("{}: mean[{}] {} / std[{}] {} does not fit a float (> 0 for std)", what, c, mean[c], c,
                              std[c]));
  }
  return n;
}

void check_normalize_channels(const Normalize& n, size_t C, const std::string& what) {
  if (n.none() || n.mean.size() == C) return;
  throw Error(fmt::format("{}: '{}' has {} channel{} (mean/std values) but the input has {} channel{}", what,
                          to_string(n), n.mean.size(), n.mean.size() == 1 ? "" : "s", C, C == 1 ? "" : "s"));
}

std::string to_string(const Normalize& n) {
  if (n.name != "custom") return n.name;
  std::string m, s;
  for (size_t c = 0; c < n.mean.size(); ++c) {
    m += fmt::format("{}{}", c ? "," : "", n.mean[c]);
    s += fmt::format("{}{}", c ? "," : "", n.std[c]);
  }
  return "{\"mean\":[" + m + "],\"std\":[" + s + "]}";
}

void normalize_batch(float* images, size_t B, size_t C, size_t HW, const Normalize& n) {
  if (n.none()) return;
  check_normalize_channels(n, C, "normalize");
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < C; ++c) {
      float* x = images + (b * C + c) * HW;
      const float m = n.mean[c], sd = n.std[c];
      for (size_t k = 0; k < HW; ++k) x[k] = (x[k] - m) / sd;
    }
}

}  // namespace veridl::data
