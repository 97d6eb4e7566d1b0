// Fast float32 avg-pool kernels: see kernel.hpp for the contracts.
#include "veridl/prims/avgPool/kernel.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "veridl/kernels/parallel.hpp"
#include "veridl/kernels/scratch.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// The output columns [lo, hi) whose window reads input column j s + kw - pad in range, for kernel column kw.
struct Range {
  size_t lo, hi;
};
Range outputs_reading(size_t kw, size_t stride, size_t pad, size_t n, size_t out) {
  // j s + kw - pad in [0, n)  <=>  j s >= pad - kw  and  j s <= n - 1 + pad - kw
  const size_t lo = pad > kw ? (pad - kw + stride - 1) / stride : 0;
  if (n + pad < kw + 1) return {0, 0};
  const size_t hi = std::min(out, (n - 1 + pad - kw) / stride + 1);
  return {std::min(lo, hi), hi};
}

// Per-call tables, on the calling thread, reused across calls (pointers are what the team threads read).
size_t* table(size_t n) {
  thread_local std::vector<size_t> t;
  if (t.size() < n) t.resize(n);
  return t.data();
}

float* scratch(size_t n) {
  thread_local Scratch<float> buf;
  return buf.get(n);
}

// Row sums of one plane: hs[h, j] = sum over kw ascending of x[h, j s + kw - pl] (in range), from 0.
void row_sums(const float* x, float* hs, size_t H, size_t W, size_t OW, size_t KW, size_t stride, size_t pl,
              const size_t* jr) {
  for (size_t h = 0; h < H; ++h) {
    const float* xr = x + h * W;
    float* r = hs + h * OW;
    std::fill(r, r + OW, 0.0f);
    for (size_t kw = 0; kw < KW; ++kw) {
      // j >= jr[2 kw] makes j s + kw >= pl: the index never wraps.
      for (size_t j = jr[2 * kw]; j < jr[2 * kw + 1]; ++j) r[j] += xr[j * stride + kw - pl];
    }
  }
}

}  // namespace

void avgpool_forward(const ops::AvgPoolShape& s, const float* x, float* y) {
  s.validate();
  const size_t H = s.H, W = s.W, OH = s.OH(), OW = s.OW(), KH = s.KH, KW = s.KW, st = s.stride;
  const size_t pt = s.pad_top, pl = s.pad_left;
  const float inv = 1.0f / static_cast<float>(s.window());
  size_t* const jr = table(2 * KW);
  for (size_t kw = 0; kw < KW; ++kw) {
    const Range r = outputs_reading(kw, st, pl, W, OW);
    jr[2 * kw] = r.lo;
    jr[2 * kw + 1] = r.hi;
  }
  for_chunks(s.B * s.C, s.B * s.C * (H * OW * KW + OH * OW * KH), [=](size_t lo, size_t hi) {
    float* const hs = scratch(H * OW);
    for (size_t bc = lo; bc < hi; ++bc) {
      row_sums(x + bc * H * W, hs, H, W, OW, KW, st, pl, jr);
      float* yp = y + bc * OH * OW;
      for (size_t i = 0; i < OH; ++i) {
        float* yr = yp + i * OW;
        std::fill(yr, yr + OW, 0.0f);
        for (size_t kh = 0; kh < KH; ++kh) {
          const ptrdiff_t h = ops::detail::in_coord(i, kh, st, pt, H);
          if (h < 0) continue;
          const float* r = hs + static_cast<size_t>(h) * OW;
          for (size_t j = 0; j < OW; ++j) yr[j] += r[j];
        }
        for (size_t j = 0; j < OW; ++j) yr[j] *= inv;
      }
    }
  });
}

void avgpool_backward(const ops::AvgPoolShape& s, const float* dy, float* dx) {
  s.validate();
  const size_t H = s.H, W = s.W, OH = s.OH(), OW = s.OW(), KW = s.KW, st = s.stride;
  const size_t pt = s.pad_top, pl = s.pad_left;
  const float inv = 1.0f / static_cast<float>(s.window());
  size_t* const t = table(2 * KW + 2 * H);
  size_t* const jr = t;          // per kw: the output columns reading it
  size_t* const ir = t + 2 * KW;  // per input row h: the output rows whose windows contain it
  for (size_t kw = 0; kw < KW; ++kw) {
    const Range r = outputs_reading(kw, st, pl, W, OW);
    jr[2 * kw] = r.lo;
    jr[2 * kw + 1] = r.hi;
  }
  for (size_t h = 0; h < H; ++h) ops::detail::covering(h, s.KH, st, pt, OH, ir[2 * h], ir[2 * h + 1]);
  for_chunks(s.B * s.C, s.B * s.C * (OH * OW * KW + H * W * s.KH), [=](size_t lo, size_t hi) {
    float* const vs = scratch(OH * W);
    for (size_t bc = lo; bc < hi; ++bc) {
      const float* g = dy + bc * OH * OW;
      // vs[i, w] = sum over the covering j ascending of dy[i, j]: kernel columns from the last to the first,
      // so that each w receives its j in ascending order (w = j s + kw - pl).
      for (size_t i = 0; i < OH; ++i) {
        const float* gr = g + i * OW;
        float* v = vs + i * W;
        std::fill(v, v + W, 0.0f);
        for (size_t kw = KW; kw-- > 0;) {
          for (size_t j = jr[2 * kw]; j < jr[2 * kw + 1]; ++j) v[j * st + kw - pl] += gr[j];
        }
      }
      float* dp = dx + bc * H * W;
      for (size_t h = 0; h < H; ++h) {
        float* d = dp + h * W;
        std::fill(d, d + W, 0.0f);
        for (size_t i = ir[2 * h]; i < ir[2 * h + 1]; ++i) {
          const float* v = vs + i * W;
          for (size_t w = 0; w < W; ++w) d[w] += v[w];
        }
        for (size_t w = 0; w < W; ++w) d[w] *= inv;
      }
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
