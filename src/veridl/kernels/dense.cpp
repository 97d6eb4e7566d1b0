// Fast float32 dense kernels: see dense.hpp for the contracts and the determinism argument.
//
// AVX2 build: two register-tiled micro-kernels serve all three products.
//   bcast (broadcast-FMA GEMM)  C(m, n) = init(n) + sum_k A(m, k) B[k, n]
//       A read through two strides (so one kernel does x W and x^T dy), B row-major with the 8-lane
//       vectors along n, a register tile of up to 6 rows x 16 columns (12 accumulators), the column
//       tail handled with masked loads/stores, and an optional transposed store of the tile.
//   dot (8-lane dot products)   C[m, n] = init(n) + sum_k A[m, k] Bt[n, k]
//       lanes along k, a register tile of up to 4 x 3 dot products, a fixed horizontal reduction.
// Each output element is accumulated by one tile, sequentially in k, so its value depends only on the
// shape. Threads take contiguous chunks of tile rows (or tile columns), which never changes a value.
// Portable build: plain loops that GCC vectorizes along the contiguous output dimension.
#include "veridl/kernels/dense.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace veridl::kernels {
namespace {

// Runs body(lo, hi) over the blocks [0, nblocks), split into contiguous chunks, one per thread (the
// schedule(static) partition), or all on the calling thread when the work is too small to pay for a
// fork. Which thread runs a block never changes what the block computes.
template <class F>
void for_block_chunks(size_t nblocks, size_t work, F&& body) {
  const int nt = work >= kParallelMinWork ? omp_get_max_threads() : 1;
  if (nt <= 1 || nblocks <= 1) {
    body(size_t(0), nblocks);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const size_t t = static_cast<size_t>(omp_get_thread_num());
    const size_t T = static_cast<size_t>(omp_get_num_threads());
    body(nblocks * t / T, nblocks * (t + 1) / T);
  }
}

#ifdef __AVX2__

// Per-thread scratch (the transposed copy of W); grows, never shrinks.
float* scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Wt[o, i] = W[i, o]; rows of W are read in order, 8 at a time so that the writes are 8-float runs.
void transpose(size_t I, size_t O, const float* W, float* Wt) {
  for (size_t i0 = 0; i0 < I; i0 += 8) {
    const size_t i1 = std::min(I, i0 + 8);
    for (size_t o = 0; o < O; ++o)
      for (size_t i = i0; i < i1; ++i) Wt[o * I + i] = W[i * O + o];
  }
}

// Blocking: rows of a tile are balanced (every row block has ceil-or-floor of extent/nblocks rows), so
// that e.g. 10 rows become 5 + 5 rather than 6 + 4.
struct Blocks {
  size_t extent, count;
  Blocks(size_t e, size_t max_rows) : extent(e), count(e == 0 ? 0 : (e + max_rows - 1) / max_rows) {}
  size_t lo(size_t j) const { return extent * j / count; }
  size_t hi(size_t j) const { return extent * (j + 1) / count; }
};

// Lanes [0, n) on, the rest off (n in [1, 8]).
inline __m256i lane_mask(size_t n) {
  static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---- broadcast-FMA GEMM ----------------------------------------------------------------------------

struct Bcast {
  size_t M, N, K;
  const float* A;
  size_t sam, sak;  // A(m, k) = A[m * sam + k * sak]
  const float* B;
  size_t ldb;  // B(k, n) = B[k * ldb + n]
  const float* init;  // C(m, n) starts at init[n] (nullptr: 0)
  float* C;
  size_t ldc;
  bool transC;  // C(m, n) is stored at C[n * ldc + m] instead of C[m * ldc + n]
};

constexpr size_t kBcastRows = 6, kBcastCols = 16;

// One tile: rows [m0, m0 + MR), columns [n0, n0 + nn) with nn in (8 (NV - 1), 8 NV]; Tail: nn < 8 NV,
// the last vector is masked.
template <int MR, int NV, bool Tail>
void bcast_tile(const Bcast& g, size_t m0, size_t n0, size_t nn) {
  const __m256i mask = lane_mask(Tail ? nn - 8 * (NV - 1) : 8);
  auto loadB = [&](const float* p, int v) {
    return (Tail && v == NV - 1) ? _mm256_maskload_ps(p + 8 * v, mask) : _mm256_loadu_ps(p + 8 * v);
  };
  __m256 acc[MR][NV];
  for (int v = 0; v < NV; ++v) {
    const __m256 c0 = g.init ? loadB(g.init + n0, v) : _mm256_setzero_ps();
    for (int r = 0; r < MR; ++r) acc[r][v] = c0;
  }
  const float* a = g.A + m0 * g.sam;
  const float* b = g.B + n0;
  const size_t sam = g.sam, sak = g.sak, ldb = g.ldb;
  for (size_t k = 0; k < g.K; ++k, a += sak, b += ldb) {
    __m256 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = loadB(b, v);
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * sam);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  if (!g.transC) {
    for (int r = 0; r < MR; ++r) {
      float* c = g.C + (m0 + r) * g.ldc + n0;
      for (int v = 0; v < NV; ++v) {
        if (Tail && v == NV - 1)
          _mm256_maskstore_ps(c + 8 * v, mask, acc[r][v]);
        else
          _mm256_storeu_ps(c + 8 * v, acc[r][v]);
      }
    }
  } else {
    alignas(32) float t[MR][8 * NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) _mm256_store_ps(&t[r][8 * v], acc[r][v]);
    for (size_t j = 0; j < nn; ++j) {
      float* c = g.C + (n0 + j) * g.ldc + m0;
      for (int r = 0; r < MR; ++r) c[r] = t[r][j];
    }
  }
}

template <int MR>
void bcast_tile_cols(const Bcast& g, size_t m0, size_t n0, size_t nn) {
  if (nn == 16)
    bcast_tile<MR, 2, false>(g, m0, n0, nn);
  else if (nn > 8)
    bcast_tile<MR, 2, true>(g, m0, n0, nn);
  else if (nn == 8)
    bcast_tile<MR, 1, false>(g, m0, n0, nn);
  else
    bcast_tile<MR, 1, true>(g, m0, n0, nn);
}

void bcast_tile_any(const Bcast& g, size_t m0, size_t mr, size_t n0, size_t nn) {
  switch (mr) {
    case 1: return bcast_tile_cols<1>(g, m0, n0, nn);
    case 2: return bcast_tile_cols<2>(g, m0, n0, nn);
    case 3: return bcast_tile_cols<3>(g, m0, n0, nn);
    case 4: return bcast_tile_cols<4>(g, m0, n0, nn);
    case 5: return bcast_tile_cols<5>(g, m0, n0, nn);
    default: return bcast_tile_cols<6>(g, m0, n0, nn);
  }
}

// par_over_n: threads split the column blocks (else the row blocks). Within a thread, column blocks are
// the outer loop so that a B panel (K x 16) is reused across the thread's row blocks from cache.
void bcast_gemm(const Bcast& g, bool par_over_n) {
  if (g.M == 0 || g.N == 0) return;
  const Blocks mb(g.M, kBcastRows);
  const size_t nb = (g.N + kBcastCols - 1) / kBcastCols;
  auto run = [&](size_t mlo, size_t mhi, size_t nlo, size_t nhi) {
    for (size_t jn = nlo; jn < nhi; ++jn) {
      const size_t n0 = jn * kBcastCols, nn = std::min(kBcastCols, g.N - n0);
      for (size_t jm = mlo; jm < mhi; ++jm) bcast_tile_any(g, mb.lo(jm), mb.hi(jm) - mb.lo(jm), n0, nn);
    }
  };
  const size_t work = g.M * g.N * g.K;
  if (par_over_n)
    for_block_chunks(nb, work, [&](size_t lo, size_t hi) { run(0, mb.count, lo, hi); });
  else
    for_block_chunks(mb.count, work, [&](size_t lo, size_t hi) { run(lo, hi, 0, nb); });
}

// ---- 8-lane dot products ---------------------------------------------------------------------------

struct Dot {
  size_t M, N, K;
  const float* A;
  size_t lda;  // A[m * lda + k]
  const float* Bt;
  size_t ldb;  // Bt[n * ldb + k]
  const float* init;  // added to C[m, n] after the dot product (nullptr: nothing)
  float* C;
  size_t ldc;
};

constexpr size_t kDotRows = 4, kDotCols = 3;

template <int MR, int NR>
void dot_tile(const Dot& g, size_t m0, size_t n0) {
  __m256 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_setzero_ps();
  const float* a[MR];
  const float* b[NR];
  for (int r = 0; r < MR; ++r) a[r] = g.A + (m0 + r) * g.lda;
  for (int c = 0; c < NR; ++c) b[c] = g.Bt + (n0 + c) * g.ldb;
  auto step = [&](size_t k, auto&& load) {
    __m256 bv[NR];
    for (int c = 0; c < NR; ++c) bv[c] = load(b[c] + k);
    for (int r = 0; r < MR; ++r) {
      const __m256 av = load(a[r] + k);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_fmadd_ps(av, bv[c], acc[r][c]);
    }
  };
  size_t k = 0;
  for (; k + 8 <= g.K; k += 8) step(k, [](const float* p) { return _mm256_loadu_ps(p); });
  if (k < g.K) {
    const __m256i mask = lane_mask(g.K - k);
    step(k, [mask](const float* p) { return _mm256_maskload_ps(p, mask); });
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) {
      float v = hsum(acc[r][c]);
      if (g.init) v += g.init[n0 + c];
      g.C[(m0 + r) * g.ldc + n0 + c] = v;
    }
}

template <int MR>
void dot_tile_cols(const Dot& g, size_t m0, size_t n0, size_t nr) {
  switch (nr) {
    case 1: return dot_tile<MR, 1>(g, m0, n0);
    case 2: return dot_tile<MR, 2>(g, m0, n0);
    default: return dot_tile<MR, 3>(g, m0, n0);
  }
}

void dot_tile_any(const Dot& g, size_t m0, size_t mr, size_t n0, size_t nr) {
  switch (mr) {
    case 1: return dot_tile_cols<1>(g, m0, n0, nr);
    case 2: return dot_tile_cols<2>(g, m0, n0, nr);
    case 3: return dot_tile_cols<3>(g, m0, n0, nr);
    default: return dot_tile_cols<4>(g, m0, n0, nr);
  }
}

// Threads split the row blocks; within a thread, column blocks outer (a few rows of Bt stay in L1).
void dot_gemm(const Dot& g) {
  if (g.M == 0 || g.N == 0) return;
  const Blocks mb(g.M, kDotRows), nb(g.N, kDotCols);
  for_block_chunks(mb.count, g.M * g.N * g.K, [&](size_t lo, size_t hi) {
    for (size_t jn = 0; jn < nb.count; ++jn)
      for (size_t jm = lo; jm < hi; ++jm)
        dot_tile_any(g, mb.lo(jm), mb.hi(jm) - mb.lo(jm), nb.lo(jn), nb.hi(jn) - nb.lo(jn));
  });
}

// Auto choices (measured on Zen 3 with bench/kernels_bench.cpp): below 16 outputs, lanes along O are
// partly idle and the NarrowO loop nests win.
constexpr size_t kNarrowBelow = 16;

bool narrow(const ops::DenseShape& s, detail::Variant v) {
  return v == detail::Variant::NarrowO || (v == detail::Variant::Auto && s.O < kNarrowBelow);
}

#endif  // __AVX2__

}  // namespace

namespace detail {

void dense_forward(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y,
                   [[maybe_unused]] Variant v) {
  const size_t B = s.B, I = s.I, O = s.O;
#ifdef __AVX2__
  if (narrow(s, v)) {
    float* Wt = scratch(I * O);
    transpose(I, O, W, Wt);
    dot_gemm(Dot{B, O, I, x, I, Wt, I, b, y, O});
  } else {
    bcast_gemm(Bcast{B, O, I, x, I, 1, W, O, b, y, O, false}, false);
  }
#else
  for_block_chunks(B, B * I * O, [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; ++r) {
      float* yr = y + r * O;
      for (size_t o = 0; o < O; ++o) yr[o] = b[o];
      for (size_t i = 0; i < I; ++i) {
        const float xi = x[r * I + i];
        const float* Wi = W + i * O;
        for (size_t o = 0; o < O; ++o) yr[o] += xi * Wi[o];
      }
    }
  });
#endif
}

void dense_backward_input(const ops::DenseShape& s, const float* W, const float* dy, float* dx,
                          [[maybe_unused]] Variant v) {
  const size_t B = s.B, I = s.I, O = s.O;
#ifdef __AVX2__
  if (narrow(s, v)) {
    float* Wt = scratch(I * O);
    transpose(I, O, W, Wt);
    bcast_gemm(Bcast{B, I, O, dy, O, 1, Wt, I, nullptr, dx, I, false}, false);
  } else {
    dot_gemm(Dot{B, I, O, dy, O, W, O, nullptr, dx, I});
  }
#else
  for_block_chunks(B, B * I * O, [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; ++r)
      for (size_t i = 0; i < I; ++i) {
        float acc = 0.0f;
        for (size_t o = 0; o < O; ++o) acc += W[i * O + o] * dy[r * O + o];
        dx[r * I + i] = acc;
      }
  });
#endif
}

void dense_backward_weight(const ops::DenseShape& s, const float* x, const float* dy, float* dW,
                           [[maybe_unused]] Variant v) {
  const size_t B = s.B, I = s.I, O = s.O;
#ifdef __AVX2__
  if (narrow(s, v))  // tiles of dW^T [O, I]: A(o, b) = dy[b, o], B(b, i) = x[b, i]; threads split i
    bcast_gemm(Bcast{O, I, B, dy, 1, O, x, I, nullptr, dW, O, true}, true);
  else  // A(i, b) = x[b, i], B(b, o) = dy[b, o]; threads split i
    bcast_gemm(Bcast{I, O, B, x, 1, I, dy, O, nullptr, dW, O, false}, false);
#else
  for_block_chunks(I, B * I * O, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) {
      float* dWi = dW + i * O;
      for (size_t o = 0; o < O; ++o) dWi[o] = 0.0f;
      for (size_t r = 0; r < B; ++r) {
        const float xi = x[r * I + i];
        const float* dyr = dy + r * O;
        for (size_t o = 0; o < O; ++o) dWi[o] += xi * dyr[o];
      }
    }
  });
#endif
}

}  // namespace detail

void dense_forward(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y) {
  detail::dense_forward(s, x, W, b, y, detail::Variant::Auto);
}

void dense_backward_input(const ops::DenseShape& s, const float* W, const float* dy, float* dx) {
  detail::dense_backward_input(s, W, dy, dx, detail::Variant::Auto);
}

void dense_backward_weight(const ops::DenseShape& s, const float* x, const float* dy, float* dW) {
  detail::dense_backward_weight(s, x, dy, dW, detail::Variant::Auto);
}

// db[o] = sum_b dy[b, o], summed in b order for every o (GCC vectorizes the o loop). Threads, when the
// work is large, split o into 64-column blocks.
void dense_backward_bias(const ops::DenseShape& s, const float* dy, float* db) {
  const size_t B = s.B, O = s.O;
  constexpr size_t kCols = 64;
  for_block_chunks((O + kCols - 1) / kCols, 16 * B * O, [&](size_t lo, size_t hi) {
    const size_t o0 = lo * kCols, o1 = std::min(O, hi * kCols);
    for (size_t o = o0; o < o1; ++o) db[o] = 0.0f;
    for (size_t r = 0; r < B; ++r) {
      const float* dyr = dy + r * O;
      for (size_t o = o0; o < o1; ++o) db[o] += dyr[o];
    }
  });
}

}  // namespace veridl::kernels
