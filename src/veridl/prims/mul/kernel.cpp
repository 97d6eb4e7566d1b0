// Fast float32 elementwise product: see kernel.hpp for the contract. Plain loops over pointer arguments
// that GCC vectorizes (versioned on a runtime overlap check); large tensors are split into one contiguous
// chunk of rows per thread.
#include "veridl/prims/mul/kernel.hpp"

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// y = a s, elementwise (inner = 1).
void mul_flat_range(const float* a, const float* s, float* y, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) y[i] = a[i] * s[i];
}

// Rows [lo, hi) of y[r, k] = a[r, k] s[r].
void mul_rows(const float* a, const float* s, float* y, size_t K, size_t lo, size_t hi) {
  for (size_t r = lo; r < hi; ++r) {
    const float sr = s[r];
    const float* ar = a + r * K;
    float* yr = y + r * K;
    for (size_t k = 0; k < K; ++k) yr[k] = ar[k] * sr;
  }
}

// inner = 1: ds[i] = 0 + a[i] dy[i] (the reference's sum of one term, -0 becoming +0), da[i] = s[i] dy[i].
// ds first: da may alias a or dy.
void mul_backward_flat_range(const float* a, const float* s, const float* dy, float* da, float* ds, size_t lo,
                             size_t hi) {
  if (ds)
    for (size_t i = lo; i < hi; ++i) ds[i] = 0.0f + a[i] * dy[i];
  if (da)
    for (size_t i = lo; i < hi; ++i) da[i] = s[i] * dy[i];
}

// Rows [lo, hi): ds[r] = sum_k a[r,k] dy[r,k] (k order), then da[r,k] = s[r] dy[r,k].
void mul_backward_rows(const float* a, const float* s, const float* dy, float* da, float* ds, size_t K, size_t lo,
                       size_t hi) {
  for (size_t r = lo; r < hi; ++r) {
    const float* ar = a + r * K;
    const float* dyr = dy + r * K;
    if (ds) {
      float acc = 0.0f;
      for (size_t k = 0; k < K; ++k) acc += ar[k] * dyr[k];
      ds[r] = acc;
    }
    if (da) {
      const float sr = s[r];
      float* dar = da + r * K;
      for (size_t k = 0; k < K; ++k) dar[k] = sr * dyr[k];
    }
  }
}

}  // namespace

void mul_forward(const ops::MulShape& m, const float* a, const float* s, float* y) {
  const size_t rows = m.scales(), K = m.inner;
  if (K == 1) {
    for_chunks(rows, rows, [=](size_t lo, size_t hi) { mul_flat_range(a, s, y, lo, hi); });
    return;
  }
  for_chunks(rows, m.count(), [=](size_t lo, size_t hi) { mul_rows(a, s, y, K, lo, hi); });
}

void mul_backward(const ops::MulShape& m, const float* a, const float* s, const float* dy, float* da, float* ds) {
  if (!da && !ds) return;
  const size_t rows = m.scales(), K = m.inner;
  if (K == 1) {
    for_chunks(rows, rows, [=](size_t lo, size_t hi) { mul_backward_flat_range(a, s, dy, da, ds, lo, hi); });
    return;
  }
  for_chunks(rows, m.count(), [=](size_t lo, size_t hi) { mul_backward_rows(a, s, dy, da, ds, K, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
