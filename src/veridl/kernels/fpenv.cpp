#include "veridl/kernels/fpenv.hpp"

#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define VERIDL_HAVE_MXCSR 1
#else
#define VERIDL_HAVE_MXCSR 0
#endif

namespace veridl::kernels {

#if VERIDL_HAVE_MXCSR
namespace {
constexpr unsigned kFtzDaz = 0x8000u | 0x0040u;  // MXCSR bit 15 (flush to zero), bit 6 (denormals are zero)
}

// Two OpenMP runtimes, two rules: libgomp (GCC) leaves each thread's MXCSR alone, so every thread of the team is set
// in a region of the team, which the training steps' regions reuse (a thread created later starts with its creator's
// MXCSR); LLVM's libomp (clang) gives the workers the calling thread's MXCSR at the start of every region and puts
// the calling thread's back at its end, so the calling thread is set again after the region.
FlushSubnormals::FlushSubnormals(bool on) {
  if (!on) return;
  const int n = omp_get_max_threads();
  saved_.assign(static_cast<size_t>(n), 0u);
  const unsigned mine = _mm_getcsr();
#pragma omp parallel num_threads(n)
  {
    const auto t = static_cast<size_t>(omp_get_thread_num());
    saved_[t] = t == 0 ? mine : _mm_getcsr();
    _mm_setcsr(saved_[t] | kFtzDaz);
  }
  _mm_setcsr(mine | kFtzDaz);
}

FlushSubnormals::~FlushSubnormals() {
  if (saved_.empty()) return;
#pragma omp parallel num_threads(static_cast<int>(saved_.size()))
  {
    const auto t = static_cast<size_t>(omp_get_thread_num());
    _mm_setcsr(saved_[t]);
  }
  _mm_setcsr(saved_[0]);
}

bool flushing_subnormals() { return (_mm_getcsr() & kFtzDaz) == kFtzDaz; }
#else
FlushSubnormals::FlushSubnormals(bool) {}
FlushSubnormals::~FlushSubnormals() = default;
bool flushing_subnormals() { return false; }
#endif

}  // namespace veridl::kernels
