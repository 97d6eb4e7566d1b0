// A std::vector whose storage starts on a cache line (64 bytes): the buffers the float kernels read and write
// whole vectors of (the executor's activations and gradients, the kernels' scratch and packed panels). With
// the default allocator a large buffer starts 16 bytes past a page boundary (glibc's mmap chunk header), so
// every 64-byte AVX-512 load of it straddles two cache lines: the AVX-512 GEMM measured 5-30% slower on such
// buffers (Intel Xeon, bench_kernels --gemm).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace veridl {

inline constexpr size_t kCacheLine = 64;

template <class T>
struct CacheAlignedAllocator {
  using value_type = T;
  CacheAlignedAllocator() = default;
  template <class U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}
  static constexpr std::align_val_t kAlign{alignof(T) > kCacheLine ? alignof(T) : kCacheLine};
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) noexcept { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheAlignedAllocator<T>>;

}  // namespace veridl
