// Fast float32 dropout / drop-path: see kernel.hpp for the contract. The decisions first (one hash per
// decision), then one select-and-scale pass; large tensors in one contiguous chunk per thread.
#include "veridl/prims/dropout/kernel.hpp"

#include <algorithm>

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

float scale_of(double rate) { return static_cast<float>(1.0 / (1.0 - rate)); }

// Plain functions over pointer arguments (uint8_t stores alias anything; see prims/relu/kernel.cpp).
void apply_range(const float* x, const uint8_t* keep, size_t per, float scale, float* y, size_t lo, size_t hi) {
  if (per == 1) {
    for (size_t i = lo; i < hi; ++i) {
      const float v = x[i] * scale;
      y[i] = keep[i] ? v : 0.0f;
    }
    return;
  }
  // One decision per run of `per` elements (drop-path: per example): whole runs scaled or zeroed, one division
  // per run instead of one per element.
  for (size_t i = lo; i < hi;) {
    const size_t d = i / per, end = std::min(hi, (d + 1) * per);
    if (keep[d]) {
      for (size_t j = i; j < end; ++j) y[j] = x[j] * scale;
    } else {
      std::fill(y + i, y + end, 0.0f);
    }
    i = end;
  }
}

}  // namespace

void drop_forward(const ops::DropShape& s, double rate, uint64_t key, const float* x, float* y, uint8_t* keep) {
  const uint32_t th = noise::keep_threshold(1.0 - rate);
  const size_t nd = s.decisions();
  const size_t d0 = s.first_decision();
  for_chunks(nd, 8 * nd, [=](size_t lo, size_t hi) {
    for (size_t d = lo; d < hi; ++d) keep[d] = noise::keep(key, d0 + d, th) ? 1 : 0;
  });
  const float scale = scale_of(rate);
  const size_t per = s.per_decision();
  for_chunks(s.count(), s.count(), [=](size_t lo, size_t hi) { apply_range(x, keep, per, scale, y, lo, hi); });
}

void drop_backward(const ops::DropShape& s, double rate, const uint8_t* keep, const float* dy, float* dx) {
  const float scale = scale_of(rate);
  const size_t per = s.per_decision();
  for_chunks(s.count(), s.count(), [=](size_t lo, size_t hi) { apply_range(dy, keep, per, scale, dx, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
