// Fast float32 dense kernels: see kernel.hpp for the contracts and the determinism argument.
//
// AVX2 and AVX-512 variants: two register-tiled micro-kernels serve all three products.
//   bcast (broadcast-FMA GEMM)  C(m, n) = init(n) + sum_k A(m, k) B[k, n]
//       kernels/gemm_tile.hpp: A read through two strides (so one kernel does x W, x^T dy and dy W^T), B
//       row-major or given transposed (W in dy W^T: packed from W's rows), the vector lanes along n, a
//       register tile of up to 6 x 16 (AVX2) or 12 x 32 (AVX-512), the column tail masked, an optional
//       transposed store of the tile; around it GotoBLAS's blocking, with packed panels of A and B
//       (micro::gemm_tiles).
//   dot (8-lane dot products)   C[m, n] = init(n) + sum_k A[m, k] Bt[n, k]
//       lanes along k, a register tile of up to 2 x 5 dot products, a fixed horizontal reduction; 8 lanes in
//       both variants, so that both sum in the same order.
// Each output element is accumulated by one tile, sequentially in k, so its value depends only on the
// shape: the same in the AVX2 and AVX-512 variants. Threads take contiguous chunks of tile rows (or tile
// columns), which never changes a value.
// Portable variant: plain loops that the compiler vectorizes along the contiguous output dimension.
#include "veridl/prims/dense/kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "veridl/kernels/scratch.hpp"
#include "veridl/kernels/target.hpp"
#include "veridl/kernels/simd.hpp"
#include "veridl/kernels/gemm_tile.hpp"


namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

#if VERIDL_ISA_AVX2

using simd::hsum;
using simd::lane_mask;

// Per-thread scratch buffers; grow, never shrink. scratch: a transposed copy of W (the calling thread's
// buffer, written and read by the team); pack_scratch: the packed blocks of A and B (private to each team thread).
float* scratch(size_t n) {
  thread_local Scratch<float> buf;
  return buf.get(n);
}
float* pack_scratch(size_t n) {
  thread_local Scratch<float> buf;
  return buf.get(n);
}

using micro::Blocks;

// Wt[o, i] = W[i, o] for the columns o in [olo, ohi) (olo a multiple of 8; W is [I, O]): 8 x 8 blocks through
// registers (the last block of each row band masked), the I % 8 leftover rows scalar.
void transpose_cols(size_t I, size_t O, const float* W, float* Wt, size_t olo, size_t ohi) {
  size_t i0 = 0;
  for (; i0 + 8 <= I; i0 += 8) {
    for (size_t o0 = olo; o0 < ohi; o0 += 8) {
      const size_t w = std::min<size_t>(8, O - o0);
      const __m256i mask = lane_mask(w);
      __m256 r[8];
      for (size_t j = 0; j < 8; ++j) {
        const float* p = W + (i0 + j) * O + o0;
        r[j] = w == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
      }
      simd::transpose8(r);
      for (size_t j = 0; j < w; ++j) _mm256_storeu_ps(Wt + (o0 + j) * I + i0, r[j]);
    }
  }
  for (; i0 < I; ++i0)
    for (size_t o = olo; o < ohi; ++o) Wt[o * I + i0] = W[i0 * O + o];
}
// All of Wt = W^T (the forward's dot products, narrow O), the team taking contiguous blocks of 8 columns when the
// copy is large enough (a copy: no value depends on the split). Made by the calling thread alone, the same copies
// for dx made the MLP's dx products 5-7% slower on 2 threads (session 28; dx packs W's rows directly since session 30).
void transpose(size_t I, size_t O, const float* W, float* Wt) {
  for_chunks((O + 7) / 8, I * O,
             [&](size_t lo, size_t hi) { transpose_cols(I, O, W, Wt, lo * 8, std::min(O, hi * 8)); });
}

// ---- broadcast-FMA GEMM (the micro-kernel: kernels/gemm_tile.hpp) ----------------------------------------


size_t n_blocks(size_t N) { return (N + micro::kTileCols - 1) / micro::kTileCols; }

// par_over_n: threads split the column panels (else the row tiles); each runs the blocked GEMM of
// kernels/gemm_tile.hpp (micro::gemm_tiles) on its part, with its own packing buffer.
void bcast_gemm(const micro::Gemm& g, bool par_over_n) {
  if (g.M == 0 || g.N == 0) return;
  const size_t work = g.M * g.N * g.K;
  // Split over rows: as many rows to each thread (balanced blocks, their count a multiple of the team's size).
  const Blocks mb(g.M, micro::kTileRows, par_over_n ? 1 : static_cast<size_t>(team_size(work)));
  const size_t nb = n_blocks(g.N);
  auto run = [&](size_t mlo, size_t mhi, size_t nlo, size_t nhi) {
    micro::gemm_tiles(g, mb, mlo, mhi, nlo, nhi, pack_scratch(micro::gemm_pack_floats(g.K, g.transC)));
  };
  if (par_over_n)
    for_chunks(nb, work, [&](size_t lo, size_t hi) { run(0, mb.count, lo, hi); });
  else
    for_chunks(mb.count, work, [&](size_t lo, size_t hi) { run(lo, hi, 0, nb); });
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

constexpr int kDotRows = 2, kDotCols = 5;  // 10 accumulators + 5 B rows + 1 A row = 16 registers

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
    for (int c = 0; c < NR; ++c) {
      bv[c] = load(b[c] + k);
      // Pin the B rows in registers: left alone, GCC 12 folds them into every FMA as memory operands
      // (MR + MR NR loads per step instead of MR + NR), which makes this loop load-bound.
      __asm__("" : "+x"(bv[c]));
    }
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

// Tile of exactly mr x nr (mr <= MR, nr <= NR) dot products.
template <int MR, int NR>
void dot_tile_any(const Dot& g, size_t m0, size_t mr, size_t n0, size_t nr) {
  if constexpr (MR > 1)
    if (mr < MR) return dot_tile_any<MR - 1, NR>(g, m0, mr, n0, nr);
  if constexpr (NR > 1)
    if (nr < NR) return dot_tile_any<MR, NR - 1>(g, m0, mr, n0, nr);
  dot_tile<MR, NR>(g, m0, n0);
}

// Threads split the row blocks; within a thread, column blocks outer (a few rows of Bt stay in L1).
void dot_gemm(const Dot& g) {
  if (g.M == 0 || g.N == 0) return;
  const Blocks mb(g.M, kDotRows), nb(g.N, kDotCols);
  for_chunks(mb.count, g.M * g.N * g.K, [&](size_t lo, size_t hi) {
    for (size_t jn = 0; jn < nb.count; ++jn)
      for (size_t jm = lo; jm < hi; ++jm)
        dot_tile_any<kDotRows, kDotCols>(g, mb.lo(jm), mb.hi(jm) - mb.lo(jm), nb.lo(jn), nb.hi(jn) - nb.lo(jn));
  });
}

// Auto choices. A loop nest with its lanes along an extent n keeps n / (8 ceil(n / 8)) of the lanes busy
// (the last vector is masked), so the nest with the better lane use wins. On a tie: forward and dW take
// the broadcast nest along O (the dot-product nest also pays for loads of both operands and a
// horizontal reduction). dx takes the broadcast nest (NarrowO: lanes along I, W's panels packed transposed from
// its rows) unless the dot products along O use the lanes
// better (a handful of rows): the broadcast nests run 1.2x (AVX2) to 1.7x (AVX-512) the dot products at
// the MLP's shapes (bench/kernels_bench.cpp, Intel Xeon, 2 threads). The choice depends on the shape
// only, the same in both variants (so are the results).
double lane_use(size_t n) { return n == 0 ? 1.0 : static_cast<double>(n) / static_cast<double>(8 * ((n + 7) / 8)); }

bool narrow(const ops::DenseShape& s, DenseVariant v) {
  if (v != DenseVariant::Auto) return v == DenseVariant::NarrowO;
  return lane_use(s.I) > lane_use(s.O);
}

bool narrow_dx(const ops::DenseShape& s, DenseVariant v) {
  if (v != DenseVariant::Auto) return v == DenseVariant::NarrowO;
  return lane_use(s.I) >= lane_use(s.O);
}

#endif  // VERIDL_ISA_AVX2

}  // namespace

void dense_forward_variant(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y,
                           [[maybe_unused]] DenseVariant v) {
  const size_t B = s.B, I = s.I, O = s.O;
#if VERIDL_ISA_AVX2
  if (narrow(s, v)) {
    float* Wt = scratch(I * O);
    transpose(I, O, W, Wt);
    dot_gemm(Dot{B, O, I, x, I, Wt, I, b, y, O});
  } else {
    // Threads split the larger of the two block counts: with N the larger, each thread packs only its own
    // columns of W (not all of W, as it does when they split the rows), which halves the reads of W.
    bcast_gemm(micro::Gemm{B, O, I, x, I, 1, W, O, y, O, b, micro::Init::Col}, n_blocks(O) >= Blocks(B, micro::kTileRows).count);
  }
#else
  for_chunks(B, B * I * O, [&](size_t lo, size_t hi) {
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

void dense_backward_input_variant(const ops::DenseShape& s, const float* W, const float* dy, float* dx,
                          [[maybe_unused]] DenseVariant v) {
  const size_t B = s.B, I = s.I, O = s.O;
#if VERIDL_ISA_AVX2
  if (narrow_dx(s, v)) {
    // A(b, o) = dy[b, o], B(o, i) = W[i, o]: W's panels packed from its rows, transposed (micro::Gemm::transB).
    // Threads split the larger of the two block counts (as the forward's do).
    micro::Gemm g{B, I, O, dy, O, 1, W, O, dx, I, nullptr, micro::Init::Zero};
    g.transB = true;
    bcast_gemm(g, n_blocks(I) >= Blocks(B, micro::kTileRows).count);
  } else {
    dot_gemm(Dot{B, I, O, dy, O, W, O, nullptr, dx, I});
  }
#else
  for_chunks(B, B * I * O, [&](size_t lo, size_t hi) {
    for (size_t r = lo; r < hi; ++r)
      for (size_t i = 0; i < I; ++i) {
        float acc = 0.0f;
        for (size_t o = 0; o < O; ++o) acc += W[i * O + o] * dy[r * O + o];
        dx[r * I + i] = acc;
      }
  });
#endif
}

void dense_backward_weight_variant(const ops::DenseShape& s, const float* x, const float* dy, float* dW,
                           [[maybe_unused]] DenseVariant v) {
  const size_t B = s.B, I = s.I, O = s.O;
#if VERIDL_ISA_AVX2
  if (narrow(s, v))  // tiles of dW^T [O, I]: A(o, b) = dy[b, o], B(b, i) = x[b, i]; threads split i
    bcast_gemm(micro::Gemm{O, I, B, dy, 1, O, x, I, dW, O, nullptr, micro::Init::Zero, true}, true);
  else  // A(i, b) = x[b, i], B(b, o) = dy[b, o]; threads split i, or o when O > I: every thread packs the whole
        // of the operand whose side the team does not split (dy when it splits i), so the smaller one (ViT-Tiny's
        // fc1, 192 -> 768 over 3152 rows: each thread packed all 9.7 MB of dy)
    bcast_gemm(micro::Gemm{I, O, B, x, 1, I, dy, O, dW, O, nullptr, micro::Init::Zero}, O > I);
#else
  for_chunks(I, B * I * O, [&](size_t lo, size_t hi) {
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

void dense_forward(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y) {
  dense_forward_variant(s, x, W, b, y, DenseVariant::Auto);
}

void dense_backward_input(const ops::DenseShape& s, const float* W, const float* dy, float* dx) {
  dense_backward_input_variant(s, W, dy, dx, DenseVariant::Auto);
}

void dense_backward_weight(const ops::DenseShape& s, const float* x, const float* dy, float* dW) {
  dense_backward_weight_variant(s, x, dy, dW, DenseVariant::Auto);
}

// db[o] = sum_b dy[b, o], summed in b order for every o (GCC vectorizes the o loop). Threads, when the
// work is large, split o into 64-column blocks.
void dense_backward_bias(const ops::DenseShape& s, const float* dy, float* db) {
  const size_t B = s.B, O = s.O;
  constexpr size_t kCols = 64;
  for_chunks((O + kCols - 1) / kCols, 16 * B * O, [&](size_t lo, size_t hi) {
    const size_t o0 = lo * kCols, o1 = std::min(O, hi * kCols);
    for (size_t o = o0; o < o1; ++o) db[o] = 0.0f;
    for (size_t r = 0; r < B; ++r) {
      const float* dyr = dy + r * O;
      for (size_t o = o0; o < o1; ++o) db[o] += dyr[o];
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
