// Seeded data augmentation (book ch. 5 recipe): random crop with zero padding and horizontal flip,
// applied per image to a gathered batch. The RNG is the original's xorshift64
// (s ^= s << 13; s ^= s >> 7; s ^= s << 17), seeded per batch, so a run is reproducible and a
// resumed run sees the same augmentations.
#pragma once

#include <cstddef>
#include <cstdint>

namespace veridl::data {

struct AugmentConfig {
  size_t pad = 0;     // random crop: pad each side with zeros by `pad`, crop back to H x W at a random offset
  bool flip = false;  // horizontal flip with probability 1/2
  bool enabled() const { return pad > 0 || flip; }
};

// In place on B images of C x H x W. For image b the offsets and the flip are drawn from the stream
// seeded with `seed`: dy = s % (2 pad + 1), dx = s % (2 pad + 1), flip = s & 1 (one xorshift step each).
// `scratch` must hold C * H * W floats.
void augment_batch(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
                   float* scratch);

}  // namespace veridl::data
