// The one way the float kernels use threads: items [0, n) split into contiguous chunks, one per OpenMP
// thread, or all on the calling thread when the work is too small to pay for a fork. Which thread runs
// an item never changes what the item computes, so results are bit-identical for any thread count.
#pragma once

#include <omp.h>

#include <cstddef>

namespace veridl::kernels {

// Multiply-adds (or comparable units of work) below which a kernel does not fork an OpenMP team.
inline constexpr size_t kParallelMinWork = size_t(1) << 16;

template <class F>
void for_chunks(size_t n, size_t work, F&& body) {
  const int nt = work >= kParallelMinWork ? omp_get_max_threads() : 1;
  if (nt <= 1 || n <= 1) {
    body(size_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const size_t t = static_cast<size_t>(omp_get_thread_num());
    const size_t T = static_cast<size_t>(omp_get_num_threads());
    body(n * t / T, n * (t + 1) / T);
  }
}

}  // namespace veridl::kernels
