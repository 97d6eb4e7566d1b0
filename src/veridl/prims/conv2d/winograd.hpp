// Winograd F(4x4, 3x3) for the 3x3 stride-1 convolutions (the bulk of ResNet), forward, input gradient and weight
// gradient. Part of prims/conv2d/kernel.cpp: it is included there, inside the ISA region's anonymous namespace,
// after the file's scratch() and gemm() (the AVX2 and AVX-512 variants only; the portable variant keeps im2col).
//
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). A 4 x 4 block of outputs of a 3 x 3
// correlation is Y = A^T [(G g G^T) . (B^T d B)] A, d the 6 x 6 block of input under it, g the kernel, "." the
// elementwise product. The matrices are Cook-Toom's for the points 0, 1, -1, 2, -1/2 and infinity:
//   B^T = [1 3/2 -2 -3/2 1 0; 0 -1 -5/2 -1/2 1 0; 0 1 1/2 -5/2 1 0; 0 -1/2 -1 1/2 1 0; 0 2 -1 -2 1 0;
//          0 1 3/2 -2 -3/2 1]
//   G   = [1 0 0; -1/3 -1/3 -1/3; 1/3 -1/3 1/3; 1/15 2/15 4/15; -16/15 8/15 -4/15; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -1/2 0; 0 1 1 4 1/4 0; 0 1 -1 8 -1/8 1]
// (exact in real arithmetic; the kernels are tested against the direct loops). The usual points 0, +-1, +-2 gave
// 2-3.5x larger float32 errors in a simulation over 64 channels (Barabasz et al., "Error analysis and improving
// the accuracy of Winograd convolution for deep neural networks", 2020, on the choice of points). Summed
// over input channels, each of the 36 elements xi = (a, b) of the transformed block is one product over channels:
//   M[xi][o][t] = sum_c U[xi][c][o] V[xi][c][t]        U = G g G^T per (o, c), V = B^T d B per (c, tile t)
// 36 GEMMs of depth C instead of one of depth 9 C over 16 positions: 36 / (16 x 9) = 1/4 of the multiplies.
//
//   forward         U from W; V from x (tiles of the zero-padded input); y = A^T M A (+ bias), the tiles' rows
//                   and columns past OH, OW dropped.
//   input gradient  the same forward on dy, padded by 2 - pads, with the kernel flipped and transposed
//                   (W'[c][o][u][v] = W[o][c][2-u][2-v]): needs pads <= 2.
//   weight gradient the adjoint of the forward in W: dW[o][c] = G^T Z G, Z[xi][c][o] = sum_t V[xi][c][t] dM[xi][o][t]
//                   with dM = A dY A^T of dy's 4 x 4 tiles (zero past OH, OW): 36 GEMMs of depth B tiles.
//
// Rounding: the transforms' constants (up to 8 in A^T, 5 in B^T) spread values before the products and cancel
// after, so the results are further from the exact values than the im2col path's (2.5-15x its maximum error at
// the shapes of KernelsConvWinograd.TakesItsShapesAndOnlyThose, within the kernels' common tolerance,
// tests/kernel_testutil.hpp). VERIDL_WINOGRAD (kernels/isa.hpp) chooses where
// it runs: auto (default; see applies), 1 (wherever it can), 0 (nowhere).
//
// Determinism: forward and input gradient compute every output element once, by one thread, from the same
// operations whatever the thread count or the grouping of tiles (a GEMM element is one FMA chain over the
// channels; the transforms are per tile). The weight gradient's Z elements are each one FMA chain over all tiles
// in (image, tile row, tile column) order, continued through Z from one group of tiles to the next; the 36
// GEMMs of a group run in parallel, one thread each. The transforms are lanewise adds, subtractions and
// multiplications on vector registers (8 or 16 lanes), the same float operations on every lane in the AVX2 and
// AVX-512 variants, so the two give identical bits.

namespace wino {

constexpr size_t kXi = 36;  // elements of a transformed 6 x 6 block

// One Winograd correlation: B images of Cin planes H x W (zero outside) -> Cout planes OH x OW, output (i, j)
// reading input rows i - pt .. i - pt + 2 and columns j - pl .. j - pl + 2; TH x TW tiles of 4 x 4 per image.
struct Plan {
  size_t B, Cin, H, W, Cout, OH, OW;
  ptrdiff_t pt, pl;
  size_t TH, TW;
  Plan(size_t b, size_t cin, size_t h, size_t w, size_t cout, size_t oh, size_t ow, ptrdiff_t top, ptrdiff_t left)
      : B(b), Cin(cin), H(h), W(w), Cout(cout), OH(oh), OW(ow), pt(top), pl(left), TH((oh + 3) / 4),
        TW((ow + 3) / 4) {}
  size_t work() const { return B * Cin * Cout * OH * OW * 9; }
};

// Whether the shape takes this path. It can with one group, a 3 x 3 kernel, stride 1, pads of at most 2 (the input
// gradient pads dy by 2 - pad) and at least 16 channels in and out (kernels::Winograd::Always, VERIDL_WINOGRAD=1).
// By default (Auto) only where it pays: the transforms cost per tile in proportion to the channels and to the empty
// vector lanes of short tile rows (the lanes are a row's tiles, 8 at a time), the products save in proportion to the
// channels squared; so min(C, O) x min(tiles per row, 8) >= 512: 64 channels at 32 x 32 and up, 128 at 16 x 16,
// 256 at 8 x 8, 512 at 4 x 4 (the ResNets at 224 x 224 and 32 x 32, which it made 1.4-1.7x faster), not the 16-64
// channels of the small CNNs at 28 x 28 and below (measured 3-10% slower whole steps there with it).
bool applies(const ops::Conv2dShape& s) {
  const Winograd w = conv_winograd();
  if (w == Winograd::Off || s.G != 1 || s.KH != 3 || s.KW != 3 || s.stride != 1 || s.pad_top > 2 || s.pad_left > 2 ||
      s.pad_bottom > 2 || s.pad_right > 2 || s.C < 16 || s.O < 16 || s.OH() < 1 || s.OW() < 1)
    return false;
  return w == Winograd::Always || std::min(s.C, s.O) * std::min<size_t>((s.OW() + 3) / 4, 8) >= 512;
}

// ---- the 1-D transforms on vectors of tiles ----------------------------------------------------------------
//
// The tiles of a tile row are the vector lanes (micro::V8 or micro::Vec), so each operation below is the same float
// operation on every tile in either variant.

using micro::Vec;
using Reg = Vec::Reg;

// Lanes [0, n) of a vector of V, n <= V::kLanes (the kernel transforms' last vector of channels).
template <class V>
struct LanesOf {
  size_t n;
  typename V::Mask m;
  explicit LanesOf(size_t count) : n(count), m(V::mask(count == 0 ? 1 : count)) {}
  typename V::Reg load(const float* p) const { return n == V::kLanes ? V::load(p) : V::load(p, m); }
  void store(float* p, typename V::Reg v) const {
    if (n == V::kLanes)
      V::store(p, v);
    else
      V::store(p, m, v);
  }
};
using Lanes = LanesOf<Vec>;
template <class R>
inline R k(float c) {
  if constexpr (sizeof(R) == 32)
    return _mm256_set1_ps(c);
  else
    return Vec::set1(c);
}

// o = B^T d (6 values).
template <class R>
inline void bt6(const R d[6], R o[6]) {
  o[0] = ((d[0] - k<R>(2.0f) * d[2]) + d[4]) + k<R>(1.5f) * (d[1] - d[3]);
  o[1] = (d[4] - d[1]) - (k<R>(2.5f) * d[2] + k<R>(0.5f) * d[3]);
  o[2] = (d[4] + d[1]) + (k<R>(0.5f) * d[2] - k<R>(2.5f) * d[3]);
  o[3] = (d[4] - d[2]) + k<R>(0.5f) * (d[3] - d[1]);
  o[4] = (d[4] - d[2]) + k<R>(2.0f) * (d[1] - d[3]);
  o[5] = ((d[1] - k<R>(2.0f) * d[3]) + d[5]) + k<R>(1.5f) * (d[2] - d[4]);
}

// o = A^T m (4 values from 6).
template <class R>
inline void at6(const R m[6], R o[4]) {
  const R p12 = m[1] + m[2], d12 = m[1] - m[2];
  o[0] = (m[0] + p12) + (m[3] + m[4]);
  o[1] = d12 + (k<R>(2.0f) * m[3] - k<R>(0.5f) * m[4]);
  o[2] = p12 + (k<R>(4.0f) * m[3] + k<R>(0.25f) * m[4]);
  o[3] = (d12 + (k<R>(8.0f) * m[3] - k<R>(0.125f) * m[4])) + m[5];
}

// The adjoint of at6: o = A d (6 values from 4).
template <class R>
inline void a4(const R d[4], R o[6]) {
  const R pe = d[0] + d[2], po = d[1] + d[3];
  o[0] = d[0];
  o[1] = pe + po;
  o[2] = pe - po;
  o[3] = (d[0] + k<R>(4.0f) * d[2]) + (k<R>(2.0f) * d[1] + k<R>(8.0f) * d[3]);
  o[4] = (d[0] + k<R>(0.25f) * d[2]) - (k<R>(0.5f) * d[1] + k<R>(0.125f) * d[3]);
  o[5] = d[3];
}

// o = G g (6 values from 3).
template <class R>
inline void g3(const R g[3], R o[6]) {
  const R s = g[0] + g[2];
  o[0] = g[0];
  o[1] = (s + g[1]) * k<R>(-1.0f / 3.0f);
  o[2] = (s - g[1]) * k<R>(1.0f / 3.0f);
  o[3] = (g[0] + k<R>(2.0f) * g[1] + k<R>(4.0f) * g[2]) * k<R>(1.0f / 15.0f);
  o[4] = (k<R>(8.0f) * g[1] - k<R>(16.0f) * g[0] - k<R>(4.0f) * g[2]) * k<R>(1.0f / 15.0f);
  o[5] = g[2];
}

// The adjoint of g3: o = G^T z (3 values from 6).
template <class R>
inline void gt6(const R z[6], R o[3]) {
  const R d21 = z[2] - z[1];
  o[0] = (z[0] + d21 * k<R>(1.0f / 3.0f)) + (z[3] - k<R>(16.0f) * z[4]) * k<R>(1.0f / 15.0f);
  o[1] = (z[1] + z[2]) * k<R>(-1.0f / 3.0f) + (k<R>(2.0f) * z[3] + k<R>(8.0f) * z[4]) * k<R>(1.0f / 15.0f);
  o[2] = (d21 * k<R>(1.0f / 3.0f) + (z[3] - z[4]) * k<R>(4.0f / 15.0f)) + z[5];
}

// ---- tile rows ------------------------------------------------------------------------------------------

// Deinterleaves rows r0 .. r0 + nr - 1 of a plane (rows x cols, zero outside) by column phase:
// ph[(r - r0) 4 L + q L + t] = plane[r][4 t + q - c0] for t < L (r0, c0 may be negative). Each row goes through
// line (4 L floats, zero-padded), from which the four phases are one loop of 4-float groups (vectorized with
// permutes).
inline void deinterleave(const float* plane, size_t rows, size_t cols, ptrdiff_t r0, size_t nr, ptrdiff_t c0, size_t L,
                         float* __restrict ph, float* __restrict line) {
  const ptrdiff_t N = static_cast<ptrdiff_t>(4 * L);
  const ptrdiff_t a = std::clamp<ptrdiff_t>(c0, 0, N), e = std::clamp<ptrdiff_t>(static_cast<ptrdiff_t>(cols) + c0, a, N);
  std::fill(line, line + a, 0.0f);
  std::fill(line + e, line + N, 0.0f);
  for (size_t r = 0; r < nr; ++r) {
    float* __restrict pr = ph + r * 4 * L;
    const ptrdiff_t ir = r0 + static_cast<ptrdiff_t>(r);
    if (ir < 0 || ir >= static_cast<ptrdiff_t>(rows)) {
      std::fill(pr, pr + 4 * L, 0.0f);
      continue;
    }
    std::memcpy(line + a, plane + static_cast<size_t>(ir) * cols + (a - c0), static_cast<size_t>(e - a) * sizeof(float));
    float* __restrict p0 = pr;
    float* __restrict p1 = pr + L;
    float* __restrict p2 = pr + 2 * L;
    float* __restrict p3 = pr + 3 * L;
    for (size_t t = 0; t < L; ++t) {
      p0[t] = line[4 * t];
      p1[t] = line[4 * t + 1];
      p2[t] = line[4 * t + 2];
      p3[t] = line[4 * t + 3];
    }
  }
}

// The tile-row transforms below load and store whole vectors only (masked stores are slow: AVX2's vmaskmovps
// is microcoded on AMD): their buffers hold rows of TWp = TW rounded up to the vector width, and a store of tile
// row ty's last vector into V, M or dM runs past its TW tiles into the next tile row's, which is written after it
// (tile rows in order, images in order), or into the Pad floats that end every row of those buffers.
constexpr size_t kPad = 16;  // floats after each row of n tiles in V, M and dM (>= any vector width)
template <class V>
inline size_t padded(size_t TW) { return (TW + V::kLanes - 1) / V::kLanes * V::kLanes; }

// out[xi * ldxi + (ty - ty0) TW + t] = (B^T d B)[xi] for the tiles of tile rows [ty0, ty1) of one input plane (and
// junk in up to TWp - TW floats after the last of them). buf: input_floats(p, ty1 - ty0) floats.
inline size_t input_floats(const Plan& p, size_t nty) {
  const size_t TWp = p.TW + kPad;
  return (4 * nty + 2) * (4 * (TWp + 1) + 6 * TWp) + 4 * (TWp + 1);
}
template <class V>
inline void input_rows(const Plan& p, const float* plane, size_t ty0, size_t ty1, float* buf, float* out, size_t ldxi) {
  using R = typename V::Reg;
  const size_t TW = p.TW, TWp = padded<V>(TW), L = TWp + 1, nr = 4 * (ty1 - ty0) + 2;
  float* ph = buf;               // [nr rows][4 phases][L]
  float* Rb = buf + nr * 4 * L;  // [nr rows][6 b][TWp]: the rows' transforms
  deinterleave(plane, p.H, p.W, static_cast<ptrdiff_t>(4 * ty0) - p.pt, nr, p.pl, L, ph, Rb + nr * 6 * TWp);
  for (size_t r = 0; r < nr; ++r)
    for (size_t t0 = 0; t0 < TWp; t0 += V::kLanes) {  // column 4 t + j: phase j % 4, lane t + j / 4
      const float* q = ph + r * 4 * L + t0;
      const R d[6] = {V::load(q), V::load(q + L), V::load(q + 2 * L), V::load(q + 3 * L), V::load(q + 1),
                      V::load(q + L + 1)};
      R o[6];
      bt6(d, o);
      for (size_t b = 0; b < 6; ++b) V::store(Rb + (r * 6 + b) * TWp + t0, o[b]);
    }
  for (size_t ty = ty0; ty < ty1; ++ty)
    for (size_t t0 = 0; t0 < TWp; t0 += V::kLanes)
      for (size_t b = 0; b < 6; ++b) {
        const float* c = Rb + (4 * (ty - ty0) * 6 + b) * TWp + t0;  // row r of the tile at c + r 6 TWp
        R d[6], o[6];
        for (size_t r = 0; r < 6; ++r) d[r] = V::load(c + r * 6 * TWp);
        bt6(d, o);
        float* v = out + b * ldxi + (ty - ty0) * TW + t0;
        for (size_t a = 0; a < 6; ++a) V::store(v + a * 6 * ldxi, o[a]);
      }
}

// The output plane's rows 4 ty .. 4 ty + 3 (those < OH, columns < OW) = bias + A^T M A for the tile rows
// [ty0, ty1), M[xi * ldxi + (ty - ty0) TW + t] (read a vector at a time: up to TWp - TW floats past a tile row's
// tiles). buf: output_floats(p) floats.
inline size_t output_floats(const Plan& p) { return 16 * (p.TW + kPad); }
template <class V>
inline void output_rows(const Plan& p, const float* M, size_t ldxi, size_t ty0, size_t ty1, float bias, float* plane,
                        float* buf) {
  using R = typename V::Reg;
  const size_t TW = p.TW, TWp = padded<V>(TW);
  float* Y = buf;  // [4 i][4 j][TWp]
  const R bv = k<R>(bias);
  for (size_t ty = ty0; ty < ty1; ++ty) {
    for (size_t t0 = 0; t0 < TWp; t0 += V::kLanes) {
      R T1[4][6];  // (A^T M)[i][b]
      for (size_t b = 0; b < 6; ++b) {
        const float* m = M + b * ldxi + (ty - ty0) * TW + t0;  // element (a, b) at m + a 6 ldxi
        R mv[6], o[4];
        for (size_t a = 0; a < 6; ++a) mv[a] = V::load(m + a * 6 * ldxi);
        at6(mv, o);
        for (size_t i = 0; i < 4; ++i) T1[i][b] = o[i];
      }
      for (size_t i = 0; i < 4; ++i) {
        R o[4];
        at6(T1[i], o);
        for (size_t j = 0; j < 4; ++j) V::store(Y + (i * 4 + j) * TWp + t0, o[j] + bv);
      }
    }
    for (size_t i = 0; i < 4 && 4 * ty + i < p.OH; ++i) {
      float* __restrict yr = plane + (4 * ty + i) * p.OW;
      const float* __restrict yi = Y + i * 4 * TWp;
      const size_t full = p.OW / 4;
      for (size_t t = 0; t < full; ++t)
        for (size_t j = 0; j < 4; ++j) yr[4 * t + j] = yi[j * TWp + t];
      for (size_t j = 4 * full; j < p.OW; ++j) yr[j] = yi[(j & 3) * TWp + (j >> 2)];
    }
  }
}

// dM[xi * ldxi + (ty - ty0) TW + t] = (A dY A^T)[xi], dY the 4 x 4 tiles of tile rows [ty0, ty1) of one dy plane
// (zero past OH, OW; junk in up to TWp - TW floats after the last). buf: grad_floats(p) floats.
inline size_t grad_floats(const Plan& p) { return 20 * (p.TW + kPad); }
template <class V>
inline void grad_rows(const Plan& p, const float* plane, size_t ty0, size_t ty1, float* buf, float* dM, size_t ldxi) {
  using R = typename V::Reg;
  const size_t TW = p.TW, TWp = padded<V>(TW);
  float* ph = buf;  // [4 i][4 j][TWp]
  for (size_t ty = ty0; ty < ty1; ++ty) {
    deinterleave(plane, p.OH, p.OW, static_cast<ptrdiff_t>(4 * ty), 4, 0, TWp, ph, ph + 16 * TWp);
    for (size_t t0 = 0; t0 < TWp; t0 += V::kLanes) {
      R T[4][6];  // (dY A^T)[i][b]
      for (size_t i = 0; i < 4; ++i) {
        const float* q = ph + i * 4 * TWp + t0;
        const R d[4] = {V::load(q), V::load(q + TWp), V::load(q + 2 * TWp), V::load(q + 3 * TWp)};
        a4(d, T[i]);
      }
      for (size_t b = 0; b < 6; ++b) {
        const R d[4] = {T[0][b], T[1][b], T[2][b], T[3][b]};
        R o[6];
        a4(d, o);
        float* m = dM + b * ldxi + (ty - ty0) * TW + t0;
        for (size_t a = 0; a < 6; ++a) V::store(m + a * 6 * ldxi, o[a]);
      }
    }
  }
}

// ---- the kernel transforms ------------------------------------------------------------------------------

// U[xi][k][m] = (G g G^T)[xi] with, unflipped, k = c, m = o, g = W[o][c]; flipped (the input gradient), k = o,
// m = c, g[u][v] = W[o][c][2 - u][2 - v]. Vectorized over m, threaded over k.
inline void weight_transform(const float* W, size_t O, size_t C, bool flip, float* U) {
  const size_t K = flip ? O : C, Mm = flip ? C : O;
  for_chunks(K, K * Mm * 64, [&](size_t lo, size_t hi) {
    alignas(64) float g[9][Vec::kLanes];
    for (size_t kk = lo; kk < hi; ++kk)
      for (size_t m0 = 0; m0 < Mm; m0 += Vec::kLanes) {
        const Lanes ln(std::min(Vec::kLanes, Mm - m0));
        for (size_t l = 0; l < ln.n; ++l) {
          const size_t o = flip ? kk : m0 + l, c = flip ? m0 + l : kk;
          const float* w = W + (o * C + c) * 9;
          for (size_t e = 0; e < 9; ++e) g[e][l] = w[flip ? 8 - e : e];
        }
        Reg h[6][3];  // G g: [a][v]
        for (size_t v = 0; v < 3; ++v) {
          const Reg col[3] = {ln.load(g[v]), ln.load(g[3 + v]), ln.load(g[6 + v])};
          Reg o[6];
          g3(col, o);
          for (size_t a = 0; a < 6; ++a) h[a][v] = o[a];
        }
        for (size_t a = 0; a < 6; ++a) {
          Reg o[6];
          g3(h[a], o);
          for (size_t b = 0; b < 6; ++b) ln.store(U + ((a * 6 + b) * K + kk) * Mm + m0, o[b]);
        }
      }
  });
}

// dW[o][c][u][v] = (G^T Z G)[u][v] from Z[xi][c][o], vectorized over o, threaded over c.
inline void weight_grad_transform(const float* Z, size_t O, size_t C, float* dW) {
  for_chunks(C, C * O * 64, [&](size_t lo, size_t hi) {
    alignas(64) float w[9][Vec::kLanes];
    for (size_t c = lo; c < hi; ++c)
      for (size_t o0 = 0; o0 < O; o0 += Vec::kLanes) {
        const Lanes ln(std::min(Vec::kLanes, O - o0));
        Reg h[6][3];  // Z G: [a][v]
        for (size_t a = 0; a < 6; ++a) {
          Reg z[6], o[3];
          for (size_t b = 0; b < 6; ++b) z[b] = ln.load(Z + ((a * 6 + b) * C + c) * O + o0);
          gt6(z, o);
          for (size_t v = 0; v < 3; ++v) h[a][v] = o[v];
        }
        for (size_t v = 0; v < 3; ++v) {
          const Reg z[6] = {h[0][v], h[1][v], h[2][v], h[3][v], h[4][v], h[5][v]};
          Reg o[3];
          gt6(z, o);
          for (size_t u = 0; u < 3; ++u) Vec::store(w[u * 3 + v], o[u]);
        }
        for (size_t l = 0; l < ln.n; ++l) {
          float* d = dW + ((o0 + l) * C + c) * 9;
          for (size_t e = 0; e < 9; ++e) d[e] = w[e][l];
        }
      }
  });
}

// ---- the three passes -----------------------------------------------------------------------------------

// Calls f with a vector type for the tile rows: 8 lanes when a row has at most 8 tiles (28 x 28 and 32 x 32 planes
// and below: 16 lanes would be half empty), else Vec. The lanes only change how many tiles one instruction takes.
template <class F>
void rows_of(const Plan& p, F&& f) {
  if constexpr (Vec::kLanes > 8)
    if (p.TW <= 8) return f(micro::V8{});
  f(Vec{});
}

// Groups of consecutive tile rows (over images and rows: row r is image r / TH's tile row r % TH) for the
// threads: as many rows as keep a group's transformed input within 2 Mi floats and at most 512 tiles, and at
// least as many groups as threads. Any grouping gives the same values (see Determinism above).
struct RowGroups {
  size_t per = 1, count = 0;
  RowGroups(const Plan& p, size_t floats_per_tile) {
    const size_t rows = p.B * p.TH;
    const size_t fit = std::max<size_t>(
        1, std::min<size_t>(512 / p.TW, (size_t(1) << 21) / std::max<size_t>(floats_per_tile * p.TW, 1)));
    const size_t threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
    per = std::max<size_t>(1, std::min(fit, (rows + threads - 1) / threads));
    count = (rows + per - 1) / per;
  }
};

// y = the correlation of p, from the transformed kernel U [36][Cin][Cout] (bias: nullptr or Cout values).
// Scratch slots 0 (V), 1 (M), 4 (transform rows).
inline void correlate(const Plan& p, const float* x, const float* U, const float* bias, float* y) {
  const RowGroups rg(p, kXi * p.Cin);
  const size_t rows = p.B * p.TH, inHW = p.H * p.W, outHW = p.OH * p.OW;
  for_chunks(rg.count, p.work(), [&](size_t lo, size_t hi) {
    for (size_t gi = lo; gi < hi; ++gi) {
      const size_t r0 = gi * rg.per, r1 = std::min(rows, r0 + rg.per), n = (r1 - r0) * p.TW, nl = n + kPad;
      float* V = scratch(0, kXi * p.Cin * nl);   // [36][Cin][nl]
      float* M = scratch(1, kXi * p.Cout * nl);  // [36][Cout][nl]
      float* buf = scratch(4, std::max(input_floats(p, std::min(p.TH, r1 - r0)), output_floats(p)));
      // The rows of the group image by image: [r, e) within image r / TH.
      auto images = [&](auto&& f) {
        for (size_t r = r0; r < r1;) {
          const size_t bi = r / p.TH, e = std::min(r1, (bi + 1) * p.TH);
          f(bi, r % p.TH, e - bi * p.TH, (r - r0) * p.TW);
          r = e;
        }
      };
      for (size_t c = 0; c < p.Cin; ++c)
        images([&](size_t bi, size_t ty0, size_t ty1, size_t col) {
          rows_of(p, [&](auto v) {
            input_rows<decltype(v)>(p, x + (bi * p.Cin + c) * inHW, ty0, ty1, buf, V + c * nl + col, p.Cin * nl);
          });
        });
      for (size_t xi = 0; xi < kXi; ++xi)
        gemm(Gemm{p.Cout, n, p.Cin, U + xi * p.Cin * p.Cout, 1, p.Cout, V + xi * p.Cin * nl, nl, M + xi * p.Cout * nl,
                  nl, nullptr, Init::Zero});
      for (size_t o = 0; o < p.Cout; ++o)
        images([&](size_t bi, size_t ty0, size_t ty1, size_t col) {
          rows_of(p, [&](auto v) {
            output_rows<decltype(v)>(p, M + o * nl + col, p.Cout * nl, ty0, ty1, bias ? bias[o] : 0.0f,
                                     y + (bi * p.Cout + o) * outHW, buf);
          });
        });
    }
  });
}

void forward(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y) {
  float* U = scratch(5, kXi * s.C * s.O);
  weight_transform(W, s.O, s.C, false, U);
  correlate(Plan(s.B, s.C, s.H, s.W, s.O, s.OH(), s.OW(), static_cast<ptrdiff_t>(s.pad_top),
                 static_cast<ptrdiff_t>(s.pad_left)),
            x, U, s.bias ? b : nullptr, y);
}

void backward_input(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx) {
  float* U = scratch(5, kXi * s.C * s.O);
  weight_transform(W, s.O, s.C, true, U);
  correlate(Plan(s.B, s.O, s.OH(), s.OW(), s.C, s.H, s.W, 2 - static_cast<ptrdiff_t>(s.pad_top),
                 2 - static_cast<ptrdiff_t>(s.pad_left)),
            dy, U, nullptr, dx);
}

// Groups of tile rows one after the other (each: its transforms threaded over planes, then the 36 products one
// per thread, accumulating into Z), each group's V, dM and dM^T within ~4 Mi floats.
void backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW) {
  const Plan p(s.B, s.C, s.H, s.W, s.O, s.OH(), s.OW(), static_cast<ptrdiff_t>(s.pad_top),
               static_cast<ptrdiff_t>(s.pad_left));
  const size_t rows = p.B * p.TH, inHW = p.H * p.W, outHW = p.OH * p.OW;
  const size_t per_row = kXi * p.TW * (p.Cin + 2 * p.Cout);
  const size_t per = std::max<size_t>(1, (size_t(1) << 22) / per_row);
  const size_t nmax = std::min(rows, per) * p.TW;
  float* Z = scratch(5, kXi * p.Cin * p.Cout);   // [36][Cin][Cout]
  float* V_ = scratch(0, kXi * p.Cin * (nmax + kPad));    // [36][Cin][nl]
  float* dM = scratch(1, kXi * p.Cout * (nmax + kPad));   // [36][Cout][nl]
  float* dMT = scratch(2, kXi * p.Cout * nmax);           // [36][n][Cout]
  for (size_t r0 = 0; r0 < rows; r0 += per) {
    const size_t r1 = std::min(rows, r0 + per), n = (r1 - r0) * p.TW, nl = n + kPad;
    for_chunks(p.Cin + p.Cout, p.work(), [&](size_t lo, size_t hi) {
      float* buf = scratch(4, std::max(input_floats(p, std::min(p.TH, r1 - r0)), grad_floats(p)));
      for (size_t u = lo; u < hi; ++u)
        for (size_t r = r0; r < r1;) {
          const size_t bi = r / p.TH, e = std::min(r1, (bi + 1) * p.TH), ty0 = r % p.TH, ty1 = e - bi * p.TH;
          const size_t col = (r - r0) * p.TW;
          rows_of(p, [&](auto v) {
            using V = decltype(v);
            if (u < p.Cin)
              input_rows<V>(p, x + (bi * p.Cin + u) * inHW, ty0, ty1, buf, V_ + u * nl + col, p.Cin * nl);
            else
              grad_rows<V>(p, dy + (bi * p.Cout + (u - p.Cin)) * outHW, ty0, ty1, buf, dM + (u - p.Cin) * nl + col,
                           p.Cout * nl);
          });
          r = e;
        }
    });
    for_chunks(kXi, p.work(), [&](size_t lo, size_t hi) {
      for (size_t xi = lo; xi < hi; ++xi) {
        float* t = dMT + xi * n * p.Cout;
        transpose_positions(dM + xi * p.Cout * nl, nl, n, 0, p.Cout, t, p.Cout);
        gemm(Gemm{p.Cin, p.Cout, n, V_ + xi * p.Cin * nl, nl, 1, t, p.Cout, Z + xi * p.Cin * p.Cout, p.Cout, nullptr,
                  r0 == 0 ? Init::Zero : Init::C});
      }
    });
  }
  weight_grad_transform(Z, p.Cout, p.Cin, dW);
}

}  // namespace wino
