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

#include "veridl/data/dataset.hpp"

namespace veridl::data {

struct AugmentConfig {
  size_t pad = 0;     // random crop: pad each side with zeros by `pad`, crop back to H x W at a random offset
  bool flip = false;  // horizontal flip with probability 1/2
  // torchvision's RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)) of each example's stored image, resized to
  // C x H x W, while gathering (gather_example); crop-pad and flip then apply to the result.
  bool resized_crop = false;
  bool enabled() const { return pad > 0 || flip || resized_crop; }
};

// What augment_batch did to one image: the crop offsets into the zero-padded image (0 .. 2 pad; both 0 without
// crop-pad) and whether it was flipped (never without `flip`).
struct AugmentDraw {
  size_t dy = 0, dx = 0;
  bool flip = false;
};

// In place on B images of C x H x W. For image b the offsets and the flip are drawn from the stream
// seeded with `seed`: dy = s % (2 pad + 1), dx = s % (2 pad + 1), flip = s & 1 (one xorshift step each).
// `scratch` must hold C * H * W floats. Only `pad` and `flip` act here (resized_crop is gather_example's).
// `drawn`, when given (B entries), receives each image's offsets and flip as drawn (a test hook: the trainer's
// decision dump, see train/trainer.hpp).
void augment_batch(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
                   float* scratch, AugmentDraw* drawn = nullptr);

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
// x = (x - mean[c]) / std[c] per channel, in float.
enum class Normalize {
  None,
  ImageNet,  // mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) for R, G, B (torchvision's); needs C = 3
};
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

// "none" / "imagenet" (as in the recipe field "normalize" and --normalize); parse throws veridl::Error naming `what`
// for anything else.
const char* to_string(Normalize n);
Normalize parse_normalize(const std::string& name, const std::string& what);

// In place on B images of C x H x W (HW = H * W). ImageNet needs C = 3 (a veridl::Error otherwise).
void normalize_batch(float* images, size_t B, size_t C, size_t HW, Normalize n);

}  // namespace veridl::data
