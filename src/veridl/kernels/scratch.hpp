// The float kernels' per-thread scratch buffers: each kernel keeps its own thread_local Scratch<T> (one per
// variant: they live in the kernel.cpp's anonymous namespace), which grows and never shrinks, so that a train
// step allocates nothing. A kernel must write every scratch element it reads in the same call: what a buffer
// holds between calls is unspecified.
//
// Test support: poison_scratch() makes every Scratch fill its whole buffer with garbage (NaN; integers all
// ones) at its next use, on every thread. The differential tests call each kernel, poison the scratch and the
// outputs, call it again and require the same bits (PrimitiveTable.EveryFastKernelGivesTheSameBitsAfter-
// ItsScratchAndOutputsAreDirtied): a kernel that relies on a buffer left zero by its first allocation, or by an
// earlier call, fails it. Include this header before kernels/target.hpp (its inline code keeps the base target).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "veridl/util/aligned.hpp"

namespace veridl::kernels {

namespace detail {
inline std::atomic<uint64_t> scratch_poison_epoch{0};
}  // namespace detail

// Every Scratch is garbage-filled at its next use (tests only; thread-safe).
inline void poison_scratch() { detail::scratch_poison_epoch.fetch_add(1, std::memory_order_relaxed); }

template <class T>
struct Scratch {
  AlignedVector<T> buf;
  uint64_t epoch = 0;
  // At least n elements (their values unspecified), from a cache-line boundary.
  T* get(size_t n) {
    if (buf.size() < n) buf.resize(n);
    const uint64_t e = detail::scratch_poison_epoch.load(std::memory_order_relaxed);
    if (e != epoch) {
      epoch = e;
      if constexpr (std::numeric_limits<T>::has_quiet_NaN)
        std::fill(buf.begin(), buf.end(), std::numeric_limits<T>::quiet_NaN());
      else
        std::fill(buf.begin(), buf.end(), std::numeric_limits<T>::max());
    }
    return buf.data();
  }
};

}  // namespace veridl::kernels
