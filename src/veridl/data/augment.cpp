#include "veridl/data/augment.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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

void augment_batch(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
                   float* scratch, AugmentDraw* drawn) {
  if (cfg.pad == 0 && !cfg.flip) return;
  uint64_t s = seed + 1;
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

const char* to_string(Normalize n) { return n == Normalize::ImageNet ? "imagenet" : "none"; }

Normalize parse_normalize(const std::string& name, const std::string& what) {
  if (name == "none") return Normalize::None;
  if (name == "imagenet") return Normalize::ImageNet;
  std::string shown = name;
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  throw Error(fmt::format("{}: '{}' is not supported (supported: none, imagenet)", what, shown));
}

void normalize_batch(float* images, size_t B, size_t C, size_t HW, Normalize n) {
  if (n == Normalize::None) return;
  if (C != 3)
    throw Error(fmt::format("normalize imagenet needs RGB images (3 channels), got {} channel{}", C, C == 1 ? "" : "s"));
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < 3; ++c) {
      float* x = images + (b * 3 + c) * HW;
      const float m = kImageNetMean[c], sd = kImageNetStd[c];
      for (size_t k = 0; k < HW; ++k) x[k] = (x[k] - m) / sd;
    }
}

}  // namespace veridl::data
