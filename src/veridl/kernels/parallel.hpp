// The one way the float kernels use threads (BatchNorm's and softmax-CE's kernels aside: OpenMP loops of their own):
// items [0, n) split into contiguous chunks, one per OpenMP thread, or all on the calling thread when the work is too
// small to pay for a fork. Which thread runs an item never changes what the item computes, so results are
// bit-identical for any thread count.
#pragma once

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <vector>

namespace veridl::kernels {

// Multiply-adds (or comparable units of work) below which a kernel does not fork an OpenMP team.
inline constexpr size_t kParallelMinWork = size_t(1) << 16;

// Opt-in timing of the teams for_chunks forks (bench_kernels --regions): while a RegionProfiler is installed, each
// fork from outside a parallel region reports its site (the body's type as the compiler spells it: GCC names the
// kernel function a lambda is in, so that the lambdas of one function share a site; clang names the lambda's file,
// line and column), its wall time and the seconds each thread spent in the body; the rest of threads x wall is the
// team's idle time (waiting for a slower thread, forking and joining).
// Not installed: one relaxed load and a branch per fork.
struct RegionProfiler {
  virtual ~RegionProfiler() = default;
  virtual void add(const char* site, double wall, const std::vector<double>& busy) = 0;
};
inline std::atomic<RegionProfiler*> g_region_profiler{nullptr};

template <class F>
const char* region_site() {
  return __PRETTY_FUNCTION__;  // the site: equal names are one string (the linker merges them)
}

// The threads for_chunks runs `work` on.
inline int team_size(size_t work) { return work >= kParallelMinWork ? omp_get_max_threads() : 1; }

template <class F>
void for_chunks(size_t n, size_t work, F&& body) {
  const int nt = team_size(work);
  if (nt <= 1 || n <= 1) {
    body(size_t(0), n);
    return;
  }
  RegionProfiler* prof = g_region_profiler.load(std::memory_order_relaxed);
  if (prof && omp_in_parallel()) prof = nullptr;  // a nested fork: not timed
  using Clock = std::chrono::steady_clock;
  std::vector<double> busy(prof ? static_cast<size_t>(nt) : 0);  // (allocated only while profiling)
  const Clock::time_point t0 = prof ? Clock::now() : Clock::time_point{};
#pragma omp parallel num_threads(nt)
  {
    const size_t t = static_cast<size_t>(omp_get_thread_num());
    const size_t T = static_cast<size_t>(omp_get_num_threads());
    const Clock::time_point a = prof ? Clock::now() : Clock::time_point{};
    body(n * t / T, n * (t + 1) / T);
    if (prof) busy[t] = std::chrono::duration<double>(Clock::now() - a).count();
  }
  if (prof) prof->add(region_site<std::decay_t<F>>(), std::chrono::duration<double>(Clock::now() - t0).count(), busy);
}

}  // namespace veridl::kernels
