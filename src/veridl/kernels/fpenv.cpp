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

FlushSubnormals::FlushSubnormals(bool on) {
  if (!on) return;
  const int n = omp_get_max_threads();
  saved_.assign(static_cast<size_t>(n), 0u);
  // One region of the team that the training steps' regions reuse (libgomp keeps its threads; a thread created later
  // starts with its creator's MXCSR, this thread's).
#pragma omp parallel num_threads(n)
  {
    const auto t = static_cast<size_t>(omp_get_thread_num());
    saved_[t] = _mm_getcsr();
    _mm_setcsr(saved_[t] | kFtzDaz);
  }
}

FlushSubnormals::~FlushSubnormals() {
  if (saved_.empty()) return;
#pragma omp parallel num_threads(static_cast<int>(saved_.size()))
  {
    const auto t = static_cast<size_t>(omp_get_thread_num());
    _mm_setcsr(saved_[t]);
  }
}

bool flushing_subnormals() { return (_mm_getcsr() & kFtzDaz) == kFtzDaz; }
#else
FlushSubnormals::FlushSubnormals(bool) {}
FlushSubnormals::~FlushSubnormals() = default;
bool flushing_subnormals() { return false; }
#endif

}  // namespace veridl::kernels
