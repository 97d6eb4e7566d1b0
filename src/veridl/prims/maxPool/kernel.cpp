// Fast float32 max-pool kernels: see kernel.hpp for the contracts.
#include "veridl/prims/maxPool/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>


#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/kernels/simd.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// The in-range kernel offsets [lo, hi) of output position i along one dimension.
inline void window(size_t i, size_t stride, size_t pad, size_t k, size_t n, size_t& lo, size_t& hi) {
  const size_t start = i * stride;  // input coordinate + pad
  lo = pad > start ? pad - start : 0;
  hi = std::min(k, n + pad - start);
}

#if VERIDL_ISA_AVX2
// 2 x 2 windows at stride 2 that all lie inside the input (no padding reached: the pools after the chapter
// nets' convolutions): 8 outputs per step. The four candidates of a window are taken in the scalar loop's order,
// (0,0) (0,1) (1,0) (1,1), each replacing the best so far only when greater (an ordered compare, false with a
// NaN on either side, as the scalar > is), so values and indices are the scalar loop's, ties and NaNs included.
bool inside_2x2(const ops::MaxPoolShape& s) {
  return s.KH == 2 && s.KW == 2 && s.stride == 2 && s.pad_top == 0 && s.pad_left == 0 && 2 * s.OH() <= s.H &&
         2 * s.OW() <= s.W;
}

// The even (Odd = false) or odd input columns of the 16 floats lo, hi, in order.
template <bool Odd>
inline __m256 columns(__m256 lo, __m256 hi) {
  const __m256 t = Odd ? _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)) : _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}

// One output row: r0, r1 the window's two input rows.
void pool_row_2x2(const float* r0, const float* r1, size_t OW, float* y, uint32_t* idx) {
  auto take = [](__m256& best, __m256i& id, __m256 v, int k) {
    const __m256 m = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
    best = _mm256_blendv_ps(best, v, m);
    id = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(id), _mm256_castsi256_ps(_mm256_set1_epi32(k)), m));
  };
  auto step = [&](size_t j, auto&& load, auto&& store) {
    const __m256 a0 = load(r0 + 2 * j, 0), a1 = load(r0 + 2 * j + 8, 8);
    const __m256 b0 = load(r1 + 2 * j, 0), b1 = load(r1 + 2 * j + 8, 8);
    __m256 best = columns<false>(a0, a1);
    __m256i id = _mm256_setzero_si256();
    take(best, id, columns<true>(a0, a1), 1);
    take(best, id, columns<false>(b0, b1), 2);
    take(best, id, columns<true>(b0, b1), 3);
    store(y + j, idx + j, best, id);
  };
  size_t j = 0;
  for (; j + 8 <= OW; j += 8)
    step(j, [&](const float* p, size_t) { return _mm256_loadu_ps(p); },  // (captures: no function-pointer ABI)
         [&](float* yo, uint32_t* io, __m256 v, __m256i k) {
           _mm256_storeu_ps(yo, v);
           _mm256_storeu_si256(reinterpret_cast<__m256i*>(io), k);
         });
  if (j < OW) {  // the last r < 8 outputs: their 2r inputs of each row through masks (no read past them)
    const size_t r = OW - j;
    const __m256i in_lo = simd::lane_mask(std::min<size_t>(2 * r, 8)), in_hi = simd::lane_mask(2 * r > 8 ? 2 * r - 8 : 0);
    const __m256i out = simd::lane_mask(r);
    step(j, [&](const float* p, size_t half) { return _mm256_maskload_ps(p, half ? in_hi : in_lo); },
         [&](float* yo, uint32_t* io, __m256 v, __m256i k) {
           _mm256_maskstore_ps(yo, out, v);
           _mm256_maskstore_epi32(reinterpret_cast<int*>(io), out, k);
         });
  }
}
#endif

}  // namespace

void maxpool_forward(const ops::MaxPoolShape& s, const float* x, float* y, uint32_t* idx) {
  s.validate();
  const size_t OH = s.OH(), OW = s.OW(), H = s.H, W = s.W, KW = s.KW;
#if VERIDL_ISA_AVX2
  const bool fast = inside_2x2(s);
#endif
  for_chunks(s.B * s.C, s.B * s.C * OH * OW * s.KH * s.KW, [&](size_t lo, size_t hi) {
    for (size_t bc = lo; bc < hi; ++bc) {
      const float* plane = x + bc * H * W;
      float* yp = y + bc * OH * OW;
      uint32_t* ip = idx + bc * OH * OW;
#if VERIDL_ISA_AVX2
      if (fast) {
        for (size_t i = 0; i < OH; ++i)
          pool_row_2x2(plane + 2 * i * W, plane + (2 * i + 1) * W, OW, yp + i * OW, ip + i * OW);
        continue;
      }
#endif
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
