// Fast float32 conv2d kernels: see kernel.hpp for the contracts, the method and the determinism
// argument.
#include "veridl/prims/conv2d/kernel.hpp"
#include "veridl/prims/dense/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "veridl/kernels/parallel.hpp"
#include "veridl/kernels/scratch.hpp"

#include "veridl/kernels/target.hpp"
#include "veridl/kernels/simd.hpp"
#include "veridl/kernels/gemm_tile.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// Per-thread scratch buffers (slot 0: col / dcol or a depthwise padded plane, slot 1: dy^T or the depthwise
// output plane / dW lanes, slot 2: the weight gradient's partial sums, on the calling thread, slot 3: the GEMM's
// packed blocks of A and B; slots 4 and 5: Winograd's tile-row buffers and its transformed kernel, winograd.hpp,
// slot 4 also the small pointwise weight gradient's planes gathered before their transpose);
// they grow, never shrink, so a train step allocates nothing.
float* scratch(int slot, size_t n) {
  thread_local Scratch<float> buf[6];
  return buf[slot].get(n);
}

// ---- GEMM: C(m, n) = init + sum_k A(m, k) B[k, n] -----------------------------------------------------

using micro::Gemm;  // kernels/gemm_tile.hpp
using micro::Init;

// Output positions are split into chunks of a multiple of kCols (see Geometry::chunk).
constexpr size_t kCols = 16;

#if VERIDL_ISA_AVX2

// Single-threaded (the callers parallelise over independent GEMMs): the blocked GEMM of kernels/gemm_tile.hpp
// (micro::gemm_tiles, packed panels of A and B in the thread's scratch slot 3).
void gemm(const Gemm& g) {
  if (g.M == 0 || g.N == 0) return;
  const micro::Blocks mb(g.M, micro::kTileRows);
  micro::gemm_tiles(g, mb, 0, mb.count, 0, (g.N + micro::kTileCols - 1) / micro::kTileCols,
                    scratch(3, micro::gemm_pack_floats(g.K, false)));
}

#else  // portable: the compiler vectorizes the n loop

void gemm(const Gemm& g) {
  if (!g.cs.b_plain() || !g.cs.c_plain()) {  // one product per segment of columns: the same chains
    for (size_t n0 = 0; n0 < g.N; n0 += g.cs.seg) {
      Gemm part = g;
      part.N = std::min(g.cs.seg, g.N - n0);
      part.B = g.B + g.cs.boff(n0);
      part.C = g.C + g.cs.coff(n0);
      if (g.init == Init::Col && g.init_ptr) part.init_ptr = g.init_ptr + n0;
      part.cs = {};
      gemm(part);
    }
    return;
  }
  for (size_t m = 0; m < g.M; ++m) {
    float* c = g.C + m * g.ldc;
    if (g.init != Init::C) {
      const float c0 = g.init == Init::Row && g.init_ptr ? g.init_ptr[m] : 0.0f;
      for (size_t n = 0; n < g.N; ++n) c[n] = c0;
    }
    for (size_t k = 0; k < g.K; ++k) {
      const float a = g.A[m * g.sam + k * g.sak];
      const float* b = g.B + k * g.ldb;
      for (size_t n = 0; n < g.N; ++n) c[n] += a * b[n];
    }
  }
}

#endif  // VERIDL_ISA_AVX2

// ---- im2col / col2im over a range of output positions ----------------------------------------------

struct Geometry {
  size_t C, H, W, KH, KW, s, pt, pl, OH, OW, K, P;
  explicit Geometry(const ops::Conv2dShape& sh)
      : C(sh.C), H(sh.H), W(sh.W), KH(sh.KH), KW(sh.KW), s(sh.stride), pt(sh.pad_top), pl(sh.pad_left),
        OH(sh.OH()), OW(sh.OW()), K(sh.C * sh.KH * sh.KW), P(sh.OH() * sh.OW()) {}
  bool pointwise(const ops::Conv2dShape& sh) const {
    return KH == 1 && KW == 1 && s == 1 && sh.pad_top == 0 && sh.pad_left == 0 && sh.pad_bottom == 0 &&
           sh.pad_right == 0;
  }
  // Output columns j in [lo, hi) read an in-range input column at kernel offset kw.
  void col_range(size_t kw, size_t& lo, size_t& hi) const {
    lo = pl > kw ? (pl - kw + s - 1) / s : 0;
    hi = W + pl > kw ? std::min(OW, (W + pl - kw + s - 1) / s) : 0;
    lo = std::min(lo, hi);
  }
  // Input row of output row i at kernel offset kh, or -1 in the padding.
  ptrdiff_t in_row(size_t i, size_t kh) const {
    const ptrdiff_t v = static_cast<ptrdiff_t>(i * s + kh) - static_cast<ptrdiff_t>(pt);
    return v >= 0 && v < static_cast<ptrdiff_t>(H) ? v : -1;
  }
  // Chunks of output positions: balanced multiples of 16 columns (the last may be shorter), as few as
  // keep a [K, chunk] buffer within ~256 KiB (half of L2).
  size_t chunk() const {
    const size_t blocks = (P + kCols - 1) / kCols;
    const size_t fit = std::max<size_t>(1, (64 * 1024) / (std::max<size_t>(K, 1) * kCols));
    const size_t n = (blocks + fit - 1) / fit;
    return (blocks + n - 1) / n * kCols;
  }
};

// Visits the row segments of the output positions [p0, p1): f(i, j0, j1, offset of (i, j0) from p0).
template <class F>
void for_segments(const Geometry& g, size_t p0, size_t p1, F&& f) {
  size_t p = p0;
  while (p < p1) {
    const size_t i = p / g.OW, j0 = p % g.OW, j1 = std::min(g.OW, j0 + (p1 - p));
    f(i, j0, j1, p - p0);
    p += j1 - j0;
  }
}

// im2col for stride 1 and OW = W ("same" padding along the rows): then output position p = i OW + j reads input
// element p + (kh - pt) W + (kw - pl) of its channel's plane, so each row of col is one copy of a contiguous run
// of the plane (instead of one per output row: at 28 x 28 and below the per-row copies cost as much as the
// product), after which the positions whose input lies in the padding are zeroed: whole output rows above and
// below, and the up to pl (left) / pr (right) columns of each row, which the run took from the neighbouring rows.
void im2col_same(const Geometry& g, const float* x, size_t p0, size_t p1, float* col, size_t np) {
  const ptrdiff_t HW = static_cast<ptrdiff_t>(g.H * g.W);
  for (size_t kh = 0; kh < g.KH; ++kh) {
    // Output rows [i0, i1) read input rows in range.
    const size_t i0 = std::min(g.OH, g.pt > kh ? g.pt - kh : 0);
    const size_t i1 = std::max(i0, std::min(g.OH, g.H + g.pt > kh ? g.H + g.pt - kh : 0));
    const size_t q0 = std::clamp(i0 * g.OW, p0, p1), q1 = std::clamp(i1 * g.OW, q0, p1);
    for (size_t kw = 0; kw < g.KW; ++kw) {
      size_t lo, hi;
      g.col_range(kw, lo, hi);
      const ptrdiff_t d = (static_cast<ptrdiff_t>(kh) - static_cast<ptrdiff_t>(g.pt)) * static_cast<ptrdiff_t>(g.W) +
                          static_cast<ptrdiff_t>(kw) - static_cast<ptrdiff_t>(g.pl);
      // The run: positions [r0, r1) from plane elements [r0 + d, r1 + d) (clipped to the plane: what it leaves
      // out is padding).
      const ptrdiff_t Q0 = static_cast<ptrdiff_t>(q0), Q1 = static_cast<ptrdiff_t>(q1);
      const ptrdiff_t R0 = std::clamp(std::max(Q0 + d, ptrdiff_t(0)) - d, Q0, Q1);
      const ptrdiff_t R1 = std::clamp(std::min(Q1 + d, HW) - d, R0, Q1);
      const size_t r0 = static_cast<size_t>(R0), r1 = static_cast<size_t>(R1);
      for (size_t c = 0; c < g.C; ++c) {
        float* row = col + ((c * g.KH + kh) * g.KW + kw) * np - p0;  // row[p], p in [p0, p1)
        std::fill(row + p0, row + r0, 0.0f);
        if (r1 > r0) std::memcpy(row + r0, x + c * g.H * g.W + (R0 + d), (r1 - r0) * sizeof(float));
        std::fill(row + r1, row + p1, 0.0f);
        if (lo == 0 && hi == g.OW) continue;
        for (size_t i = q0 / g.OW; i * g.OW < q1; ++i) {
          const size_t rs = i * g.OW;
          for (size_t j = 0; j < lo; ++j)
            if (rs + j >= q0 && rs + j < q1) row[rs + j] = 0.0f;
          for (size_t j = hi; j < g.OW; ++j)
            if (rs + j >= q0 && rs + j < q1) row[rs + j] = 0.0f;
        }
      }
    }
  }
}

// col[k, p - p0] = x[c, i s + kh - pt, j s + kw - pl] (0 in the padding), k = (c, kh, kw), p = (i, j); the rows of
// col ld floats apart (default: p1 - p0).
void im2col(const Geometry& g, const float* x, size_t p0, size_t p1, float* col, size_t ld = 0) {
  const size_t np = ld ? ld : p1 - p0;
  if (g.s == 1 && g.OW == g.W) return im2col_same(g, x, p0, p1, col, np);
  for (size_t c = 0; c < g.C; ++c)
    for (size_t kh = 0; kh < g.KH; ++kh)
      for (size_t kw = 0; kw < g.KW; ++kw) {
        float* row = col + ((c * g.KH + kh) * g.KW + kw) * np;
        size_t lo, hi;
        g.col_range(kw, lo, hi);
        for_segments(g, p0, p1, [&](size_t i, size_t j0, size_t j1, size_t off) {
          float* dst = row + off;  // dst[j - j0] for j in [j0, j1)
          const ptrdiff_t ih = g.in_row(i, kh);
          const size_t a = std::clamp(lo, j0, j1), b = std::clamp(hi, a, j1);
          if (ih < 0) {
            std::fill(dst, dst + (j1 - j0), 0.0f);
            return;
          }
          std::fill(dst, dst + (a - j0), 0.0f);
          const float* src = x + (c * g.H + static_cast<size_t>(ih)) * g.W;  // column j s + kw - pl (>= 0 for j >= a)
          if (g.s == 1)
            std::memcpy(dst + (a - j0), src + (a + kw - g.pl), (b - a) * sizeof(float));
          else
            for (size_t j = a; j < b; ++j) dst[j - j0] = src[j * g.s + kw - g.pl];
          std::fill(dst + (b - j0), dst + (j1 - j0), 0.0f);
        });
      }
}

// col2im_add for stride 1 and OW = W (see im2col_same): output row i at (kh, kw) adds its columns [lo, hi) to
// input row i + kh - pt, shifted by kw - pl; the same additions in the same order per dx element as the general
// loop below, without its per-segment bookkeeping.
void col2im_add_same(const Geometry& g, const float* col, size_t c0, size_t c1, size_t p0, size_t p1, float* dx,
                     size_t np) {
  for (size_t c = c0; c < c1; ++c)
    for (size_t kh = 0; kh < g.KH; ++kh) {
      const size_t i0 = std::min(g.OH, g.pt > kh ? g.pt - kh : 0);
      const size_t i1 = std::max(i0, std::min(g.OH, g.H + g.pt > kh ? g.H + g.pt - kh : 0));
      for (size_t kw = 0; kw < g.KW; ++kw) {
        const float* row = col + (((c - c0) * g.KH + kh) * g.KW + kw) * np - p0;  // row[p], p in [p0, p1)
        size_t lo, hi;
        g.col_range(kw, lo, hi);
        for (size_t i = std::max(i0, p0 / g.OW); i < i1 && i * g.OW < p1; ++i) {
          const size_t j0 = std::max(lo, p0 > i * g.OW ? p0 - i * g.OW : 0);
          const size_t j1 = std::min(hi, p1 - i * g.OW);
          if (j0 >= j1) continue;
          const float* __restrict src = row + i * g.OW;  // src[j]
          float* __restrict dst = dx + (c * g.H + (i + kh - g.pt)) * g.W + kw - g.pl;  // dst[j]: column j + kw - pl
          for (size_t j = j0; j < j1; ++j) dst[j] += src[j];
        }
      }
    }
}

// dx[c, ...] += col[k, p - p0] for the channels [c0, c1) (col rows relative to c0, ld floats apart; default
// p1 - p0): the adjoint of im2col. For a fixed dx element the additions run in (kh, kw, p) order.
void col2im_add(const Geometry& g, const float* col, size_t c0, size_t c1, size_t p0, size_t p1, float* dx,
                size_t ld = 0) {
  const size_t np = ld ? ld : p1 - p0;
  if (g.s == 1 && g.OW == g.W) return col2im_add_same(g, col, c0, c1, p0, p1, dx, np);
  for (size_t c = c0; c < c1; ++c)
    for (size_t kh = 0; kh < g.KH; ++kh)
      for (size_t kw = 0; kw < g.KW; ++kw) {
        const float* row = col + (((c - c0) * g.KH + kh) * g.KW + kw) * np;
        size_t lo, hi;
        g.col_range(kw, lo, hi);
        for_segments(g, p0, p1, [&](size_t i, size_t j0, size_t j1, size_t off) {
          const ptrdiff_t ih = g.in_row(i, kh);
          if (ih < 0) return;
          const float* src = row + off;  // src[j - j0]
          const size_t a = std::clamp(lo, j0, j1), b = std::clamp(hi, a, j1);
          float* dst = dx + (c * g.H + static_cast<size_t>(ih)) * g.W;  // column j s + kw - pl
          if (g.s == 1) {
            float* d = dst + (a + kw - g.pl);
            const float* q = src + (a - j0);
            for (size_t t = 0; t < b - a; ++t) d[t] += q[t];
          } else {
            for (size_t j = a; j < b; ++j) dst[j * g.s + kw - g.pl] += src[j - j0];
          }
        });
      }
}



// out[q * ld + (o - o0)] = src[o * P + q] for q < np and o in [o0, o1): channels [o0, o1) of np positions of dy
// (rows P apart) transposed, 8 positions at a time (8-float runs of writes).
// The AVX2 and AVX-512 variants move full 8 x 8 blocks through registers (simd::transpose8), the edges as the
// scalar loop does (a copy: the same values either way).
void transpose_positions(const float* src, size_t P, size_t np, size_t o0, size_t o1, float* out, size_t ld) {
  size_t q8 = 0;
#if VERIDL_ISA_AVX2
  q8 = np / 8 * 8;
  const size_t o8 = o0 + (o1 - o0) / 8 * 8;
  for (size_t q0 = 0; q0 < q8; q0 += 8)
    for (size_t o = o0; o < o8; o += 8) {
      __m256 r[8];
      for (size_t j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + (o + j) * P + q0);
      simd::transpose8(r);
      for (size_t j = 0; j < 8; ++j) _mm256_storeu_ps(out + (q0 + j) * ld + (o - o0), r[j]);
    }
  for (size_t q = 0; q < q8; ++q)  // the channels past the last full block of 8
    for (size_t o = o8; o < o1; ++o) out[q * ld + (o - o0)] = src[o * P + q];
#endif
  for (size_t q0 = q8; q0 < np; q0 += 8)  // the positions past the last full block of 8 (all of them: portable)
    for (size_t o = o0; o < o1; ++o)
      for (size_t q = q0; q < std::min(np, q0 + 8); ++q) out[q * ld + (o - o0)] = src[o * P + q];
}

// dst[r ldd + j] = src[r lds + j] for r < rows, j < cols: an image's planes into the images-side-by-side buffers of
// ImageGroups and back (cols = the plane's positions). The planes of the late pointwise convolutions are a few floats
// (ConvNeXt-T's 4x4, 2x2 and 1x1 for a 32x32 input): a memcpy call per row cost more than its copy, so the usual
// widths are loops of a constant length; so are the rows of the depthwise kernels' padded planes (7, 8, 14, 28).
template <size_t W>
void copy_rows_of(const float* __restrict src, size_t lds, float* __restrict dst, size_t ldd, size_t rows) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < W; ++j) dst[r * ldd + j] = src[r * lds + j];
}
void copy_rows(const float* src, size_t lds, float* dst, size_t ldd, size_t rows, size_t cols) {
  switch (cols) {
    case 1: return copy_rows_of<1>(src, lds, dst, ldd, rows);
    case 2: return copy_rows_of<2>(src, lds, dst, ldd, rows);
    case 4: return copy_rows_of<4>(src, lds, dst, ldd, rows);
    case 7: return copy_rows_of<7>(src, lds, dst, ldd, rows);
    case 8: return copy_rows_of<8>(src, lds, dst, ldd, rows);
    case 9: return copy_rows_of<9>(src, lds, dst, ldd, rows);
    case 14: return copy_rows_of<14>(src, lds, dst, ldd, rows);
    case 16: return copy_rows_of<16>(src, lds, dst, ldd, rows);
    case 28: return copy_rows_of<28>(src, lds, dst, ldd, rows);
    case 49: return copy_rows_of<49>(src, lds, dst, ldd, rows);
    case 64: return copy_rows_of<64>(src, lds, dst, ldd, rows);
    default:
      for (size_t r = 0; r < rows; ++r) std::memcpy(dst + r * ldd, src + r * lds, cols * sizeof(float));
  }
}

#if VERIDL_ISA_AVX2
#include "veridl/prims/conv2d/winograd.hpp"
#endif

// ---- depthwise (G = C = O): direct loops per (image, channel) plane ------------------------------------
//
// No im2col and no GEMM: a depthwise channel is a KH x KW stencil on one plane, too little work per
// output for a GEMM. The inner loops run over output columns j in the range col_range gives (the input
// column j s + kw - pl in range); S is the stride when known at compile time (1, 2), 0 otherwise.

template <size_t S>
void dw_plane_forward(const Geometry& g, const float* __restrict x, const float* __restrict w, float bias,
                      float* __restrict y) {
  const size_t s = S ? S : g.s;
  for (size_t i = 0; i < g.OH; ++i) {
    float* __restrict yr = y + i * g.OW;
    std::fill(yr, yr + g.OW, bias);
    for (size_t kh = 0; kh < g.KH; ++kh) {
      const ptrdiff_t ih = g.in_row(i, kh);
      if (ih < 0) continue;
      const float* __restrict xr = x + static_cast<size_t>(ih) * g.W;
      for (size_t kw = 0; kw < g.KW; ++kw) {
        size_t lo, hi;
        g.col_range(kw, lo, hi);
        const float wv = w[kh * g.KW + kw];
        for (size_t j = lo; j < hi; ++j) yr[j] += wv * xr[j * s + kw - g.pl];
      }
    }
  }
}

#if VERIDL_ISA_AVX2
// The padded-plane loops below with their accumulators in registers (kernels with at most kDwMaxTaps taps).
inline constexpr size_t kDwMaxTaps = 64;
inline constexpr size_t kDwVecs = 8;  // output vectors a block of dw_taps_block carries through every tap (dw_taps'
                                      // switch goes up to 8)

// yp[q0 + v L + l] for NV vectors (the last one's lanes [0, tail) only, when tail > 0): bias, then one FMA per tap
// t, wt[t] xp[off[t] + q], in tap order: the scalar loop's contracted yp[q] += wv src[q] per element, in registers.
template <size_t NV>
void dw_taps_block(const float* __restrict xp, const size_t* off, const float* wt, size_t KK, float bias,
                   float* __restrict yp, size_t q0, size_t tail) {
  using V = micro::Vec;
  constexpr size_t L = V::kLanes;
  typename V::Reg acc[NV];
  for (size_t v = 0; v < NV; ++v) acc[v] = V::set1(bias);
  const typename V::Mask m = V::mask(tail ? tail : L);
  for (size_t t = 0; t < KK; ++t) {
    const typename V::Reg w = V::set1(wt[t]);
    const float* src = xp + off[t] + q0;
    for (size_t v = 0; v + 1 < NV; ++v) acc[v] = V::fmadd(w, V::load(src + v * L), acc[v]);
    const float* last = src + (NV - 1) * L;
    acc[NV - 1] = V::fmadd(w, tail ? V::load(last, m) : V::load(last), acc[NV - 1]);
  }
  for (size_t v = 0; v + 1 < NV; ++v) V::store(yp + q0 + v * L, acc[v]);
  if (tail)
    V::store(yp + q0 + (NV - 1) * L, m, acc[NV - 1]);
  else
    V::store(yp + q0 + (NV - 1) * L, acc[NV - 1]);
}

// yp[q] = bias + sum over the taps in (kh, kw) order of w[tap] xp[q + kh Wp + kw], q in [0, n): blocks of kDwVecs
// vectors, then the rest (the scalar loop read and wrote all of yp once per tap).
void dw_taps(const float* xp, size_t Wp, size_t KH, size_t KW, const float* w, bool flip, float bias, float* yp,
             size_t n) {
  size_t off[kDwMaxTaps];
  float wt[kDwMaxTaps];
  const size_t KK = KH * KW;
  for (size_t kh = 0; kh < KH; ++kh)
    for (size_t kw = 0; kw < KW; ++kw) {
      off[kh * KW + kw] = kh * Wp + kw;
      wt[kh * KW + kw] = flip ? w[(KH - 1 - kh) * KW + (KW - 1 - kw)] : w[kh * KW + kw];
    }
  constexpr size_t L = micro::Vec::kLanes, kBlock = kDwVecs * L;
  size_t q0 = 0;
  for (; q0 + kBlock <= n; q0 += kBlock) dw_taps_block<kDwVecs>(xp, off, wt, KK, bias, yp, q0, 0);
  const size_t r = n - q0, tail = r % L;
  switch ((r + L - 1) / L) {
    case 0: return;
    case 1: return dw_taps_block<1>(xp, off, wt, KK, bias, yp, q0, tail);
    case 2: return dw_taps_block<2>(xp, off, wt, KK, bias, yp, q0, tail);
    case 3: return dw_taps_block<3>(xp, off, wt, KK, bias, yp, q0, tail);
    case 4: return dw_taps_block<4>(xp, off, wt, KK, bias, yp, q0, tail);
    case 5: return dw_taps_block<5>(xp, off, wt, KK, bias, yp, q0, tail);
    case 6: return dw_taps_block<6>(xp, off, wt, KK, bias, yp, q0, tail);
    case 7: return dw_taps_block<7>(xp, off, wt, KK, bias, yp, q0, tail);
    default: return dw_taps_block<8>(xp, off, wt, KK, bias, yp, q0, tail);  // r < kBlock: at most kDwVecs = 8
  }
}

// Taps [0, T) of one image of dw_channel_weight_s1 (xp + off[j] the tap's shifted plane, lanes + 8 j its 8 partial
// sums): lane l of tap j += xp[off[j] + q + l] dyp[q + l] for q = 0, 8, 16, ... in order, T taps side by side (one
// tap after the other, each was a chain of n / 8 dependent FMAs). The tail's masked lanes add 0 x 0 to sums that
// are never -0 (they start at +0): the same values.
template <size_t T>
void dw_weight_taps(const float* __restrict xp, const size_t* off, const float* __restrict dyp, size_t n,
                    float* __restrict lanes) {
  using V = micro::V8;
  V::Reg acc[T];
  for (size_t j = 0; j < T; ++j) acc[j] = V::load(lanes + j * 8);
  const size_t n8 = n / 8 * 8;
  for (size_t q = 0; q < n8; q += 8) {
    const V::Reg d = V::load(dyp + q);
    for (size_t j = 0; j < T; ++j) acc[j] = V::fmadd(V::load(xp + off[j] + q), d, acc[j]);
  }
  if (n8 < n) {
    const V::Mask m = V::mask(n - n8);
    const V::Reg d = V::load(dyp + n8, m);
    for (size_t j = 0; j < T; ++j) acc[j] = V::fmadd(V::load(xp + off[j] + n8, m), d, acc[j]);
  }
  for (size_t j = 0; j < T; ++j) V::store(lanes + j * 8, acc[j]);
}
#endif  // VERIDL_ISA_AVX2

// Stride 1 on a zero-padded copy of the plane: xp has Hp = OH + KH - 1 rows of Wp = OW + KW - 1 columns (plus
// KW - 1 cells of slack), the plane at (pt, pl). With the flattened output position q = i Wp + j, every tap
// is one contiguous multiply-add over q in [0, OH Wp): yp[q] += w[kh, kw] xp[q + kh Wp + kw]; the columns
// j >= OW are computed and dropped. Long vectorized loops however narrow the plane (MobileNet's 7x7 and 14x14
// planes would give loops of 7 and 14 by rows). flip: the taps read reversed, w[KH-1-kh, KW-1-kw] (the
// input gradient, a stride-1 correlation of dy with the flipped kernel). y[i, j] = bias + the taps in
// (kh, kw) order. xp, yp: the thread's scratch (S1Scratch), xp zero outside the plane's cells, which this
// overwrites.
void dw_plane_s1(size_t H, size_t W, size_t OH, size_t OW, size_t KH, size_t KW, size_t pt, size_t pl,
                 const float* __restrict x, const float* __restrict w, bool flip, float bias, float* __restrict y,
                 float* __restrict xp, float* __restrict yp) {
  const size_t Hp = OH + KH - 1, Wp = OW + KW - 1, n = OH * Wp;
  const size_t c1 = std::min(Wp, pl + W);  // xp columns [pl, c1) hold the plane's columns [0, c1 - pl)
  if (pl < c1 && pt < Hp) copy_rows(x, W, xp + pt * Wp + pl, Wp, std::min(Hp, pt + H) - pt, c1 - pl);
#if VERIDL_ISA_AVX2
  if (KH * KW <= kDwMaxTaps) {
    dw_taps(xp, Wp, KH, KW, w, flip, bias, yp, n);
    copy_rows(yp, Wp, y, OW, OH, OW);
    return;
  }
#endif
  std::fill(yp, yp + n, bias);
  for (size_t kh = 0; kh < KH; ++kh)
    for (size_t kw = 0; kw < KW; ++kw) {
      const float wv = flip ? w[(KH - 1 - kh) * KW + (KW - 1 - kw)] : w[kh * KW + kw];
      const float* __restrict src = xp + kh * Wp + kw;
      for (size_t q = 0; q < n; ++q) yp[q] += wv * src[q];
    }
  copy_rows(yp, Wp, y, OW, OH, OW);
}

// dx plane = the adjoint: dy[i, j] W[kh, kw] added to dx[i s + kh - pt, j s + kw - pl]. For a fixed dx
// element the additions run in (i, kh, kw) order.
template <size_t S>
void dw_plane_input(const Geometry& g, const float* __restrict w, const float* __restrict dy, float* __restrict dx) {
  const size_t s = S ? S : g.s;
  std::fill(dx, dx + g.H * g.W, 0.0f);
  for (size_t i = 0; i < g.OH; ++i) {
    const float* __restrict dyr = dy + i * g.OW;
    for (size_t kh = 0; kh < g.KH; ++kh) {
      const ptrdiff_t ih = g.in_row(i, kh);
      if (ih < 0) continue;
      float* __restrict dxr = dx + static_cast<size_t>(ih) * g.W;
      for (size_t kw = 0; kw < g.KW; ++kw) {
        size_t lo, hi;
        g.col_range(kw, lo, hi);
        const float wv = w[kh * g.KW + kw];
        for (size_t j = lo; j < hi; ++j) dxr[j * s + kw - g.pl] += wv * dyr[j];
      }
    }
  }
}

// dW[c, 0, kh, kw] for one channel: sum over the batch (in order), rows and columns of x dy, in 8 lane
// partial sums per kernel tap (vectorized without reassociation; lanes: KH KW x 8 floats of the thread's
// scratch) combined in a fixed order. The taps are the innermost loop over a row of dy, so that x and dy
// stream through the cache once per channel, not once per tap.
template <size_t S>
void dw_channel_weight(const Geometry& g, size_t B, size_t C, const float* x, const float* dy, float* dw,
                       float* lanes) {
  const size_t s = S ? S : g.s, KK = g.KH * g.KW;
  std::fill(lanes, lanes + KK * 8, 0.0f);
  for (size_t bi = 0; bi < B; ++bi) {
    const float* xp = x + bi * C * g.H * g.W;
    const float* dyp = dy + bi * C * g.P;
    for (size_t i = 0; i < g.OH; ++i) {
      const float* __restrict dyr = dyp + i * g.OW;
      for (size_t kh = 0; kh < g.KH; ++kh) {
        const ptrdiff_t ih = g.in_row(i, kh);
        if (ih < 0) continue;
        const float* __restrict xr = xp + static_cast<size_t>(ih) * g.W;  // column (j s + kw - pl), j >= lo
        for (size_t kw = 0; kw < g.KW; ++kw) {
          size_t lo, hi;
          g.col_range(kw, lo, hi);
          if (lo == hi) continue;  // no in-range column (and lo s + kw - pl could be negative)
          float* lane = lanes + (kh * g.KW + kw) * 8;
          const float* __restrict xs = xr + (lo * s + kw - g.pl);  // xs[t s] = column ((lo + t) s + kw - pl)
          const float* __restrict ds = dyr + lo;
          const size_t n = hi - lo;
          float acc[8];  // in registers for the row, then back to the tap's lanes
          for (size_t l = 0; l < 8; ++l) acc[l] = lane[l];
          size_t t = 0;
          for (; t + 8 <= n; t += 8)
            for (size_t l = 0; l < 8; ++l) acc[l] += xs[(t + l) * s] * ds[t + l];
          for (size_t l = 0; t + l < n; ++l) acc[l] += xs[(t + l) * s] * ds[t + l];
          for (size_t l = 0; l < 8; ++l) lane[l] = acc[l];
        }
      }
    }
  }
  for (size_t t = 0; t < KK; ++t) {
    const float* l = lanes + t * 8;
    dw[t] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
}

// Stride-1 planes narrower than this take the padded-plane loops (dw_plane_s1, dw_channel_weight_s1): their
// row loops would be mostly vector tails (MobileNetV2's 7, 14 and 28 wide planes; measured 3x faster at
// 7x7 and 14x14). Wider planes keep the row loops, which need no copies.
constexpr size_t kNarrowPlane = 32;

// Tiny planes, stride 1 (at most kTinyPlane outputs: ConvNeXt's 7x7 depthwise at 2x2 and 1x1 for a 32x32 input):
// the padded-plane loops would spend their time on taps that read only padding (48 of 49 at 1x1). Instead the
// in-range (output, tap, input) triples of the geometry are listed once per call, by output then tap, and each
// plane is a loop over them:
//   forward          y[out] = bias, then += w[tap] x[in]       (a y element's taps in (kh, kw) order)
//   input gradient   dx[in] = 0, then += w[tap] dy[out]       (a dx element's outputs in (i, j) order)
//   weight gradient  lanes[tap][lane] += x[in] dy[out], lane = (i (OW + KW - 1) + j) mod 8, the batch in order,
//                    the lanes combined in dw_channel_weight_s1's order
// which are the padded-plane loops' operations in their order, less the products with padding (zeros added).
constexpr size_t kTinyPlane = 4;

struct Tap {
  uint32_t out, tap, in, lane;
};

// The triples of g (stride 1) in the calling thread's reused table (grown, never shrunk: a train step allocates
// nothing); the team threads read them through the returned pointer.
const Tap* tiny_taps(const Geometry& g, size_t& count) {
  thread_local std::vector<Tap> taps;
  taps.clear();
  const size_t Wp = g.OW + g.KW - 1;
  for (size_t i = 0; i < g.OH; ++i)
    for (size_t j = 0; j < g.OW; ++j)
      for (size_t kh = 0; kh < g.KH; ++kh) {
        const ptrdiff_t ih = g.in_row(i, kh);
        if (ih < 0) continue;
        for (size_t kw = 0; kw < g.KW; ++kw) {
          const ptrdiff_t iw = static_cast<ptrdiff_t>(j + kw) - static_cast<ptrdiff_t>(g.pl);
          if (iw < 0 || iw >= static_cast<ptrdiff_t>(g.W)) continue;
          taps.push_back({static_cast<uint32_t>(i * g.OW + j), static_cast<uint32_t>(kh * g.KW + kw),
                          static_cast<uint32_t>(static_cast<size_t>(ih) * g.W + static_cast<size_t>(iw)),
                          static_cast<uint32_t>((i * Wp + j) % 8)});
        }
      }
  count = taps.size();
  return taps.data();
}

bool tiny(const ops::Conv2dShape& s, const Geometry& g) { return s.stride == 1 && g.P <= kTinyPlane; }

// Padded-plane scratch of dw_plane_s1 for a run of planes of one geometry: the copy of the input (slot 0), zeroed
// once (each plane overwrites only its own cells, the padding stays zero; per plane, the fill and a memcpy call per
// row cost more than the taps of ConvNeXt-T's 8x8 and 4x4 planes), and the flattened output (slot 1).
struct S1Scratch {
  float *xp = nullptr, *yp = nullptr;
  S1Scratch() = default;  // unused (another path)
  S1Scratch(size_t OH, size_t OW, size_t KH, size_t KW)
      : xp(scratch(0, (OH + KH - 1) * (OW + KW - 1) + KW - 1)), yp(scratch(1, OH * (OW + KW - 1))) {
    std::fill(xp, xp + (OH + KH - 1) * (OW + KW - 1) + KW - 1, 0.0f);
  }
};

void depthwise_forward(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y) {
  const Geometry g(s);
  const size_t KK = s.KH * s.KW, HW = s.H * s.W;
  if (tiny(s, g)) {
    size_t nt = 0;
    const Tap* taps = tiny_taps(g, nt);
    for_chunks(s.B * s.C, s.B * s.C * nt, [&](size_t lo, size_t hi) {
      for (size_t u = lo; u < hi; ++u) {
        const size_t c = u % s.C;
        const float* xu = x + u * HW;
        const float* w = W + c * KK;
        float* yu = y + u * g.P;
        std::fill(yu, yu + g.P, s.bias ? b[c] : 0.0f);
        for (size_t t = 0; t < nt; ++t) yu[taps[t].out] += w[taps[t].tap] * xu[taps[t].in];
      }
    });
    return;
  }
  const bool s1 = s.stride == 1 && g.OW < kNarrowPlane;
  for_chunks(s.B * s.C, s.B * s.C * g.P * KK, [&](size_t lo, size_t hi) {
    const S1Scratch t = s1 ? S1Scratch(g.OH, g.OW, s.KH, s.KW) : S1Scratch();
    for (size_t u = lo; u < hi; ++u) {
      const size_t c = u % s.C;
      const float bias = s.bias ? b[c] : 0.0f;
      if (s1) {
        dw_plane_s1(s.H, s.W, g.OH, g.OW, s.KH, s.KW, g.pt, g.pl, x + u * HW, W + c * KK, false, bias, y + u * g.P,
                    t.xp, t.yp);
      } else if (s.stride == 1) {
        dw_plane_forward<1>(g, x + u * HW, W + c * KK, bias, y + u * g.P);
      } else if (s.stride == 2) {
        dw_plane_forward<2>(g, x + u * HW, W + c * KK, bias, y + u * g.P);
      } else {
        dw_plane_forward<0>(g, x + u * HW, W + c * KK, bias, y + u * g.P);
      }
    }
  });
}

void depthwise_backward_input(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx) {
  const Geometry g(s);
  const size_t KK = s.KH * s.KW, HW = s.H * s.W;
  if (tiny(s, g)) {
    size_t nt = 0;
    const Tap* taps = tiny_taps(g, nt);
    for_chunks(s.B * s.C, s.B * s.C * nt, [&](size_t lo, size_t hi) {
      for (size_t u = lo; u < hi; ++u) {
        const float* w = W + (u % s.C) * KK;
        const float* dyu = dy + u * g.P;
        float* dxu = dx + u * HW;
        std::fill(dxu, dxu + HW, 0.0f);
        for (size_t t = 0; t < nt; ++t) dxu[taps[t].in] += w[taps[t].tap] * dyu[taps[t].out];
      }
    });
    return;
  }
  // Stride 1 with pads below the kernel ("same", "valid"): dx is the correlation of dy, padded by
  // (KH - 1 - pt, KW - 1 - pl), with the flipped kernel. Otherwise the scatter.
  const bool s1 = s.stride == 1 && s.W < kNarrowPlane && g.pt < s.KH && g.pl < s.KW;
  for_chunks(s.B * s.C, s.B * s.C * g.P * KK, [&](size_t lo, size_t hi) {
    const S1Scratch t = s1 ? S1Scratch(s.H, s.W, s.KH, s.KW) : S1Scratch();
    for (size_t u = lo; u < hi; ++u) {
      const size_t c = u % s.C;
      if (s1) {
        dw_plane_s1(g.OH, g.OW, s.H, s.W, s.KH, s.KW, s.KH - 1 - g.pt, s.KW - 1 - g.pl, dy + u * g.P, W + c * KK, true,
                    0.0f, dx + u * HW, t.xp, t.yp);
      } else if (s.stride == 1) {
        dw_plane_input<1>(g, W + c * KK, dy + u * g.P, dx + u * HW);
      } else if (s.stride == 2) {
        dw_plane_input<2>(g, W + c * KK, dy + u * g.P, dx + u * HW);
      } else {
        dw_plane_input<0>(g, W + c * KK, dy + u * g.P, dx + u * HW);
      }
    }
  });
}

// One thread per channel (the batch sum stays inside it): deterministic for any thread count.
// Stride 1, on the padded planes of dw_plane_s1: x copied into xp (Hp x Wp, the plane at (pt, pl)) and dy
// into dyp [OH, Wp] with zeros in the columns j >= OW; then every tap is one long dot product,
// dW[kh, kw] += sum_q dyp[q] xp[q + kh Wp + kw] over q in [0, OH Wp), in 8 lane partial sums per tap (the
// batch in order, then q), combined in a fixed order. xp: slot 0; lanes and dyp: slot 1.
void dw_channel_weight_s1(const Geometry& g, size_t B, size_t C, const float* x, const float* dy, float* dw) {
  const size_t KK = g.KH * g.KW, Hp = g.OH + g.KH - 1, Wp = g.OW + g.KW - 1, n = g.OH * Wp;
  float* __restrict xp = scratch(0, Hp * Wp + g.KW - 1);
  float* __restrict lanes = scratch(1, KK * 8 + n);
  float* __restrict dyp = lanes + KK * 8;
  std::fill(lanes, lanes + KK * 8 + n, 0.0f);
  const size_t c1 = std::min(Wp, g.pl + g.W);
  std::fill(xp, xp + Hp * Wp + g.KW - 1, 0.0f);  // once: each image overwrites only the plane's cells
#if VERIDL_ISA_AVX2
  size_t off[kDwMaxTaps];  // each tap's shift into xp (the same for every image)
  if (KK <= kDwMaxTaps)
    for (size_t kh = 0; kh < g.KH; ++kh)
      for (size_t kw = 0; kw < g.KW; ++kw) off[kh * g.KW + kw] = kh * Wp + kw;
#endif
  for (size_t bi = 0; bi < B; ++bi) {
    const float* xb = x + bi * C * g.H * g.W;
    const float* dyb = dy + bi * C * g.P;
    if (g.pl < c1 && g.pt < Hp) copy_rows(xb, g.W, xp + g.pt * Wp + g.pl, Wp, std::min(Hp, g.pt + g.H) - g.pt, c1 - g.pl);
    copy_rows(dyb, g.OW, dyp, Wp, g.OH, g.OW);  // the tails j >= OW stay 0
#if VERIDL_ISA_AVX2
    if (KK <= kDwMaxTaps) {
      size_t t = 0;
      for (; t + 8 <= KK; t += 8) dw_weight_taps<8>(xp, off + t, dyp, n, lanes + t * 8);
      switch (KK - t) {
        case 0: break;
        case 1: dw_weight_taps<1>(xp, off + t, dyp, n, lanes + t * 8); break;
        case 2: dw_weight_taps<2>(xp, off + t, dyp, n, lanes + t * 8); break;
        case 3: dw_weight_taps<3>(xp, off + t, dyp, n, lanes + t * 8); break;
        case 4: dw_weight_taps<4>(xp, off + t, dyp, n, lanes + t * 8); break;
        case 5: dw_weight_taps<5>(xp, off + t, dyp, n, lanes + t * 8); break;
        case 6: dw_weight_taps<6>(xp, off + t, dyp, n, lanes + t * 8); break;
        default: dw_weight_taps<7>(xp, off + t, dyp, n, lanes + t * 8); break;
      }
      continue;
    }
#endif
    for (size_t kh = 0; kh < g.KH; ++kh)
      for (size_t kw = 0; kw < g.KW; ++kw) {
        const float* __restrict src = xp + kh * Wp + kw;
        float* lane = lanes + (kh * g.KW + kw) * 8;
        float acc[8];
        for (size_t l = 0; l < 8; ++l) acc[l] = lane[l];
        size_t q = 0;
        for (; q + 8 <= n; q += 8)
          for (size_t l = 0; l < 8; ++l) acc[l] += src[q + l] * dyp[q + l];
        for (size_t l = 0; q + l < n; ++l) acc[l] += src[q + l] * dyp[q + l];
        for (size_t l = 0; l < 8; ++l) lane[l] = acc[l];
      }
  }
  for (size_t t = 0; t < KK; ++t) {
    const float* l = lanes + t * 8;
    dw[t] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }
}

void depthwise_backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW) {
  const Geometry g(s);
  const size_t KK = s.KH * s.KW, HW = s.H * s.W;
  if (tiny(s, g)) {
    size_t nt = 0;
    const Tap* taps = tiny_taps(g, nt);
    for_chunks(s.C, s.B * s.C * nt, [&](size_t lo, size_t hi) {
      float* lanes = scratch(1, KK * 8);
      for (size_t c = lo; c < hi; ++c) {
        std::fill(lanes, lanes + KK * 8, 0.0f);
        for (size_t bi = 0; bi < s.B; ++bi) {
          const float* xb = x + (bi * s.C + c) * HW;
          const float* dyb = dy + (bi * s.C + c) * g.P;
          for (size_t t = 0; t < nt; ++t) lanes[taps[t].tap * 8 + taps[t].lane] += xb[taps[t].in] * dyb[taps[t].out];
        }
        for (size_t t = 0; t < KK; ++t) {
          const float* l = lanes + t * 8;
          dW[c * KK + t] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        }
      }
    });
    return;
  }
  for_chunks(s.C, s.B * s.C * g.P * KK, [&](size_t lo, size_t hi) {
    for (size_t c = lo; c < hi; ++c) {
      if (s.stride == 1 && g.OW < kNarrowPlane) {
        dw_channel_weight_s1(g, s.B, s.C, x + c * HW, dy + c * g.P, dW + c * KK);
        continue;
      }
      float* lanes = scratch(1, KK * 8);
      if (s.stride == 1) dw_channel_weight<1>(g, s.B, s.C, x + c * HW, dy + c * g.P, dW + c * KK, lanes);
      else if (s.stride == 2) dw_channel_weight<2>(g, s.B, s.C, x + c * HW, dy + c * g.P, dW + c * KK, lanes);
      else dw_channel_weight<0>(g, s.B, s.C, x + c * HW, dy + c * g.P, dW + c * KK, lanes);
    }
  });
}

// ---- grouped (G > 1, not depthwise): the GEMM path on each group's channel slice ----------------------
//
// Per image, group gi's input channels [gi CG, (gi + 1) CG), its output channels [gi OG, (gi + 1) OG) and
// its weights W[gi OG .. (gi + 1) OG) are contiguous: each group is a plain convolution of CG to OG channels
// (the Geometry of the group's shape), run with the im2col + GEMM code above.

ops::Conv2dShape group_shape(const ops::Conv2dShape& s) {
  ops::Conv2dShape g = s;
  g.C = s.CG();
  g.O = s.OG();
  g.G = 1;
  return g;
}

void grouped_forward(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y) {
  const ops::Conv2dShape gs = group_shape(s);
  const Geometry g(gs);  // K = CG KH KW
  const bool pw = g.pointwise(gs);
  const size_t CG = gs.C, OG = gs.O, HW = s.H * s.W;
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc;
  for_chunks(s.B * s.G * nch, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t u = lo; u < hi; ++u) {
      const size_t bi = u / (s.G * nch), gi = u / nch % s.G, p0 = (u % nch) * pc, p1 = std::min(g.P, p0 + pc);
      const size_t np = p1 - p0;
      const float* xg = x + (bi * s.C + gi * CG) * HW;
      const float* col = xg + p0;
      size_t ldb = g.P;
      if (!pw) {
        float* buf = scratch(0, g.K * np);
        im2col(g, xg, p0, p1, buf);
        col = buf;
        ldb = np;
      }
      gemm(Gemm{OG, np, g.K, W + gi * OG * g.K, g.K, 1, col, ldb, y + (bi * s.O + gi * OG) * g.P + p0, g.P,
                s.bias ? b + gi * OG : nullptr, Init::Row});
    }
  });
}

void grouped_backward_input(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx) {
  const ops::Conv2dShape gs = group_shape(s);
  const Geometry g(gs);
  const bool pw = g.pointwise(gs);
  const size_t CG = gs.C, OG = gs.O, HW = s.H * s.W;
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc;
  // Items: (image, group); each owns dx[image, group's channels].
  for_chunks(s.B * s.G, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t u = lo; u < hi; ++u) {
      const size_t bi = u / s.G, gi = u % s.G;
      const float* Wg = W + gi * OG * g.K;  // [OG, K]: A(m, k) = Wg[k K + m] is its transpose
      const float* dyg = dy + (bi * s.O + gi * OG) * g.P;
      float* dxg = dx + (bi * s.C + gi * CG) * HW;
      if (!pw) std::fill(dxg, dxg + CG * HW, 0.0f);
      for (size_t ch = 0; ch < nch; ++ch) {
        const size_t p0 = ch * pc, p1 = std::min(g.P, p0 + pc), np = p1 - p0;
        if (pw) {
          gemm(Gemm{CG, np, OG, Wg, 1, g.K, dyg + p0, g.P, dxg + p0, g.P, nullptr, Init::Zero});
          continue;
        }
        float* dcol = scratch(0, g.K * np);
        gemm(Gemm{g.K, np, OG, Wg, 1, g.K, dyg + p0, g.P, dcol, np, nullptr, Init::Zero});
        col2im_add(g, dcol, 0, CG, p0, p1, dxg);
      }
    }
  });
}

void grouped_backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW) {
  const ops::Conv2dShape gs = group_shape(s);
  const Geometry g(gs);
  const bool pw = g.pointwise(gs);
  const size_t CG = gs.C, OG = gs.O, HW = s.H * s.W;
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc, units = s.B * nch;
  const size_t KO = g.K * OG;  // one group's dW^T [K, OG]
  // Per group, its units split into a number of chunks fixed by the shape (as the plain dW above).
  const size_t nparts =
      std::max<size_t>(1, std::min({units, size_t(8), (size_t(16) << 20) / std::max<size_t>(KO * s.G, 1)}));
  float* parts = scratch(2, s.G * nparts * KO);  // partial dW^T of (group, chunk)
  for_chunks(s.G * nparts, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t it = lo; it < hi; ++it) {
      const size_t gi = it / nparts, t = it % nparts;
      float* part = parts + it * KO;
      std::fill(part, part + KO, 0.0f);
      for (size_t u = units * t / nparts; u < units * (t + 1) / nparts; ++u) {
        const size_t bi = u / nch, p0 = (u % nch) * pc, p1 = std::min(g.P, p0 + pc), np = p1 - p0;
        const float* xg = x + (bi * s.C + gi * CG) * HW;
        const float* col = xg + p0;
        size_t sam = g.P;
        if (!pw) {
          float* buf = scratch(0, g.K * np);
          im2col(g, xg, p0, p1, buf);
          col = buf;
          sam = np;
        }
        float* dyT = scratch(1, np * OG);  // dy^T [np, OG]
        const float* dyg = dy + (bi * s.O + gi * OG) * g.P + p0;
        transpose_positions(dyg, g.P, np, 0, OG, dyT, OG);
        gemm(Gemm{g.K, OG, np, col, sam, 1, dyT, OG, part, OG, nullptr, Init::C});
      }
    }
  });
  // dW[o, k] = sum_t part_(group, t)[k, o - group's first], the partials added in chunk order.
  for_chunks(s.O, s.O * g.K * nparts * 4, [&](size_t lo, size_t hi) {
    for (size_t o = lo; o < hi; ++o) {
      const size_t gi = o / OG, ol = o % OG;
      const float* pg = parts + gi * nparts * KO;
      for (size_t k = 0; k < g.K; ++k) {
        float acc = pg[k * OG + ol];
        for (size_t t = 1; t < nparts; ++t) acc += pg[t * KO + k * OG + ol];
        dW[o * g.K + k] = acc;
      }
    }
  });
}

}  // namespace

// dW[i] = sum_t parts[t stride + i] for i in [i0, i1), the partials added in order.
void sum_parts(const float* parts, size_t nparts, size_t stride, size_t i0, size_t i1, float* dW) {
  for (size_t i = i0; i < i1; ++i) {
    float acc = parts[i];
    for (size_t t = 1; t < nparts; ++t) acc += parts[t * stride + i];
    dW[i] = acc;
  }
}

// dW[o K + k] = sum_t parts[t stride + k O + o] (the partial dW^T [K, O] added in t order) for o in [o0, o1):
// in blocks of 16 k, so that the reads run along rows of the partials and the writes along rows of dW (one k
// after the other, the reads would stride across the partials a row per float).
void sum_parts_transposed(const float* parts, size_t nparts, size_t stride, size_t K, size_t O, size_t o0, size_t o1,
                          float* dW) {
  constexpr size_t kB = 16;
  for (size_t k0 = 0; k0 < K; k0 += kB) {
    const size_t k1 = std::min(K, k0 + kB);
    for (size_t o = o0; o < o1; ++o)
      for (size_t k = k0; k < k1; ++k) {
        float acc = parts[k * O + o];
        for (size_t t = 1; t < nparts; ++t) acc += parts[t * stride + k * O + o];
        dW[o * K + k] = acc;
      }
  }
}

// Late layers (few positions per image, a large weight: ResNet's 3x3 512 -> 512 at 7x7 is 9.4 MB of weight for
// 49 positions): one product per image would stream the whole weight from memory once per image. Instead the
// images of a group sit side by side in the product's columns (col [K, n images x P]), so that each depth block
// of the weight is reused from L2 across all of them. Also for any weight when a plane has at most 64 positions
// (MobileNetV2's and EfficientNet's 1x1 convolutions at 7x7 and 4x4): a product of 49 or 16 columns leaves most
// of its last column panel empty and repacks its weight blocks for few columns. Groups: at most 512 columns and
// an 8 MB col, and at least as many groups as threads. Each output element (and dcol element) is still one chain
// over k in the same depth blocks (they depend on K alone): the grouping changes no value of the forward, nor of
// the input gradient where the ungrouped path takes an image's plane in one position chunk. Where that path splits
// the plane (Geometry::chunk keeps [K, chunk] within 64 Ki floats: K = 2304 gives chunks of 16), its col2im adds
// chunk after chunk and the group's adds the whole plane in (kh, kw, p) order: another rounding of dx
// (bit-identical for every thread count either way).
constexpr size_t kSmallPlane = 64;  // planes of at most this many positions are small (see ImageGroups)

struct ImageGroups {
  size_t per = 1, count = 0;
  ImageGroups(const ops::Conv2dShape& s, const Geometry& g) {
    const size_t fit = std::min<size_t>(512 / g.P, (size_t(1) << 21) / std::max<size_t>(g.K * g.P, 1));
    const size_t threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
    per = std::max<size_t>(1, std::min(fit, (s.B + threads - 1) / threads));
    count = (s.B + per - 1) / per;
  }
  static bool wanted(const ops::Conv2dShape& s, const Geometry& g) {
    return s.B > 1 && g.P < 256 && (s.O * g.K >= (size_t(1) << 18) || g.P <= kSmallPlane);
  }
};
constexpr size_t kRowBlock = 48;  // rows of a product per unit of a row split among threads (a multiple of 6 and 12)

void conv2d_forward(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y) {
  s.validate();
  if (s.depthwise()) return depthwise_forward(s, x, W, b, y);
  if (s.G > 1) return grouped_forward(s, x, W, b, y);
#if VERIDL_ISA_AVX2
  if (wino::applies(s)) return wino::forward(s, x, W, b, y);
#endif
  const Geometry g(s);
  const bool pw = g.pointwise(s);
  if (ImageGroups::wanted(s, g)) {
    // The product's columns are the group's images side by side, read from x (pointwise) or from their im2col, and
    // written to y in place: segmented columns (micro::ColSeg), one segment per image.
    const ImageGroups ig(s, g);
    for_chunks(ig.count, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
      for (size_t gi = lo; gi < hi; ++gi) {
        const size_t b0 = gi * ig.per, b1 = std::min(s.B, b0 + ig.per), n = (b1 - b0) * g.P;
        const float* col = x + b0 * g.C * g.H * g.W;
        size_t ldb = g.P;
        micro::ColSeg cs{g.P, g.C * g.P, s.O * g.P};
        if (!pw) {  // col [K, n], plain
          float* buf = scratch(0, g.K * n);
          for (size_t bi = b0; bi < b1; ++bi) im2col(g, x + bi * g.C * g.H * g.W, 0, g.P, buf + (bi - b0) * g.P, n);
          col = buf;
          ldb = n;
          cs.bstride = g.P;
        }
        gemm(Gemm{s.O, n, g.K, W, g.K, 1, col, ldb, y + b0 * s.O * g.P, g.P, s.bias ? b : nullptr, Init::Row, false, cs});
      }
    });
    return;
  }
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc;
  for_chunks(s.B * nch, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t u = lo; u < hi; ++u) {
      const size_t bi = u / nch, p0 = (u % nch) * pc, p1 = std::min(g.P, p0 + pc), np = p1 - p0;
      const float* xb = x + bi * g.C * g.H * g.W;
      const float* col = xb + p0;
      size_t ldb = g.P;
      if (!pw) {
        float* buf = scratch(0, g.K * np);
        im2col(g, xb, p0, p1, buf);
        col = buf;
        ldb = np;
      }
      gemm(Gemm{s.O, np, g.K, W, g.K, 1, col, ldb, y + bi * s.O * g.P + p0, g.P, s.bias ? b : nullptr, Init::Row});
    }
  });
}

void conv2d_backward_input(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx) {
  s.validate();
  if (s.depthwise()) return depthwise_backward_input(s, W, dy, dx);
  if (s.G > 1) return grouped_backward_input(s, W, dy, dx);
#if VERIDL_ISA_AVX2
  if (wino::applies(s)) return wino::backward_input(s, W, dy, dx);
#endif
  const Geometry g(s);
  const size_t KK = s.KH * s.KW;
  // dx of image bi from column block bi - b0 of dcol [K, n].
  auto scatter = [&](size_t bi, size_t b0, const float* dcol, size_t n) {
    float* dxb = dx + bi * s.C * s.H * s.W;
    std::fill(dxb, dxb + s.C * s.H * s.W, 0.0f);
    col2im_add(g, dcol + (bi - b0) * g.P, 0, s.C, 0, g.P, dxb, n);
  };
  if (ImageGroups::wanted(s, g)) {  // dcol = W^T dy for a group of images side by side (see ImageGroups)
    // dy read in place and (pointwise) dx written in place: segmented columns, one segment per image.
    const ImageGroups ig(s, g);
    for_chunks(ig.count, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
      for (size_t gi = lo; gi < hi; ++gi) {
        const size_t b0 = gi * ig.per, b1 = std::min(s.B, b0 + ig.per), n = (b1 - b0) * g.P;
        const float* dyg = dy + b0 * s.O * g.P;
        if (g.pointwise(s)) {
          gemm(Gemm{g.K, n, s.O, W, 1, g.K, dyg, g.P, dx + b0 * s.C * g.P, g.P, nullptr, Init::Zero, false,
                    micro::ColSeg{g.P, s.O * g.P, s.C * g.P}});
          continue;
        }
        float* dcol = scratch(0, g.K * n);  // [K, n], plain
        gemm(Gemm{g.K, n, s.O, W, 1, g.K, dyg, g.P, dcol, n, nullptr, Init::Zero, false,
                  micro::ColSeg{g.P, s.O * g.P, g.P}});
        for (size_t bi = b0; bi < b1; ++bi) scatter(bi, b0, dcol, n);
      }
    });
    return;
  }
  if (g.pointwise(s)) {  // dx = W^T dy per image, split over (image, position chunk)
    const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc;
    for_chunks(s.B * nch, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
      for (size_t u = lo; u < hi; ++u) {
        const size_t bi = u / nch, p0 = (u % nch) * pc, np = std::min(g.P, p0 + pc) - p0;
        gemm(Gemm{s.C, np, s.O, W, 1, g.K, dy + bi * s.O * g.P + p0, g.P, dx + bi * s.C * g.P + p0, g.P, nullptr,
                  Init::Zero});
      }
    });
    return;
  }
  // Items: (image, channel group); each owns dx[image, group] and computes its dcol rows itself. The
  // grouping changes no value (a dcol element is one FMA chain over o; col2im adds in (kh, kw, p)
  // order), so it may depend on the shape freely.
  const size_t groups = s.B >= 4 ? 1 : std::min<size_t>(s.C, 4);
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc;
  for_chunks(s.B * groups, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t u = lo; u < hi; ++u) {
      const size_t bi = u / groups, gi = u % groups;
      const size_t c0 = s.C * gi / groups, c1 = s.C * (gi + 1) / groups;
      float* dxb = dx + bi * s.C * s.H * s.W;
      std::fill(dxb + c0 * s.H * s.W, dxb + c1 * s.H * s.W, 0.0f);
      for (size_t ch = 0; ch < nch; ++ch) {
        const size_t p0 = ch * pc, p1 = std::min(g.P, p0 + pc), np = p1 - p0;
        float* dcol = scratch(0, (c1 - c0) * KK * np);
        gemm(Gemm{(c1 - c0) * KK, np, s.O, W + c0 * KK, 1, g.K, dy + bi * s.O * g.P + p0, g.P, dcol, np, nullptr,
                  Init::Zero});
        col2im_add(g, dcol, c0, c1, p0, p1, dxb);
      }
    }
  });
}

// Rows [r0, r1) of the P-position planes of images [b0, b1) (an image's rows: `rows` planes P apart from src + bi rows
// P), side by side: out[(r - r0) ld + (bi - b0) P + q].
void gather_planes(const float* src, size_t rows, size_t P, size_t r0, size_t r1, size_t b0, size_t b1, float* out,
                   size_t ld) {
  for (size_t bi = b0; bi < b1; ++bi) copy_rows(src + (bi * rows + r0) * P, P, out + (bi - b0) * P, ld, r1 - r0, P);
}

// The same planes transposed: out[((bi - b0) P + q) ld + (r - r0)]. Planes of a multiple of 8 positions are
// transposed from src in 8 x 8 blocks; smaller ones (2x2: 4 positions) are first gathered side by side into tmp
// ((r1 - r0) (b1 - b0) P floats), whose rows then transpose in full blocks.
void gather_planes_transposed(const float* src, size_t rows, size_t P, size_t r0, size_t r1, size_t b0, size_t b1,
                              float* tmp, float* out, size_t ld) {
  if (P % 8 == 0) {
    for (size_t bi = b0; bi < b1; ++bi)
      transpose_positions(src + bi * rows * P, P, P, r0, r1, out + (bi - b0) * P * ld, ld);
    return;
  }
  const size_t D = (b1 - b0) * P;
  gather_planes(src, rows, P, r0, r1, b0, b1, tmp, D);
  transpose_positions(tmp, D, D, 0, r1 - r0, out, ld);
}

// The weight gradient of a pointwise convolution of small planes (at most kSmallPlane positions: ConvNeXt-T's 8x8 to
// 2x2 for a 32x32 input, MobileNetV2's and EfficientNet's 7x7 and 4x4), dW [O, K] = sum over images and positions of
// dy[o, p] x[k, p]. The images sit side by side in groups of up to 512 positions (a product of depth P per image
// would read and write its C block once per image), and each group is one product whose rows are the larger of x's
// and dy's channel counts, copied side by side, and whose columns the smaller, transposed: every thread needs every
// column, so the transposed operand is the one each thread copies whole. The rows are split among the threads in
// blocks of kRowBlock.
//   O > K (the expansions, 96 -> 384): C = dW [O, K] itself, A = dy's rows, B = x^T;
//   else (384 -> 96):                  C = dW^T [K, O] (slot 2), A = x's rows, B = dy^T, then transposed into dW.
// Each element either way is one FMA chain from zero over the images in order and their positions in order (the
// products commute exactly): the bits of the per-unit path, for any thread count and either orientation.
void pointwise_small_backward_weight(const ops::Conv2dShape& s, const Geometry& g, const float* x, const float* dy,
                                     float* dW) {
  const size_t P = g.P, K = g.K, O = s.O;
  const bool by_o = O > K;
  const size_t M = by_o ? O : K, N = by_o ? K : O;
  const float* a_src = by_o ? dy : x;
  const float* b_src = by_o ? x : dy;
  float* C = by_o ? dW : scratch(2, K * O);
  const size_t max_d = std::min<size_t>(512, (size_t(1) << 20) / std::max<size_t>(M, 1));
  const size_t per = std::max<size_t>(1, max_d / P);
  for_chunks((M + kRowBlock - 1) / kRowBlock, s.B * O * K * P, [&](size_t lo, size_t hi) {
    const size_t m0 = lo * kRowBlock, m1 = std::min(M, hi * kRowBlock), nm = m1 - m0;
    if (m0 >= m1) return;
    std::fill(C + m0 * N, C + m1 * N, 0.0f);
    for (size_t b0 = 0; b0 < s.B; b0 += per) {
      const size_t b1 = std::min(s.B, b0 + per), D = (b1 - b0) * P;
      float* acol = scratch(0, nm * D);
      float* bT = scratch(1, D * N);
      gather_planes(a_src, M, P, m0, m1, b0, b1, acol, D);
      gather_planes_transposed(b_src, N, P, 0, N, b0, b1, P % 8 == 0 ? nullptr : scratch(4, N * D), bT, N);
      gemm(Gemm{nm, N, D, acol, D, 1, bT, N, C + m0 * N, N, nullptr, Init::C});
    }
  });
  if (!by_o) for_chunks(O, K * O * 4, [&](size_t lo, size_t hi) { sum_parts_transposed(C, 1, 0, K, O, lo, hi, dW); });
}

void conv2d_backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW) {
  s.validate();
  if (s.depthwise()) return depthwise_backward_weight(s, x, dy, dW);
  if (s.G > 1) return grouped_backward_weight(s, x, dy, dW);
#if VERIDL_ISA_AVX2
  if (wino::applies(s)) return wino::backward_weight(s, x, dy, dW);
#endif
  const Geometry g(s);
  const bool pw = g.pointwise(s);
  // A pointwise convolution of 1x1 planes (ConvNeXt-T's last stage at a 32x32 input) is a dense layer over the
  // batch: dW [O, K] = dy^T x, which the dense kernel writes in place (x and dy swap roles: no partials, no
  // transposed sum). Each element is one FMA chain over the images in order, from zero: the bits of the large-
  // weight path below; where the partials' path would take a small weight (a chain per chunk of images, the
  // chunks' sums added), another rounding, the same for any thread count.
  if (pw && g.P == 1) return dense_backward_weight(ops::DenseShape{s.B, s.O, g.K}, dy, x, dW);
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc, units = s.B * nch;
  const size_t KO = g.K * s.O;
  // Chunks of units: a count fixed by the shape (at most 8, and at most ~64 MiB of partials).
  const size_t nparts = std::max<size_t>(1, std::min({units, size_t(8), (size_t(16) << 20) / std::max<size_t>(KO, 1)}));
  // A large weight (the late layers: 3x3 512 -> 512 is 2.4 M floats) seen by few positions: the partials would
  // be far more memory traffic than the product itself. Then one partial, dW^T [K, O] itself, its columns split
  // among the threads, each summing every unit in order (each element: one chain over all units, the value
  // nparts = 1 gives). A pointwise convolution of small planes, whatever its weight (MobileNetV2's and
  // EfficientNet's 1x1s at 7x7: 960 -> 160 is 0.15 M floats), takes the same chains with its images side by side
  // (pointwise_small_backward_weight): a partial per image would be a product of depth 49 that reads and writes its
  // whole partial (`bench_kernels --gemm --only 960->160`: 57-114 -> 114-140 GFLOP/s on 2 threads, AMD EPYC Zen 4,
  // alternated runs). The choice depends only on the shape.
  const bool small_pw = pw && g.P <= kSmallPlane;
  if (nparts > 1 && small_pw && s.O >= 64) return pointwise_small_backward_weight(s, g, x, dy, dW);
  // A pointwise convolution's unit product with x transposed (x^T [np, K]: the positions the product's depth):
  // dst[o - o0, k] += sum over positions p0 .. p0 + np - 1 of image bi of dy[o, p] x[k, p], for o in [o0, o1).
  auto x_rows_unit = [&](size_t bi, size_t p0, size_t np, size_t o0, size_t o1, float* dst) {
    float* xT = scratch(1, np * g.K);
    transpose_positions(x + bi * g.C * g.H * g.W + p0, g.P, np, 0, g.K, xT, g.K);
    gemm(Gemm{o1 - o0, g.K, np, dy + (bi * s.O + o0) * g.P + p0, g.P, 1, xT, g.K, dst, g.K, nullptr, Init::C});
  };
  if (nparts > 1 && KO * nparts > (size_t(1) << 21) && s.O >= 64) {
    constexpr size_t kOBlock = 32;
    const size_t ob = (s.O + kOBlock - 1) / kOBlock;
    if (pw && g.K * static_cast<size_t>(omp_get_max_threads()) < s.O) {
      // A pointwise convolution whose x is smaller than each thread's share of dy (ConvNeXt-T's 384 -> 1536 at
      // 14x14): each thread transposes x per unit (x^T [positions, K]) and accumulates its rows of dW [O, K] in
      // place, unit after unit from zero: the chains below, without the partial's transposing copy (same bits).
      for_chunks(ob, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
        const size_t o0 = lo * kOBlock, o1 = std::min(s.O, hi * kOBlock);
        if (o0 >= o1) return;
        std::fill(dW + o0 * g.K, dW + o1 * g.K, 0.0f);
        for (size_t u = 0; u < units; ++u) {
          const size_t bi = u / nch, p0 = (u % nch) * pc;
          x_rows_unit(bi, p0, std::min(g.P, p0 + pc) - p0, o0, o1, dW + o0 * g.K);
        }
      });
      return;
    }
    float* part = scratch(2, KO);
    // Consecutive units side by side in one col [K, D] (D their positions, at most 512 and K D <= 1 M floats), so
    // that one product runs over all of them: C is read and written once per depth block, not once per unit. The
    // chain of each element is the same either way (partial sums go through C exactly).
    const size_t max_d = std::max<size_t>(pc, std::min<size_t>(512, (size_t(1) << 20) / std::max<size_t>(g.K, 1)));
    // Columns [o0, o1) of the partial dW^T, every unit in order.
    auto run = [&](size_t o0, size_t o1) {
      const size_t no = o1 - o0;
      for (size_t k = 0; k < g.K; ++k) std::fill(part + k * s.O + o0, part + k * s.O + o1, 0.0f);
      auto positions = [&](size_t u) { return std::min(g.P, (u % nch) * pc + pc) - (u % nch) * pc; };
      size_t u0 = 0;
      while (u0 < units) {
        size_t u1 = u0, D = 0;
        while (u1 < units && (u1 == u0 || D + positions(u1) <= max_d)) D += positions(u1++);
        // A pointwise convolution reads x in place, one unit at a time (its rows are g.P apart).
        const bool in_place = pw;
        float* col = in_place ? nullptr : scratch(0, g.K * D);
        float* dyT = scratch(1, D * no);  // dy^T [D, o1 - o0]
        size_t q0 = 0;
        for (size_t u = u0; u < u1; ++u) {
          const size_t bi = u / nch, p0 = (u % nch) * pc, np = positions(u);
          if (!in_place)
            im2col(g, x + bi * g.C * g.H * g.W, p0, p0 + np, col + q0, D);
          const float* dyb = dy + bi * s.O * g.P + p0;
          transpose_positions(dyb, g.P, np, o0, o1, dyT + q0 * no, no);
          q0 += np;
        }
        if (in_place) {
          size_t q = 0;
          for (size_t u = u0; u < u1; ++u) {
            const size_t bi = u / nch, p0 = (u % nch) * pc, np = positions(u);
            gemm(Gemm{g.K, no, np, x + bi * g.C * g.H * g.W + p0, g.P, 1, dyT + q * no, no, part + o0, s.O, nullptr, Init::C});
            q += np;
          }
        } else {
          gemm(Gemm{g.K, no, D, col, D, 1, dyT, no, part + o0, s.O, nullptr, Init::C});
        }
        u0 = u1;
      }
    };
    // The columns split among the threads (each thread needs every row of col: im2col writes whole columns); each
    // element of dW^T is the same chain over the units in order.
    for_chunks(ob, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
      const size_t o0 = lo * kOBlock, o1 = std::min(s.O, hi * kOBlock);
      if (o0 < o1) run(o0, o1);
    });
    for_chunks(s.O, KO * 4, [&](size_t lo, size_t hi) { sum_parts_transposed(part, 1, 0, g.K, s.O, lo, hi, dW); });
    return;
  }
  // One operand of the product is transposed per unit (the positions become its rows): dy, giving partials dW^T
  // [K, O], or, for a pointwise convolution with fewer input than output channels, x, the smaller, giving partials
  // dW [O, K] (ConvNeXt-T's first 1x1 of a block, 96 -> 384 at 56x56: a quarter of the copy). Either way each
  // element is the same FMA chain of the same products over the unit's positions in order: the same bits.
  const bool x_rows = pw && g.K < s.O;
  float* parts = scratch(2, nparts * KO);  // partial dW^T [K, O] (dW [O, K] when x_rows) per chunk
  for_chunks(nparts, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t t = lo; t < hi; ++t) {
      float* part = parts + t * KO;
      std::fill(part, part + KO, 0.0f);
      for (size_t u = units * t / nparts; u < units * (t + 1) / nparts; ++u) {
        const size_t bi = u / nch, p0 = (u % nch) * pc, p1 = std::min(g.P, p0 + pc), np = p1 - p0;
        const float* xb = x + bi * g.C * g.H * g.W;
        if (x_rows) {
          x_rows_unit(bi, p0, np, 0, s.O, part);
          continue;
        }
        const float* col = xb + p0;
        size_t sam = g.P;
        if (!pw) {
          float* buf = scratch(0, g.K * np);
          im2col(g, xb, p0, p1, buf);
          col = buf;
          sam = np;
        }
        float* dyT = scratch(1, np * s.O);  // dy^T [np, O]
        const float* dyb = dy + bi * s.O * g.P + p0;
        transpose_positions(dyb, g.P, np, 0, s.O, dyT, s.O);
        gemm(Gemm{g.K, s.O, np, col, sam, 1, dyT, s.O, part, s.O, nullptr, Init::C});
      }
    }
  });
  // dW[o, k] = sum_t part_t[k, o] (part_t[o, k] when x_rows), the partials added in chunk order.
  for_chunks(s.O, KO * nparts * 4, [&](size_t lo, size_t hi) {
    if (x_rows) sum_parts(parts, nparts, KO, lo * g.K, hi * g.K, dW);
    else sum_parts_transposed(parts, nparts, KO, g.K, s.O, lo, hi, dW);
  });
}

void conv2d_backward_bias(const ops::Conv2dShape& s, const float* dy, float* db) {
  s.validate();
  const size_t P = s.OH() * s.OW();
  // db[o]: eight lanes, position p into lane p % 8, each a sum over the images in order then over its positions
  // in order; the lanes added as a fixed tree.
  auto tree = [](const float* lane) {
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  };
  if (P <= 8) {
    // Planes of at most 8 positions (ConvNeXt-T's 2x2 and 1x1 at a 32x32 input): each position is its own lane,
    // so the lanes of a block of channels are one contiguous run of dy per image ((o, p) flattened), summed over
    // the images as a vector: the same chains as the loop below, which would run one float at a time here.
    constexpr size_t kOBlock = 64;
    for_chunks((s.O + kOBlock - 1) / kOBlock, 16 * s.B * s.O * P, [&](size_t lo, size_t hi) {
      for (size_t ob = lo; ob < hi; ++ob) {
        const size_t o0 = ob * kOBlock, o1 = std::min(s.O, o0 + kOBlock), len = (o1 - o0) * P;
        float acc[kOBlock * 8];
        std::fill(acc, acc + len, 0.0f);
        for (size_t bi = 0; bi < s.B; ++bi) {
          const float* r = dy + (bi * s.O + o0) * P;
          for (size_t j = 0; j < len; ++j) acc[j] += r[j];
        }
        for (size_t o = o0; o < o1; ++o) {
          float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          std::copy_n(acc + (o - o0) * P, P, lane);
          db[o] = tree(lane);
        }
      }
    });
    return;
  }
  for_chunks(s.O, 16 * s.B * s.O * P, [&](size_t lo, size_t hi) {
    for (size_t o = lo; o < hi; ++o) {
      float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t bi = 0; bi < s.B; ++bi) {
        const float* r = dy + (bi * s.O + o) * P;
        size_t p = 0;
        for (; p + 8 <= P; p += 8)
          for (int l = 0; l < 8; ++l) lane[l] += r[p + static_cast<size_t>(l)];
        for (int l = 0; p + static_cast<size_t>(l) < P; ++l) lane[l] += r[p + static_cast<size_t>(l)];
      }
      db[o] = tree(lane);
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
