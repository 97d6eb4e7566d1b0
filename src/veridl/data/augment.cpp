#include "veridl/data/augment.hpp"

#include <algorithm>
#include <cstring>

namespace veridl::data {

namespace {
uint64_t step(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}
}  // namespace

void augment_batch(float* images, size_t B, size_t C, size_t H, size_t W, const AugmentConfig& cfg, uint64_t seed,
                   float* scratch) {
  if (!cfg.enabled()) return;
  uint64_t s = seed + 1;
  const size_t span = 2 * cfg.pad + 1;
  const size_t img = C * H * W;
  for (size_t b = 0; b < B; ++b) {
    float* x = images + b * img;
    // Draw in a fixed order whatever is enabled, so turning flip on does not change the crops.
    const size_t dy = step(s) % span, dx = step(s) % span;
    const bool flip = (step(s) & 1) != 0;
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

}  // namespace veridl::data
