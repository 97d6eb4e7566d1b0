// Fast float32 fan-in and fan-out accumulation: see kernel.hpp for the contract. Plain loops over pointer
// arguments that GCC vectorizes (versioned on a runtime overlap check); large tensors are split into one
// contiguous chunk per thread.
#include "veridl/prims/add/kernel.hpp"

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

void add_range(const float* a, const float* b, float* y, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) y[i] = a[i] + b[i];
}

void copy_range(const float* src, float* dst, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) dst[i] = src[i];
}

void accumulate_range(const float* src, float* dst, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) dst[i] += src[i];
}

}  // namespace

void add_forward(const ops::AddShape& s, const float* a, const float* b, float* y) {
  for_chunks(s.n, s.n, [=](size_t lo, size_t hi) { add_range(a, b, y, lo, hi); });
}

void add_backward(const ops::AddShape& s, const float* dy, float* da, float* db) {
  if (!da && !db) return;
  for_chunks(s.n, s.n, [=](size_t lo, size_t hi) {
    if (da && da != dy) copy_range(dy, da, lo, hi);
    if (db && db != dy) copy_range(dy, db, lo, hi);
  });
}

void add_into(size_t n, const float* src, float* dst) {
  for_chunks(n, n, [=](size_t lo, size_t hi) { accumulate_range(src, dst, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
