// Fast float32 max-pool kernels: see kernel.hpp for the contracts.
#include "veridl/prims/maxPool/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>


#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// The in-range kernel offsets [lo, hi) of output position i along one dimension.
inline void window(size_t i, size_t stride, size_t pad, size_t k, size_t n, size_t& lo, size_t& hi) {
  const size_t start = i * stride;  // input coordinate + pad
  lo = pad > start ? pad - start : 0;
  hi = std::min(k, n + pad - start);
}

}  // namespace

void maxpool_forward(const ops::MaxPoolShape& s, const float* x, float* y, uint32_t* idx) {
  s.validate();
  const size_t OH = s.OH(), OW = s.OW(), H = s.H, W = s.W, KW = s.KW;
  for_chunks(s.B * s.C, s.B * s.C * OH * OW * s.KH * s.KW, [&](size_t lo, size_t hi) {
    for (size_t bc = lo; bc < hi; ++bc) {
      const float* plane = x + bc * H * W;
      float* yp = y + bc * OH * OW;
      uint32_t* ip = idx + bc * OH * OW;
      for (size_t i = 0; i < OH; ++i) {
        size_t kh0, kh1;
        window(i, s.stride, s.pad_top, s.KH, H, kh0, kh1);
        const size_t h0 = i * s.stride + kh0 - s.pad_top;
        for (size_t j = 0; j < OW; ++j) {
          size_t kw0, kw1;
          window(j, s.stride, s.pad_left, KW, W, kw0, kw1);
          const float* base = plane + h0 * W + (j * s.stride + kw0 - s.pad_left);
          float best = base[0];
          size_t bh = kh0, bw = kw0;
          for (size_t kh = kh0; kh < kh1; ++kh) {
            const float* r = base + (kh - kh0) * W;
            for (size_t kw = kw0; kw < kw1; ++kw)
              if (r[kw - kw0] > best) {  // strict: ties stay with the first maximum
                best = r[kw - kw0];
                bh = kh;
                bw = kw;
              }
          }
          yp[i * OW + j] = best;
          ip[i * OW + j] = static_cast<uint32_t>(bh * KW + bw);
        }
      }
    }
  });
}

void maxpool_backward(const ops::MaxPoolShape& s, const uint32_t* idx, const float* dy, float* dx) {
  s.validate();
  const size_t OH = s.OH(), OW = s.OW(), H = s.H, W = s.W, KK = s.KH * s.KW;
  // No integer division per output; the tables are reused across calls (a train step allocates nothing).
  // (Pointers, not the thread_local vectors, are what the team threads read.)
  thread_local std::vector<size_t> tables;
  if (tables.size() < 2 * KK) tables.resize(2 * KK);
  size_t* const kh_of = tables.data();
  size_t* const kw_of = kh_of + KK;
  for (size_t k = 0; k < KK; ++k) {
    kh_of[k] = k / s.KW;
    kw_of[k] = k % s.KW;
  }
  std::atomic<bool> bad{false};
  for_chunks(s.B * s.C, 8 * (s.x_size() + s.y_size()), [&](size_t lo, size_t hi) {
    for (size_t bc = lo; bc < hi; ++bc) {
      float* plane = dx + bc * H * W;
      std::fill(plane, plane + H * W, 0.0f);
      const float* dyp = dy + bc * OH * OW;
      const uint32_t* ip = idx + bc * OH * OW;
      for (size_t i = 0; i < OH; ++i)
        for (size_t j = 0; j < OW; ++j) {
          const uint32_t k = ip[i * OW + j];
          if (k >= KK) {
            bad.store(true, std::memory_order_relaxed);
            continue;
          }
          // Unsigned wrap-around turns "in the padding above / left" into "too large".
          const size_t h = i * s.stride + kh_of[k] - s.pad_top, w = j * s.stride + kw_of[k] - s.pad_left;
          if (h >= H || w >= W) {
            bad.store(true, std::memory_order_relaxed);
            continue;
          }
          plane[h * W + w] += dyp[i * OW + j];
        }
    }
  });
  if (bad.load()) {  // name the first bad index
    for (size_t o = 0; o < s.y_size(); ++o) ops::maxpool_source(s, o, idx[o]);
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
