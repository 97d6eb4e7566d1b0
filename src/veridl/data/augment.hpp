// Seeded data augmentation (book ch. 5 recipe): random crop with zero padding and horizontal flip,
// applied per image to a gathered batch. The RNG is the original's xorshift64
// (s ^= s << 13; s ^= s >> 7; s ^= s << 17), seeded per batch, so a run is reproducible and a
// resumed run sees the same augmentations.
// Chapters 6-7 (ImageNet-style training) add random-resized-crop, taken while the batch is gathered (each example's
// crop from its stored image, see Dataset::stored), and the ImageNet mean/std normalisation, applied last, in
// training and evaluation alike. See docs/data.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/data/dataset.hpp"

namespace veridl::data {

struct AugmentConfig {
  size_t pad = 0;     // random crop: pad each side with zeros by `pad`, crop back to H x W at a random offset
  bool flip = false;  // horizontal flip with probability 1/2
  // torchvision's RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)) of each example's stored image, resized to
  // C x H x W, while gathering (gather_example); crop-pad and flip then apply to the result.
  bool resized_crop = false;
  // Colour jitter (torchvision's ColorJitter(brightness, contrast, saturation), no hue; color_jitter below): each
  // factor drawn from [max(0, 1 - x), 1 + x]; 0 = that adjustment off.
  double brightness = 0, contrast = 0, saturation = 0;
  bool jitter() const { return brightness > 0 || contrast > 0 || saturation > 0; }
  bool enabled() const { return pad > 0 || flip || resized_crop || jitter(); }
};

// The draws of one image's colour jitter from the xorshift64 stream starting at `seed`, in this order (torchvision's
// ColorJitter.get_params: the order first, then the factors): order = a Fisher-Yates shuffle of (0 brightness,
// 1 contrast, 2 saturation) (for i = 2, 1: j = s % (i + 1), swap order[i] and order[j]); then one uniform
// u = (s >> 11) / 2^53 per adjustment, brightness, contrast, saturation, each drawn whether on or not, factor =
// lo + (hi - lo) u over [max(0, 1 - x), 1 + x].
struct JitterDraw {
  int order[3];
  double brightness, contrast, saturation;  // factors (1 when the adjustment is off)
};

// What augment_batch did to one image: the crop offsets into the zero-padded image (0 .. 2 pad; both 0 without
// crop-pad), whether it was flipped (never without `flip`), and its colour jitter's draws (order 0 1 2 and factors 1
// without jitter).
struct AugmentDraw {
  size_t dy = 0, dx = 0;
  bool flip = false;
  JitterDraw jitter{{0, 1, 2}, 1, 1, 1};
};

// In place on B images of C x H x W. For image b the offsets and the flip are drawn from the stream
// seeded with `seed`: dy = s % (2 pad + 1), dx = s % (2 pad + 1), flip = s & 1 (one xorshift step each).
// `scratch` must hold C * H * W floats. `pad`, `flip` and then the colour jitter act here (resized_crop is
// gather_example's). The jitter of image b draws from its own stream, jitter_seed(seed, b): the crop/flip draws above
// are the same with or without it. `drawn`, when given (B entries), receives each image's offsets and flip as drawn
// (a test hook: the trainer's decision dump, see train/trainer.cpp). `first`: these B images are images
// [first, first + B) of a larger batch seeded with `seed` (a data-parallel rank's shard, docs/distributed.md): each
// gets the draws it gets in the whole batch.
void augment_batch(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
                   float* scratch, AugmentDraw* drawn = nullptr, size_t first = 0);

// The colour jitter of example b of the batch seeded with batch_seed: splitmix64(example_seed(batch_seed, b) ^
// 0x6A09E667F3BCC909), never 0 (a stream apart from the random-resized-crop's).
uint64_t jitter_seed(uint64_t batch_seed, size_t b);

// The draws of one image's colour jitter: see JitterDraw above.
JitterDraw draw_jitter(const AugmentConfig& cfg, uint64_t seed);

// One C x H x W image in [0, 1] (C 1 or 3), in place, adjusted in d.order (torchvision's functional ops on float
// tensors, each clamped to [0, 1]): brightness x = f x; contrast x = f x + (1 - f) m with m the mean over the image of
// its grey (0.2989 R + 0.587 G + 0.114 B for RGB, the image itself for grey), computed in double, rounded to float;
// saturation (RGB only) x_c = f x_c + (1 - f) grey per pixel. Arithmetic in float.
void color_jitter(float* image, size_t C, size_t H, size_t W, const JitterDraw& d);

// The random-resized-crop seed of example b of the batch seeded with batch_seed (the trainer's
// epoch * 10000 + batch, as augment_batch): splitmix64 of the pair, never 0. Each example has its own stream, so the
// crops do not depend on how the batch is split over threads.
uint64_t example_seed(uint64_t batch_seed, size_t b);

// torchvision's RandomResizedCrop.get_params(img, scale=(0.08, 1.0), ratio=(3/4, 4/3)) for a width x height image,
// drawing from the xorshift64 stream whose state starts at splitmix64(seed) (u = (s >> 11) / 2^53 in [0, 1); any
// seed, even 1, 2, 3, gives well-spread draws): up to 10 attempts of
// area = width * height * U(0.08, 1), aspect = exp(U(log 3/4, log 4/3)), w = round(sqrt(area * aspect)),
// h = round(sqrt(area / aspect)) (round half to even, as Python's round); the first with 0 < w <= width and
// 0 < h <= height is placed at y0 = s % (height - h + 1), then x0 = s % (width - w + 1). Otherwise the center crop
// fallback: the whole image, narrowed to the nearer ratio bound when its own ratio is outside [3/4, 4/3].
CropBox random_resized_crop_box(size_t width, size_t height, uint64_t seed);

// Example i of ds into dst (C x H x W floats) as a training batch gets it before augment_batch: with
// cfg.resized_crop, ds.crop_resize(i, random_resized_crop_box(ds.stored_size(i), example_seed(batch_seed, b))),
// else ds.copy_images(i, 1, dst). `box`, when given, receives the crop box drawn (with cfg.resized_crop only).
void gather_example(const Dataset& ds, size_t i, const AugmentConfig& cfg, uint64_t batch_seed, size_t b, float* dst,
                    CropBox* box = nullptr);

// Mean/std normalisation of the network's input, after scaling to [0,1] and after augmentation:
// x = (x - mean[c]) / std[c] per channel, in float. Any channel count: a preset or explicit per-channel lists.
struct Normalize {
  // "none", a preset ("imagenet", "mnist", "fashion-mnist", "cifar10": kNormalizePresets) or "custom" (given lists)
  std::string name = "none";
  std::vector<float> mean, std;  // one per channel; empty for "none"
  bool none() const { return mean.empty(); }
  bool operator==(const Normalize&) const = default;
  static const Normalize None;
  static const Normalize ImageNet;  // mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) for R, G, B (torchvision's)
};
inline const Normalize Normalize::None{};
inline const Normalize Normalize::ImageNet{"imagenet", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

// The named presets, for the recipe's "normalize" and --normalize: none, imagenet (3 channels), mnist and
// fashion-mnist (1 channel: the training sets' pixel mean and standard deviation, 0.1307 / 0.3081 and
// 0.2860 / 0.3530), cifar10 (3 channels: 0.4914, 0.4822, 0.4465 / 0.2470, 0.2435, 0.2616). See docs/data.md.
inline constexpr const char* kNormalizePresets = "none, imagenet, mnist, fashion-mnist, cifar10";

// A preset by name; anything else throws veridl::Error "<what>: 'x' is not supported (supported: <presets>, or
// per-channel mean and std)".
Normalize parse_normalize(const std::string& name, const std::string& what);
// Explicit per-channel lists: as many means as stds (at least one), every value finite, every std > 0; otherwise a
// veridl::Error naming `what`.
Normalize normalize_mean_std(const std::vector<double>& mean, const std::vector<double>& std, const std::string& what);
// "<what>: ... has N channel(s) but the input has C" unless n is none or has C channels.
void check_normalize_channels(const Normalize& n, size_t C, const std::string& what);
// The name, or for explicit lists {"mean":[...],"std":[...]} (JSON text): how checkpoints and messages show it.
std::string to_string(const Normalize& n);

// In place on B images of C x H x W (HW = H * W). n must have C channels (a veridl::Error otherwise).
void normalize_batch(float* images, size_t B, size_t C, size_t HW, const Normalize& n);

}  // namespace veridl::data
