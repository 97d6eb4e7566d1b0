// The register-tiled GEMM micro-kernel of the float kernels (dense and conv2d), for the AVX2 and AVX-512
// variants. Include it after kernels/target.hpp (it is compiled in, and for, each variant's region).
//
//   C(r, j) = init(r, j) + sum_{k < K} A(r, k) B(k, j)      r < MR rows, j < nn columns of one tile
//
// A is read through two strides (so one kernel serves x W, x^T dy and the im2col products), B row-major with
// the vector lanes along j; each row of A is broadcast and multiplied into NV vectors of B (NV MR
// accumulators). The AVX2 variant uses 8-lane vectors in a 6 x 16 tile (12 of its 16 registers accumulate),
// the AVX-512 variant 16-lane vectors in a 12 x 32 tile (24 of its 32 registers). Either way every element of
// C is accumulated by one FMA chain, k = 0, 1, ..., K - 1 from its initial value: its value depends on the
// shape and on how the caller blocks k, never on the vector width, so the two variants give identical bits
// (tests/test_isa.cpp, and the bit pins under VERIDL_ISA=avx2 and =avx512).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#ifndef VERIDL_ISA_NS
#error "kernels/gemm_tile.hpp: include kernels/target.hpp first"
#endif

#include "veridl/kernels/simd.hpp"

#if VERIDL_ISA_AVX2
namespace veridl::kernels::VERIDL_ISA_NS::micro {

// 8 lanes (AVX2). A tail mask is a lane mask vector.
struct V8 {
  using Reg = __m256;
  using Mask = __m256i;
  static constexpr size_t kLanes = 8;
  static Mask mask(size_t n) { return simd::lane_mask(n); }  // lanes [0, n) on, n in [1, 8]
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
struct Blocks {
  size_t extent, count;
  Blocks(size_t e, size_t max_rows) : extent(e), count(e == 0 ? 0 : (e + max_rows - 1) / max_rows) {}
  size_t lo(size_t j) const { return extent * j / count; }
  size_t hi(size_t j) const { return extent * (j + 1) / count; }
};

// Where a tile's partial sums start.
enum class Init {
  Zero,  // 0
  Col,   // init[j] (a bias per column)
  Row,   // init[r] (a bias per row)
  C      // the values already in C (a later depth block, or accumulating into C)
};

struct Tile {
  const float* a;  // A(r, k) = a[r * sam + k * sak]
  size_t sam, sak;
  const float* b;  // B(k, j) = b[k * ldb + j]
  size_t ldb;
  size_t K;
  float* c;  // C(r, j) = c[r * ldc + j], or c[j * ldc + r] when transC
  size_t ldc;
  bool transC;
  Init init;
  const float* init_ptr;  // Col: init_ptr[j]; Row: init_ptr[r]
};

// One tile of exactly MR rows and nn columns, nn in (L (NV - 1), L NV] (Tail: nn < L NV, the last vector masked).
template <class V, int MR, int NV, bool Tail>
void tile(const Tile& t, size_t nn) {
  constexpr size_t L = V::kLanes;
  const typename V::Mask mask = V::mask(Tail ? nn - L * (NV - 1) : L);
  auto load = [&](const float* p, int v) { return (Tail && v == NV - 1) ? V::load(p + L * v, mask) : V::load(p + L * v); };
  typename V::Reg acc[MR][NV];
  if (t.init == Init::C) {  // (never with transC)
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = load(t.c + r * t.ldc, v);
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
  const size_t sam = t.sam, sak = t.sak, ldb = t.ldb;
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
  if (!t.transC) {
    for (int r = 0; r < MR; ++r) {
      float* c = t.c + r * t.ldc;
      for (int v = 0; v < NV; ++v) {
        if (Tail && v == NV - 1)
          V::store(c + L * v, mask, acc[r][v]);
        else
          V::store(c + L * v, acc[r][v]);
      }
    }
  } else {
    alignas(64) float buf[MR][L * NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) V::store(&buf[r][L * v], acc[r][v]);
    for (size_t j = 0; j < nn; ++j) {
      float* c = t.c + j * t.ldc;
      for (int r = 0; r < MR; ++r) c[r] = buf[r][j];
    }
  }
}

// A tile of exactly mr x nn, mr <= MR, nn <= kTileCols.
template <int MR>
void tile_any(const Tile& t, size_t mr, size_t nn) {
  if constexpr (MR > 1)
    if (mr < static_cast<size_t>(MR)) return tile_any<MR - 1>(t, mr, nn);
  constexpr size_t L = Vec::kLanes;
  if (nn == 2 * L)
    tile<Vec, MR, 2, false>(t, nn);
  else if (nn > L)
    tile<Vec, MR, 2, true>(t, nn);
  else if (nn == L)
    tile<Vec, MR, 1, false>(t, nn);
  else
    tile<Vec, MR, 1, true>(t, nn);
}

// Copies B[0:K, 0:nn] (row stride ldb) into a contiguous [K, kTileCols] panel, the columns past nn zero.
inline void pack_panel(const float* b, size_t ldb, size_t nn, size_t K, float* out) {
  constexpr size_t L = Vec::kLanes;
  const Vec::Mask m0 = Vec::mask(std::min(nn, L)), m1 = Vec::mask(nn > L ? nn - L : L);
  for (size_t k = 0; k < K; ++k, out += kTileCols) {
    const float* src = b + k * ldb;
    if (nn == kTileCols) {
      Vec::store(out, Vec::load(src));
      Vec::store(out + L, Vec::load(src + L));
    } else {
      Vec::store(out, Vec::load(src, m0));
      Vec::store(out + L, nn > L ? Vec::load(src + L, m1) : Vec::zero());
    }
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS::micro
#endif  // VERIDL_ISA_AVX2
