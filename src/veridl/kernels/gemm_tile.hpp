// The register-tiled GEMM micro-kernel of the float kernels (dense and conv2d), for the AVX2 and AVX-512
// variants. Include it after kernels/target.hpp (it is compiled in, and for, each variant's region).
//
//   C(r, j) = init(r, j) + sum_{k < K} A(r, k) B(k, j)      r < MR rows, j < nn columns of one tile
//
// A is read through two strides (so one kernel serves x W, x^T dy and the im2col products) or from a packed
// micro-panel, B row-major with the vector lanes along j (in place, or a packed panel, which can also be packed
// from B's transpose: Gemm::transB); each row of A is
// broadcast and multiplied into NV vectors of B (NV MR accumulators). The AVX2 variant uses 8-lane vectors in
// a 6 x 16 tile (12 of its 16 registers accumulate), the AVX-512 variant 16-lane vectors in a 12 x 32 tile (24
// of its 32 registers). gemm_tiles (below) blocks a whole product around the tile and packs the operands.
// Either way every element of C is accumulated by one FMA chain, k = 0, 1, ..., K - 1 from its initial value
// (a depth block continues the chain from the float the previous one stored in C): its value depends on the
// shape only, never on the vector width, the blocking or the packing, so the two variants give identical bits
// (tests/test_isa.cpp, and the bit pins under VERIDL_ISA=avx2 and =avx512).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#ifndef VERIDL_ISA_NS
#error "kernels/gemm_tile.hpp: include kernels/target.hpp first"
#endif

#include "veridl/kernels/simd.hpp"

namespace veridl::kernels::VERIDL_ISA_NS::micro {

// Where a tile's partial sums start.
enum class Init {
  Zero,  // 0
  Col,   // init[j] (a bias per column)
  Row,   // init[r] (a bias per row)
  C      // the values already in C (a later depth block, or accumulating into C)
};

// Columns in segments (conv2d's images side by side: a product's columns are the positions of several images,
// whose planes lie apart in memory): column n of B and of C is column n % seg of segment n / seg, and the segments
// start bstride (B) and cstride (C) floats apart. seg = 0: no segments. An operand whose stride equals seg is plain
// (its segments are contiguous: column n at n).
struct ColSeg {
  size_t seg = 0, bstride = 0, cstride = 0;
  static size_t off(size_t n, size_t seg, size_t stride) { return seg == 0 ? n : (n / seg) * stride + n % seg; }
  size_t boff(size_t n) const { return off(n, seg, bstride); }
  size_t coff(size_t n) const { return off(n, seg, cstride); }
  bool b_plain() const { return seg == 0 || bstride == seg; }
  bool c_plain() const { return seg == 0 || cstride == seg; }
};

// A product C(m, n) = init(m, n) + sum_{k < K} A(m, k) B(k, n) (gemm_tiles below; the portable variants of the
// callers loop over it themselves).
struct Gemm {
  size_t M, N, K;
  const float* A;
  size_t sam, sak;  // A(m, k) = A[m * sam + k * sak]
  const float* B;
  size_t ldb;  // B(k, n) = B[k * ldb + n]
  float* C;
  size_t ldc;             // C(m, n) = C[m * ldc + n], or C[n * ldc + m] when transC
  const float* init_ptr;  // Col: init_ptr[n]; Row: init_ptr[m] (nullptr: 0)
  Init init;              // Init::C: accumulate into C
  bool transC = false;
  ColSeg cs{};            // B(k, n) = B[k ldb + cs.boff(n)], C(m, n) = C[m ldc + cs.coff(n)] (not with transC)
  bool transB = false;    // B(k, n) = B[n ldb + k]: B given as its transpose (dense's W in dx = dy W^T), always
                          // packed (transposed 8 x 8 blocks at a time); not with segments
};

}  // namespace veridl::kernels::VERIDL_ISA_NS::micro

#if VERIDL_ISA_AVX2
namespace veridl::kernels::VERIDL_ISA_NS::micro {

// 8 lanes (AVX2). A tail mask is a lane mask vector.
struct V8 {
  using Reg = __m256;
  using Mask = __m256i;
  static constexpr size_t kLanes = 8;
  static Mask mask(size_t n) { return simd::lane_mask(n); }  // lanes [0, n) on, n in [1, 8]
  static Mask range(size_t a, size_t e) {                    // lanes [a, e) on
    return _mm256_andnot_si256(a == 0 ? _mm256_setzero_si256() : simd::lane_mask(a), simd::lane_mask(e));
  }
  static Reg load_merge(Reg v, const float* p, Mask m) {  // v with the lanes of m loaded from p
    return _mm256_blendv_ps(v, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, Mask m, Reg v) { _mm256_maskstore_ps(p, m, v); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
};

#if VERIDL_ISA_AVX512
// 16 lanes (AVX-512). A tail mask is an opmask; masked-off lanes are neither read nor written.
struct V16 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr size_t kLanes = 16;
  static Mask mask(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static Mask range(size_t a, size_t e) { return static_cast<__mmask16>(((1u << e) - 1u) & ~((1u << a) - 1u)); }
  static Reg load_merge(Reg v, const float* p, Mask m) { return _mm512_mask_loadu_ps(v, m, p); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, Mask m, Reg v) { _mm512_mask_storeu_ps(p, m, v); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
};
using Vec = V16;
inline constexpr int kTileRows = 12;
#else
using Vec = V8;
inline constexpr int kTileRows = 6;
#endif
inline constexpr size_t kTileCols = 2 * Vec::kLanes;  // a tile's columns: two vectors

// Rows of a tile are balanced (every block has the floor or the ceiling of extent / count rows), so that e.g.
// 10 rows become 5 + 5 rather than 6 + 4.
// team > 1: the count is rounded up to a multiple of it (when there are more blocks than threads), so that threads
// that take count / team contiguous blocks each get the same number of rows, give or take one: 512 rows in 12-row
// tiles are 43 blocks, 21 and 22 to two threads (250 and 262 rows); 44 blocks give them 256 rows each.
struct Blocks {
  size_t extent, count;
  Blocks(size_t e, size_t max_rows, size_t team = 1) : extent(e), count(e == 0 ? 0 : (e + max_rows - 1) / max_rows) {
    if (team > 1 && count > team) count = (count + team - 1) / team * team;
  }
  size_t lo(size_t j) const { return extent * j / count; }
  size_t hi(size_t j) const { return extent * (j + 1) / count; }
};


struct Tile {
  const float* a;  // A(r, k) = a[r * sam + k * sak]
  size_t sam, sak;
  const float* b;  // B(k, j) = b[k * ldb + j]
  size_t ldb;
  size_t K;
  float* c;  // C(r, j) = c[r * ldc + j], or c[j * ldc + r] when transC (segmented C: c1 or cruns below)
  size_t ldc;
  bool transC;
  Init init;
  const float* init_ptr;  // Col: init_ptr[j]; Row: init_ptr[r]
  size_t c1 = Vec::kLanes;  // the second vector of a row: c[r * ldc + c1 ...] (segmented C whose segments hold
                            // whole vectors: where column kLanes is)
  const struct SegRuns* cruns = nullptr;  // segmented C whose segments split vectors: row r's vector v is stored
                                          // and loaded as cruns' masked runs from c + r ldc
};

// The lanes of a panel's vectors that fall into one segment of columns each (segments shorter than a vector, or not
// a multiple of one): vector v's lanes [a, e) are columns n0 + v L + [a, e) of one segment, at p + delta - a
// relative to the panel's column n0 (p + delta holds lane a), for a masked load or store of the vector.
struct SegRuns {
  struct Run {
    std::ptrdiff_t delta;
    Vec::Mask mask;
  };
  Run runs[2][Vec::kLanes];
  int count[2] = {0, 0};
  // Columns [n0, n0 + nn) of a segmented operand whose column n is at off(n) (ColSeg::boff or coff).
  template <class Off>
  SegRuns(size_t n0, size_t nn, size_t seg, Off off) {
    constexpr size_t L = Vec::kLanes;
    for (size_t v = 0; v < 2 && v * L < nn; ++v) {
      const size_t lanes = std::min(L, nn - v * L);
      for (size_t a = 0; a < lanes;) {
        const size_t c = n0 + v * L + a, e = std::min(lanes, a + (seg - c % seg));
        runs[v][count[v]++] = {static_cast<std::ptrdiff_t>(off(c)) - static_cast<std::ptrdiff_t>(off(n0)) -
                                   static_cast<std::ptrdiff_t>(a),
                               Vec::range(a, e)};
        a = e;
      }
    }
  }
  // Vector v of a row from its runs (lanes outside them 0), and back.
  Vec::Reg load(const float* p, int v) const {
    Vec::Reg r = Vec::zero();
    for (int i = 0; i < count[v]; ++i) r = Vec::load_merge(r, p + runs[v][i].delta, runs[v][i].mask);
    return r;
  }
  void store(float* p, int v, Vec::Reg r) const {
    for (int i = 0; i < count[v]; ++i) Vec::store(p + runs[v][i].delta, runs[v][i].mask, r);
  }
};

// One tile of exactly MR rows and nn columns, nn in (L (NV - 1), L NV] (Tail: nn < L NV, the last vector masked).
// PackedA: A is a packed micro-panel, A(r, k) = a[k kTileRows + r] (t.sam and t.sak unused): the row offsets are
// constants, so the loop keeps every address in one register (with the two strides GCC 12 spills the row
// addresses of a 12-row tile and reloads three of them on every k).
template <class V, int MR, int NV, bool Tail, bool PackedA>
void tile(const Tile& t, size_t nn) {
  constexpr size_t L = V::kLanes;
  const typename V::Mask mask = V::mask(Tail ? nn - L * (NV - 1) : L);
  auto load = [&](const float* p, int v) { return (Tail && v == NV - 1) ? V::load(p + L * v, mask) : V::load(p + L * v); };
  typename V::Reg acc[MR][NV];
  alignas(64) float buf[MR][L * NV];  // the tile, transposed through memory (transC)
  auto cvec = [&](int r, int v) { return t.c + r * t.ldc + (v == 0 ? 0 : t.c1 + L * (v - 1)); };
  if (t.init == Init::C && t.transC) {
    for (size_t j = 0; j < nn; ++j)
      for (int r = 0; r < MR; ++r) buf[r][j] = t.c[j * t.ldc + r];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = load(buf[r], v);
  } else if (t.init == Init::C && t.cruns) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = t.cruns->load(t.c + r * t.ldc, v);
  } else if (t.init == Init::C) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v)
        acc[r][v] = (Tail && v == NV - 1) ? V::load(cvec(r, v), mask) : V::load(cvec(r, v));
  } else if (t.init == Init::Row) {
    for (int r = 0; r < MR; ++r) {
      const typename V::Reg c0 = V::set1(t.init_ptr[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = c0;
    }
  } else {
    for (int v = 0; v < NV; ++v) {
      const typename V::Reg c0 = t.init == Init::Col ? load(t.init_ptr, v) : V::zero();
      for (int r = 0; r < MR; ++r) acc[r][v] = c0;
    }
  }
  const size_t sam = PackedA ? 1 : t.sam, sak = PackedA ? static_cast<size_t>(kTileRows) : t.sak, ldb = t.ldb;
  const float* a = t.a;
  const float* b = t.b;
  // Unrolled by 4: the loop's own bookkeeping otherwise costs ~15% of the FMA rate (AVX2, one 6 x 16 tile on
  // L1-resident data, one core: 70 -> 82 GFLOP/s).
#pragma GCC unroll 4
  for (size_t k = 0; k < t.K; ++k, a += sak, b += ldb) {
    typename V::Reg bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b, v);
    for (int r = 0; r < MR; ++r) {
      // set1 of a load, not a broadcast builtin: GCC 12 keeps acc in registers only then (with the builtin it
      // stores every accumulator on every iteration).
      const typename V::Reg av = V::set1(a[r * sam]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(av, bv[v], acc[r][v]);
    }
  }
  if (t.cruns) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) t.cruns->store(t.c + r * t.ldc, v, acc[r][v]);
  } else if (!t.transC) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        if (Tail && v == NV - 1)
          V::store(cvec(r, v), mask, acc[r][v]);
        else
          V::store(cvec(r, v), acc[r][v]);
      }
  } else {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) V::store(&buf[r][L * v], acc[r][v]);
    for (size_t j = 0; j < nn; ++j) {
      float* c = t.c + j * t.ldc;
      for (int r = 0; r < MR; ++r) c[r] = buf[r][j];
    }
  }
}

// A tile of exactly mr x nn, mr <= MR, nn <= kTileCols.
template <int MR, bool PackedA = false>
void tile_any(const Tile& t, size_t mr, size_t nn) {
  if constexpr (MR > 1)
    if (mr < static_cast<size_t>(MR)) return tile_any<MR - 1, PackedA>(t, mr, nn);
  constexpr size_t L = Vec::kLanes;
  if (nn == 2 * L)
    tile<Vec, MR, 2, false, PackedA>(t, nn);
  else if (nn > L)
    tile<Vec, MR, 2, true, PackedA>(t, nn);
  else if (nn == L)
    tile<Vec, MR, 1, false, PackedA>(t, nn);
  else
    tile<Vec, MR, 1, true, PackedA>(t, nn);
}

// Copies B[0:K, 0:nn] (row stride ldb; the second vector's columns at b + b1) into a contiguous [K, kTileCols]
// panel, the columns past nn zero.
inline void pack_panel(const float* b, size_t ldb, size_t nn, size_t K, float* out, size_t b1 = Vec::kLanes) {
  constexpr size_t L = Vec::kLanes;
  const Vec::Mask m0 = Vec::mask(std::min(nn, L)), m1 = Vec::mask(nn > L ? nn - L : L);
  for (size_t k = 0; k < K; ++k, out += kTileCols) {
    const float* src = b + k * ldb;
    if (nn == kTileCols) {
      Vec::store(out, Vec::load(src));
      Vec::store(out + L, Vec::load(src + b1));
    } else {
      Vec::store(out, Vec::load(src, m0));
      Vec::store(out + L, nn > L ? Vec::load(src + b1, m1) : Vec::zero());
    }
  }
}

// The same panel from B's transpose: out[k kTileCols + j] = bt[j ldb + k] for k < K, j < nn (columns past nn zero),
// through 8 x 8 transposes in registers (the last block of depths masked).
inline void pack_panel_t(const float* bt, size_t ldb, size_t nn, size_t K, float* out) {
  for (size_t k0 = 0; k0 < K; k0 += 8) {
    const size_t kw = std::min<size_t>(8, K - k0);
    const __m256i km = simd::lane_mask(kw);
    for (size_t j0 = 0; j0 < kTileCols; j0 += 8) {
      __m256 r[8];
      for (size_t j = 0; j < 8; ++j) {
        const float* src = bt + (j0 + j) * ldb + k0;
        r[j] = j0 + j >= nn ? _mm256_setzero_ps() : kw == 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, km);
      }
      simd::transpose8(r);  // r[k]: depth k0 + k of columns j0 .. j0 + 7
      for (size_t k = 0; k < kw; ++k) _mm256_storeu_ps(out + (k0 + k) * kTileCols + j0, r[k]);
    }
  }
}

// The panel of columns [n0, n0 + nn) and depths [k0, k0 + K) of a product's B, segmented or not (g.cs), or given
// transposed (g.transB).
inline void pack_panel(const Gemm& g, size_t k0, size_t n0, size_t nn, size_t K, float* out) {
  constexpr size_t L = Vec::kLanes;
  if (g.transB) return pack_panel_t(g.B + n0 * g.ldb + k0, g.ldb, nn, K, out);
  const ColSeg& cs = g.cs;
  const float* b = g.B + k0 * g.ldb + cs.boff(n0);
  if (cs.b_plain()) return pack_panel(b, g.ldb, nn, K, out);
  if (cs.seg % L == 0) return pack_panel(b, g.ldb, nn, K, out, cs.boff(n0 + L) - cs.boff(n0));
  const SegRuns runs(n0, nn, cs.seg, [&](size_t n) { return cs.boff(n); });
  for (size_t k = 0; k < K; ++k, out += kTileCols, b += g.ldb) {
    Vec::store(out, runs.load(b, 0));
    Vec::store(out + L, runs.load(b, 1));  // no runs past nn: zero
  }
}

// ---- the blocked GEMM around the micro-kernel ------------------------------------------------------------
//
//   C(m, n) = init(m, n) + sum_{k < K} A(m, k) B(k, n)
//
// GotoBLAS's loop nest: column blocks of up to kNc columns, then depth blocks (balanced, at most kKc deep),
// then row blocks of up to kMcTiles tiles. Per (column block, depth block) the block of B is packed once into
// [kc, kTileCols] panels (all of them up front: measured faster than each just before its first use), per row
// block the block of A into [kc, kTileRows] micro-panels; then every panel of B meets every micro-panel of A,
// the rows innermost, so that a panel of B (kc x kTileCols) is reused across the row tiles from L1 (L2 at the
// AVX-512 depth) while the micro-panels of A (the block of A: kMcTiles kc kTileRows floats) come from L2.
// Between depth blocks the partial sums go through C exactly (Init::C: the FMA chain of an element continues
// from the float it stored), so every element of C is still one chain k = 0, 1, ..., K - 1: the blocking
// changes no value, and the variants may block differently. An operand that too few tiles would reuse to
// repay the copy is read in place instead (pack_panels_pays, pack_rows_pays). The product: Gemm (above).

#if VERIDL_ISA_AVX512
inline constexpr size_t kKc = 384;  // a panel of B: 48 KiB, an A micro-panel 18 KiB: L1 does not hold them, but
                                    // fewer passes through C paid more (192, 384, 768 measured: 384 best)
#else
inline constexpr size_t kKc = 320;  // a panel of B: 20 KiB, a micro-panel of A 7.5 KiB
#endif
inline constexpr size_t kNc = 512;                          // columns of a packed block of B
inline constexpr size_t kMcTiles = 192 / kTileRows;         // row tiles of a packed block of A (192 rows)

// The packing buffer gemm_tiles needs (floats).
inline size_t gemm_pack_floats(size_t K, bool transC) {
  const size_t kc = transC ? std::max<size_t>(K, 1) : std::min(std::max<size_t>(K, 1), kKc);
  return kc * (kNc + kMcTiles * static_cast<size_t>(kTileRows));
}

// Whether packing the panels of B pays, with `tiles` row tiles to meet them: from kPackMinTiles tiles on when
// B's rows are a multiple of 512 bytes apart (in place, the rows of a panel would fall into a few L1 sets and
// evict each other: dense's W with O = 256, 512, ...), else from kPackManyTiles on (fewer tiles do not repay
// the copy: conv2d's im2col products at 64 output channels, measured).
inline constexpr size_t kPackMinTiles = 4, kPackManyTiles = 8;
inline bool pack_panels_pays(const Gemm& g, size_t tiles) {
  return tiles >= kPackManyTiles || (tiles >= kPackMinTiles && g.ldb % 128 == 0);
}

// Whether packing the micro-panels of A pays, with `panels` panels of B to meet them: when its rows are
// contiguous in m (a copy of mr floats per k), from two panels on. Rows contiguous in k are read in place: a
// 12 x 16 transpose in registers into the micro-panels (~0.3 cycle a float) measured no faster overall (slower
// at ViT-Tiny's 3152-row products) than the tile reading the 12 rows in place.
inline bool pack_rows_pays(const Gemm& g, size_t panels) { return g.sam == 1 && panels >= 2; }

// Packs rows [m0, m0 + mr) and depths [k0, k1) of A, whose rows are contiguous in m (sam = 1), into a
// micro-panel out[(k - k0) kTileRows + (m - m0)].
inline void pack_rows(const Gemm& g, size_t m0, size_t mr, size_t k0, size_t k1, float* out) {
  static_assert(static_cast<size_t>(kTileRows) <= Vec::kLanes, "a row of a micro-panel is one (masked) vector");
  const Vec::Mask m = Vec::mask(mr);
  const float* src = g.A + m0 + k0 * g.sak;
  for (size_t k = k0; k < k1; ++k, src += g.sak, out += kTileRows) Vec::store(out, m, Vec::load(src, m));
}

// C for the row tiles [jm0, jm1) of mb (the rows of M in blocks of at most kTileRows) and the column panels
// [jn0, jn1) (kTileCols columns each), single-threaded; buf: gemm_pack_floats(K) floats of the caller's scratch.
inline void gemm_tiles(const Gemm& g, const Blocks& mb, size_t jm0, size_t jm1, size_t jn0, size_t jn1, float* buf) {
  if (jm0 >= jm1 || jn0 >= jn1) return;
  // K = 0 still writes the initial values. A transposed C is written once, whole K in one block (its tiles go
  // through memory element by element).
  const Blocks kb(std::max<size_t>(g.K, 1), g.transC ? std::max<size_t>(g.K, 1) : kKc);
  const size_t panels_per_block = kNc / kTileCols;
  // Segmented columns of B, and a transposed B, are always packed (a tile reads B's columns in one run).
  const bool pack_b = g.transB || !g.cs.b_plain() || pack_panels_pays(g, jm1 - jm0);
  const bool pack_a = pack_rows_pays(g, jn1 - jn0);
  const bool c_vectors = g.cs.c_plain() || g.cs.seg % Vec::kLanes == 0;  // C's segments hold whole vectors
  const Init init0 = (g.init == Init::Col || g.init == Init::Row) && !g.init_ptr ? Init::Zero : g.init;
  for (size_t jnb = jn0; jnb < jn1; jnb += panels_per_block) {
    const size_t jne = std::min(jn1, jnb + panels_per_block);
    for (size_t jk = 0; jk < kb.count; ++jk) {
      const size_t k0 = kb.lo(jk), k1 = std::min(g.K, kb.hi(jk)), kc = k1 - k0;
      const Init init = k0 > 0 ? Init::C : init0;
      float* bbuf = buf;
      float* abuf = buf + kc * kNc;
      if (pack_b)
        for (size_t jn = jnb; jn < jne; ++jn) {
          const size_t n0 = jn * kTileCols;
          pack_panel(g, k0, n0, std::min(kTileCols, g.N - n0), kc, bbuf + (jn - jnb) * kc * kTileCols);
        }
      for (size_t jmb = jm0; jmb < jm1; jmb += kMcTiles) {
        const size_t jme = std::min(jm1, jmb + kMcTiles);
        if (pack_a)
          for (size_t jm = jmb; jm < jme; ++jm)
            pack_rows(g, mb.lo(jm), mb.hi(jm) - mb.lo(jm), k0, k1, abuf + (jm - jmb) * kc * kTileRows);
        for (size_t jn = jnb; jn < jne; ++jn) {
          const size_t n0 = jn * kTileCols, nn = std::min(kTileCols, g.N - n0);
          Tile t{nullptr, g.sam, g.sak, nullptr, kTileCols, kc, nullptr, g.ldc, g.transC, init, nullptr};
          std::optional<SegRuns> cruns;
          if (!g.cs.c_plain()) {
            if (c_vectors) {
              t.c1 = g.cs.coff(n0 + Vec::kLanes) - g.cs.coff(n0);
            } else {
              cruns.emplace(n0, nn, g.cs.seg, [&](size_t n) { return g.cs.coff(n); });
              t.cruns = &*cruns;
            }
          }
          if (pack_b) {
            t.b = bbuf + (jn - jnb) * kc * kTileCols;
          } else {
            t.b = g.B + k0 * g.ldb + n0;
            t.ldb = g.ldb;
          }
          if (init == Init::Col) t.init_ptr = g.init_ptr + n0;
          for (size_t jm = jmb; jm < jme; ++jm) {
            const size_t m0 = mb.lo(jm), mr = mb.hi(jm) - m0;
            t.c = g.transC ? g.C + n0 * g.ldc + m0 : g.C + m0 * g.ldc + g.cs.coff(n0);
            if (init == Init::Row) t.init_ptr = g.init_ptr + m0;
            if (pack_a) {
              t.a = abuf + (jm - jmb) * kc * kTileRows;
              tile_any<kTileRows, true>(t, mr, nn);
            } else {
              t.a = g.A + m0 * g.sam + k0 * g.sak;
              tile_any<kTileRows, false>(t, mr, nn);
            }
          }
        }
      }
    }
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS::micro
#endif  // VERIDL_ISA_AVX2
