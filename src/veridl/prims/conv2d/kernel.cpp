// Fast float32 conv2d kernels: see kernel.hpp for the contracts, the method and the determinism
// argument.
#include "veridl/prims/conv2d/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "veridl/kernels/parallel.hpp"
#include "veridl/kernels/simd.hpp"

namespace veridl::kernels {
namespace {

// Per-thread scratch buffers (slot 0: col / dcol, slot 1: dy^T, slot 2: the weight gradient's partial
// sums, on the calling thread); they grow, never shrink, so a train step allocates nothing.
float* scratch(int slot, size_t n) {
  thread_local std::vector<float> buf[3];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// ---- GEMM: C(m, n) = init + sum_k A(m, k) B[k, n] -----------------------------------------------------

struct Gemm {
  size_t M, N, K;
  const float* A;
  size_t sam, sak;  // A(m, k) = A[m * sam + k * sak]
  const float* B;
  size_t ldb;  // B(k, n) = B[k * ldb + n]
  float* C;
  size_t ldc;  // C(m, n) = C[m * ldc + n]
  const float* row_init;  // init = row_init[m] (nullptr: 0) ...
  bool accumulate;        // ... unless accumulating: init = C(m, n)
};

// Rows of a tile are balanced (every block has floor or ceil of M / count rows).
struct Blocks {
  size_t extent, count;
  Blocks(size_t e, size_t max_rows) : extent(e), count(e == 0 ? 0 : (e + max_rows - 1) / max_rows) {}
  size_t lo(size_t j) const { return extent * j / count; }
  size_t hi(size_t j) const { return extent * (j + 1) / count; }
};

constexpr int kRows = 6;
constexpr size_t kCols = 16;
// Depth blocks (balanced, at most kDepth deep) keep a B panel (<= 20 KiB) in L1 across the row blocks;
// between depth blocks the partial sums go through C exactly, so the blocking changes no result.
constexpr size_t kDepth = 320;

#ifdef __AVX2__

using simd::lane_mask;

// One tile: rows [m0, m0 + MR), columns [n0, n0 + nn), nn in (8 (NV - 1), 8 NV], depth [k0, k1).
// cont: continue the partial sums already in C (a later depth block).
template <int MR, int NV, bool Tail>
void tile(const Gemm& g, size_t m0, size_t n0, size_t nn, size_t k0, size_t k1, bool cont) {
  const __m256i mask = lane_mask(Tail ? nn - 8 * (NV - 1) : 8);
  auto load = [&](const float* p, int v) {
    return (Tail && v == NV - 1) ? _mm256_maskload_ps(p + 8 * v, mask) : _mm256_loadu_ps(p + 8 * v);
  };
  __m256 acc[MR][NV];
  if (cont || g.accumulate) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = load(g.C + (m0 + r) * g.ldc + n0, v);
  } else {
    for (int r = 0; r < MR; ++r) {
      const __m256 c0 = _mm256_set1_ps(g.row_init ? g.row_init[m0 + r] : 0.0f);
      for (int v = 0; v < NV; ++v) acc[r][v] = c0;
    }
  }
  const size_t sam = g.sam, sak = g.sak, ldb = g.ldb;
  const float* a = g.A + m0 * sam + k0 * sak;
  const float* b = g.B + k0 * ldb + n0;
  for (size_t k = k0; k < k1; ++k, a += sak, b += ldb) {
    __m256 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b, v);
    for (int r = 0; r < MR; ++r) {
      // _mm256_set1_ps of a load, not _mm256_broadcast_ss: GCC 12 keeps acc in registers only then.
      const __m256 av = _mm256_set1_ps(a[r * sam]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    float* c = g.C + (m0 + r) * g.ldc + n0;
    for (int v = 0; v < NV; ++v) {
      if (Tail && v == NV - 1)
        _mm256_maskstore_ps(c + 8 * v, mask, acc[r][v]);
      else
        _mm256_storeu_ps(c + 8 * v, acc[r][v]);
    }
  }
}

template <int MR>
void tile_any(const Gemm& g, size_t m0, size_t mr, size_t n0, size_t nn, size_t k0, size_t k1, bool cont) {
  if constexpr (MR > 1)
    if (mr < MR) return tile_any<MR - 1>(g, m0, mr, n0, nn, k0, k1, cont);
  if (nn == 16)
    tile<MR, 2, false>(g, m0, n0, nn, k0, k1, cont);
  else if (nn > 8)
    tile<MR, 2, true>(g, m0, n0, nn, k0, k1, cont);
  else if (nn == 8)
    tile<MR, 1, false>(g, m0, n0, nn, k0, k1, cont);
  else
    tile<MR, 1, true>(g, m0, n0, nn, k0, k1, cont);
}

// Single-threaded (the callers parallelise over independent GEMMs). Depth blocks, then column blocks,
// then row blocks, so that a B panel is reused from L1 across all row blocks.
void gemm(const Gemm& g) {
  if (g.M == 0 || g.N == 0) return;
  const Blocks mb(g.M, kRows);
  const Blocks kb(std::max<size_t>(g.K, 1), kDepth);  // K = 0 still writes the initial values
  for (size_t jk = 0; jk < kb.count; ++jk) {
    const size_t k0 = kb.lo(jk), k1 = std::min(g.K, kb.hi(jk));
    for (size_t n0 = 0; n0 < g.N; n0 += kCols) {
      const size_t nn = std::min(kCols, g.N - n0);
      for (size_t jm = 0; jm < mb.count; ++jm)
        tile_any<kRows>(g, mb.lo(jm), mb.hi(jm) - mb.lo(jm), n0, nn, k0, k1, k0 > 0);
    }
  }
}

#else  // portable: GCC vectorizes the n loop

void gemm(const Gemm& g) {
  for (size_t m = 0; m < g.M; ++m) {
    float* c = g.C + m * g.ldc;
    if (!g.accumulate) {
      const float c0 = g.row_init ? g.row_init[m] : 0.0f;
      for (size_t n = 0; n < g.N; ++n) c[n] = c0;
    }
    for (size_t k = 0; k < g.K; ++k) {
      const float a = g.A[m * g.sam + k * g.sak];
      const float* b = g.B + k * g.ldb;
      for (size_t n = 0; n < g.N; ++n) c[n] += a * b[n];
    }
  }
}

#endif  // __AVX2__

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

// col[k, p - p0] = x[c, i s + kh - pt, j s + kw - pl] (0 in the padding), k = (c, kh, kw), p = (i, j).
void im2col(const Geometry& g, const float* x, size_t p0, size_t p1, float* col) {
  const size_t np = p1 - p0;
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

// dx[c, ...] += col[k, p - p0] for the channels [c0, c1) (col rows relative to c0): the adjoint of
// im2col. For a fixed dx element the additions run in (kh, kw, p) order.
void col2im_add(const Geometry& g, const float* col, size_t c0, size_t c1, size_t p0, size_t p1, float* dx) {
  const size_t np = p1 - p0;
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

}  // namespace

void conv2d_forward(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y) {
  s.validate();
  const Geometry g(s);
  const bool pw = g.pointwise(s);
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
      gemm(Gemm{s.O, np, g.K, W, g.K, 1, col, ldb, y + bi * s.O * g.P + p0, g.P, s.bias ? b : nullptr, false});
    }
  });
}

void conv2d_backward_input(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx) {
  s.validate();
  const Geometry g(s);
  const size_t KK = s.KH * s.KW;
  if (g.pointwise(s)) {  // dx = W^T dy per image, split over (image, position chunk)
    const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc;
    for_chunks(s.B * nch, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
      for (size_t u = lo; u < hi; ++u) {
        const size_t bi = u / nch, p0 = (u % nch) * pc, np = std::min(g.P, p0 + pc) - p0;
        gemm(Gemm{s.C, np, s.O, W, 1, g.K, dy + bi * s.O * g.P + p0, g.P, dx + bi * s.C * g.P + p0, g.P, nullptr,
                  false});
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
                  false});
        col2im_add(g, dcol, c0, c1, p0, p1, dxb);
      }
    }
  });
}

void conv2d_backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW) {
  s.validate();
  const Geometry g(s);
  const bool pw = g.pointwise(s);
  const size_t pc = g.chunk(), nch = (g.P + pc - 1) / pc, units = s.B * nch;
  const size_t KO = g.K * s.O;
  // Chunks of units: a count fixed by the shape (at most 8, and at most ~64 MiB of partials).
  const size_t nparts = std::max<size_t>(1, std::min({units, size_t(8), (size_t(16) << 20) / std::max<size_t>(KO, 1)}));
  float* parts = scratch(2, nparts * KO);  // partial dW^T [K, O] per chunk
  for_chunks(nparts, s.B * s.O * g.K * g.P, [&](size_t lo, size_t hi) {
    for (size_t t = lo; t < hi; ++t) {
      float* part = parts + t * KO;
      std::fill(part, part + KO, 0.0f);
      for (size_t u = units * t / nparts; u < units * (t + 1) / nparts; ++u) {
        const size_t bi = u / nch, p0 = (u % nch) * pc, p1 = std::min(g.P, p0 + pc), np = p1 - p0;
        const float* xb = x + bi * g.C * g.H * g.W;
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
        for (size_t q0 = 0; q0 < np; q0 += 8)  // 8 positions at a time: 8-float runs of writes
          for (size_t o = 0; o < s.O; ++o)
            for (size_t q = q0; q < std::min(np, q0 + 8); ++q) dyT[q * s.O + o] = dyb[o * g.P + q];
        gemm(Gemm{g.K, s.O, np, col, sam, 1, dyT, s.O, part, s.O, nullptr, true});
      }
    }
  });
  // dW[o, k] = sum_t part_t[k, o], the partials added in chunk order.
  for_chunks(s.O, KO * nparts * 4, [&](size_t lo, size_t hi) {
    for (size_t o = lo; o < hi; ++o)
      for (size_t k = 0; k < g.K; ++k) {
        float acc = parts[k * s.O + o];
        for (size_t t = 1; t < nparts; ++t) acc += parts[t * KO + k * s.O + o];
        dW[o * g.K + k] = acc;
      }
  });
}

void conv2d_backward_bias(const ops::Conv2dShape& s, const float* dy, float* db) {
  s.validate();
  const size_t P = s.OH() * s.OW();
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
      db[o] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }
  });
}

}  // namespace veridl::kernels
