// Seeded augmentation: what it produces, checked pixel by pixel.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "veridl/data/augment.hpp"

using namespace veridl::data;

namespace {
std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 1.0f);
  return v;
}
}  // namespace

TEST(Augment, DisabledIsTheIdentity) {
  auto x = ramp(2 * 3 * 4 * 5), y = x;
  std::vector<float> scratch(3 * 4 * 5);
  augment_batch(y.data(), 2, 3, 4, 5, {}, 7, scratch.data());
  EXPECT_EQ(x, y);
}

TEST(Augment, FlipMirrorsRowsOfTheChosenImages) {
  const size_t B = 16, C = 2, H = 3, W = 4;
  auto x = ramp(B * C * H * W), y = x;
  std::vector<float> scratch(C * H * W);
  augment_batch(y.data(), B, C, H, W, {0, true}, 11, scratch.data());
  size_t flipped = 0;
  for (size_t b = 0; b < B; ++b) {
    bool same = true, mirrored = true;
    for (size_t c = 0; c < C; ++c)
      for (size_t h = 0; h < H; ++h)
        for (size_t w = 0; w < W; ++w) {
          const size_t base = ((b * C + c) * H + h) * W;
          same &= y[base + w] == x[base + w];
          mirrored &= y[base + w] == x[base + W - 1 - w];
        }
    EXPECT_TRUE(same || mirrored) << b;
    flipped += mirrored;
  }
  EXPECT_GT(flipped, 2u);
  EXPECT_LT(flipped, 14u);
}

TEST(Augment, CropIsAShiftOfTheZeroPaddedImage) {
  const size_t B = 32, C = 1, H = 5, W = 6, pad = 2;
  auto x = ramp(B * C * H * W), y = x;
  std::vector<float> scratch(C * H * W);
  augment_batch(y.data(), B, C, H, W, {pad, false}, 3, scratch.data());
  size_t moved = 0;
  for (size_t b = 0; b < B; ++b) {
    // find the shift (dy, dx) in [0, 2 pad] that explains the output
    bool found = false;
    for (size_t dy = 0; dy <= 2 * pad && !found; ++dy)
      for (size_t dx = 0; dx <= 2 * pad && !found; ++dx) {
        bool ok = true;
        for (size_t h = 0; h < H; ++h)
          for (size_t w = 0; w < W; ++w) {
            ptrdiff_t sh = ptrdiff_t(h + dy) - ptrdiff_t(pad), sw = ptrdiff_t(w + dx) - ptrdiff_t(pad);
            float want = sh < 0 || sh >= ptrdiff_t(H) || sw < 0 || sw >= ptrdiff_t(W) ? 0.0f : x[(b * H + size_t(sh)) * W + size_t(sw)];
            ok &= y[(b * H + h) * W + w] == want;
          }
        if (ok) {
          found = true;
          moved += !(dy == pad && dx == pad);
        }
      }
    EXPECT_TRUE(found) << "image " << b;
  }
  EXPECT_GT(moved, 16u);  // most images moved
}

TEST(Augment, TheSameSeedGivesTheSameBatch) {
  auto a = ramp(8 * 3 * 8 * 8), b = a, c = a;
  std::vector<float> scratch(3 * 8 * 8);
  augment_batch(a.data(), 8, 3, 8, 8, {4, true}, 99, scratch.data());
  augment_batch(b.data(), 8, 3, 8, 8, {4, true}, 99, scratch.data());
  augment_batch(c.data(), 8, 3, 8, 8, {4, true}, 100, scratch.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}
