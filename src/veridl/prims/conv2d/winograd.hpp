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
//   M[xi][t][o] = sum_c V[xi][t][c] U[xi][c][o]        U = G g G^T per (o, c), V = B^T d B per (tile t, c)
// 36 GEMMs of depth C instead of one of depth 9 C over 16 positions: 36 / (16 x 9) = 1/4 of the multiplies.
// V, M and dM keep a tile's channels contiguous ([36][tile][channel]) and the transforms run on vectors of
// channels, read from channel-minor copies of the planes' rows (see "channel-minor strips" below).
//
//   forward         U from W; V from x (tiles of the zero-padded input); y = A^T M A (+ bias), the tiles' rows
//                   and columns past OH, OW dropped.
//   input gradient  the same forward on dy, padded by 2 - pads, with the kernel flipped and transposed
//                   (W'[c][o][u][v] = W[o][c][2-u][2-v]): needs pads <= 2.
//   weight gradient the adjoint of the forward in W: dW[o][c] = G^T Z G, Z[xi][c][o] = sum_t V[xi][t][c] dM[xi][t][o]
//                   with dM = A dY A^T of dy's 4 x 4 tiles (zero past OH, OW): 36 GEMMs of depth B tiles.
//
// Rounding: the transforms' constants (up to 8 in A^T, 5 in B^T) spread values before the products and cancel
// after, so the results are further from the exact values than the im2col path's (2.5-15x its maximum error at
// the shapes of KernelsConvWinograd.TakesItsShapesAndOnlyThose, within the kernels' common tolerance,
// tests/kernel_testutil.hpp). VERIDL_WINOGRAD=0 (kernels/isa.hpp) turns it off.
//
// Determinism: forward and input gradient compute every output element once, by one thread, from the same
// operations whatever the thread count or the grouping of tiles (a GEMM element is one FMA chain over the
// channels; the transforms are per tile and channel). The weight gradient's Z elements are each one FMA chain
// over all tiles in (image, tile row, tile column) order, continued through Z from one group of tiles to the next;
// the 36 GEMMs of a group run in parallel, one thread each. The transforms are lanewise adds, subtractions and
// multiplications on vectors of channels (8 or 16 lanes), the same float operations on every channel in the AVX2
// and AVX-512 variants, so the two give identical bits; and the same operations, in the same order, as when the
// lanes were a tile row's tiles (before 2026-12-06), so the bits did not change with the layout either.

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

// Whether the shape takes this path: one group, a 3 x 3 kernel, stride 1, pads of at most 2 (the input gradient
// pads dy by 2 - pad) and at least 16 channels in and out, unless VERIDL_WINOGRAD=0 (kernels::Winograd::Off).
// Faster in every shipped spec timed both ways (docs/kernels.md: the four small CNNs, 16 to 128 channels on 32 x 32
// to 4 x 4 planes, whole train steps 9-41% shorter than with im2col + GEMM in the AVX2 and AVX-512 variants; the
// ResNets at 224 x 224 and 32 x 32, which took it already), since the transforms run on vectors of channels; when
// their lanes were a tile row's tiles, short rows left most lanes empty and a threshold on channels x tiles per
// row kept it off the small CNNs.
bool applies(const ops::Conv2dShape& s) {
  return conv_winograd() == Winograd::On && s.G == 1 && s.KH == 3 && s.KW == 3 && s.stride == 1 && s.pad_top <= 2 &&
         s.pad_left <= 2 && s.pad_bottom <= 2 && s.pad_right <= 2 && s.C >= 16 && s.O >= 16 && s.OH() >= 1 &&
         s.OW() >= 1;
}

// ---- the 1-D transforms on vectors of channels ----------------------------------------------------------
//
// The lanes are channels (micro::Vec: 8 on AVX2, 16 on AVX-512), so each operation below is the same float
// operation on every channel in either variant.

using micro::Vec;
using Reg = Vec::Reg;

// Lanes [0, n) of a vector, n <= Vec::kLanes (the kernel transforms' last vector of channels).
struct Lanes {
  size_t n;
  Vec::Mask m;
  explicit Lanes(size_t count) : n(count), m(Vec::mask(count == 0 ? 1 : count)) {}
  Reg load(const float* p) const { return n == Vec::kLanes ? Vec::load(p) : Vec::load(p, m); }
  void store(float* p, Reg v) const {
    if (n == Vec::kLanes)
      Vec::store(p, v);
    else
      Vec::store(p, m, v);
  }
};
inline Reg k(float c) { return Vec::set1(c); }

// o = B^T d (6 values).
inline void bt6(const Reg d[6], Reg o[6]) {
  o[0] = ((d[0] - k(2.0f) * d[2]) + d[4]) + k(1.5f) * (d[1] - d[3]);
  o[1] = (d[4] - d[1]) - (k(2.5f) * d[2] + k(0.5f) * d[3]);
  o[2] = (d[4] + d[1]) + (k(0.5f) * d[2] - k(2.5f) * d[3]);
  o[3] = (d[4] - d[2]) + k(0.5f) * (d[3] - d[1]);
  o[4] = (d[4] - d[2]) + k(2.0f) * (d[1] - d[3]);
  o[5] = ((d[1] - k(2.0f) * d[3]) + d[5]) + k(1.5f) * (d[2] - d[4]);
}

// o = A^T m (4 values from 6).
inline void at6(const Reg m[6], Reg o[4]) {
  const Reg p12 = m[1] + m[2], d12 = m[1] - m[2];
  o[0] = (m[0] + p12) + (m[3] + m[4]);
  o[1] = d12 + (k(2.0f) * m[3] - k(0.5f) * m[4]);
  o[2] = p12 + (k(4.0f) * m[3] + k(0.25f) * m[4]);
  o[3] = (d12 + (k(8.0f) * m[3] - k(0.125f) * m[4])) + m[5];
}

// The adjoint of at6: o = A d (6 values from 4).
inline void a4(const Reg d[4], Reg o[6]) {
  const Reg pe = d[0] + d[2], po = d[1] + d[3];
  o[0] = d[0];
  o[1] = pe + po;
  o[2] = pe - po;
  o[3] = (d[0] + k(4.0f) * d[2]) + (k(2.0f) * d[1] + k(8.0f) * d[3]);
  o[4] = (d[0] + k(0.25f) * d[2]) - (k(0.5f) * d[1] + k(0.125f) * d[3]);
  o[5] = d[3];
}

// o = G g (6 values from 3).
inline void g3(const Reg g[3], Reg o[6]) {
  const Reg s = g[0] + g[2];
  o[0] = g[0];
  o[1] = (s + g[1]) * k(-1.0f / 3.0f);
  o[2] = (s - g[1]) * k(1.0f / 3.0f);
  o[3] = (g[0] + k(2.0f) * g[1] + k(4.0f) * g[2]) * k(1.0f / 15.0f);
  o[4] = (k(8.0f) * g[1] - k(16.0f) * g[0] - k(4.0f) * g[2]) * k(1.0f / 15.0f);
  o[5] = g[2];
}

// The adjoint of g3: o = G^T z (3 values from 6).
inline void gt6(const Reg z[6], Reg o[3]) {
  const Reg d21 = z[2] - z[1];
  o[0] = (z[0] + d21 * k(1.0f / 3.0f)) + (z[3] - k(16.0f) * z[4]) * k(1.0f / 15.0f);
  o[1] = (z[1] + z[2]) * k(-1.0f / 3.0f) + (k(2.0f) * z[3] + k(8.0f) * z[4]) * k(1.0f / 15.0f);
  o[2] = (d21 * k(1.0f / 3.0f) + (z[3] - z[4]) * k(4.0f / 15.0f)) + z[5];
}

// ---- channel-minor strips ---------------------------------------------------------------------------------
//
// The transforms run on vectors of channels (Vec: 8 lanes on AVX2, 16 on AVX-512) whatever the plane's size, so
// no lane is empty on small planes: a 4 x 4 plane is one tile, a row of 8 tiles half of a 16-lane vector. The
// planes' rows go through channel-minor strips (position-major, Cp floats per position: the channels rounded up
// to the vector width; lanes past the channels hold whatever they hold and feed only lanes past the channels),
// and V, M and dM are [36][tile][channel]: V^T U, and V^T dM for the weight gradient, are plain GEMMs.

inline size_t lanes_up(size_t n) { return (n + Vec::kLanes - 1) / Vec::kLanes * Vec::kLanes; }

// out[j * ldo + i] = in[i * ldi + j] for i < rows, j < cols: 8 x 8 blocks through registers, the edges scalar.
inline void transpose(const float* __restrict in, size_t ldi, size_t rows, size_t cols, float* __restrict out,
                      size_t ldo) {
  const size_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
  for (size_t i0 = 0; i0 < r8; i0 += 8) {
    for (size_t j0 = 0; j0 < c8; j0 += 8) {
      __m256 r[8];
      for (size_t i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + (i0 + i) * ldi + j0);
      simd::transpose8(r);
      for (size_t j = 0; j < 8; ++j) _mm256_storeu_ps(out + (j0 + j) * ldo + i0, r[j]);
    }
    for (size_t j = c8; j < cols; ++j)
      for (size_t i = i0; i < i0 + 8; ++i) out[j * ldo + i] = in[i * ldi + j];
  }
  for (size_t i = r8; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) out[j * ldo + i] = in[i * ldi + j];
}

// dst[(r nc + j) Cp + c] = src[c][r0 + r][c0 + j] for r < nr, j < nc, c < C (zero outside the rows x cols planes of
// src, which are rows x cols apart; r0, c0 may be negative).
inline void to_strip(const float* src, size_t C, size_t rows, size_t cols, ptrdiff_t r0, size_t nr, ptrdiff_t c0,
                     size_t nc, size_t Cp, float* dst) {
  const ptrdiff_t a = std::clamp<ptrdiff_t>(-c0, 0, static_cast<ptrdiff_t>(nc));
  const ptrdiff_t e = std::clamp<ptrdiff_t>(static_cast<ptrdiff_t>(cols) - c0, a, static_cast<ptrdiff_t>(nc));
  for (size_t r = 0; r < nr; ++r) {
    float* d = dst + r * nc * Cp;
    const ptrdiff_t ir = r0 + static_cast<ptrdiff_t>(r);
    if (ir < 0 || ir >= static_cast<ptrdiff_t>(rows)) {
      std::fill(d, d + nc * Cp, 0.0f);
      continue;
    }
    std::fill(d, d + a * Cp, 0.0f);
    std::fill(d + e * Cp, d + nc * Cp, 0.0f);
    transpose(src + static_cast<size_t>(ir) * cols + static_cast<size_t>(a + c0), rows * cols, C,
              static_cast<size_t>(e - a), d + a * Cp, Cp);
  }
}

// Calls f(image, first tile row, end tile row, index of the first tile from r0) for the rows [r0, r1) of the
// tile rows of all images (row r is image r / TH's tile row r % TH), image by image.
template <class F>
void segments(const Plan& p, size_t r0, size_t r1, F&& f) {
  for (size_t r = r0; r < r1;) {
    const size_t bi = r / p.TH, e = std::min(r1, (bi + 1) * p.TH);
    f(bi, r % p.TH, e - bi * p.TH, (r - r0) * p.TW);
    r = e;
  }
}

// V[xi * ldxi + t Cp + c] = (B^T d B)[xi] for the tiles t = ty TW + tx of the tile rows [ty0, ty1) of one image
// (t from 0), d the 6 x 6 block of input under tile t, channels c < Cp (x: that image's Cin planes).
// buf: input_floats(p, ty1 - ty0) floats.
inline size_t input_floats(const Plan& p, size_t nty) { return (4 * nty + 2) * (4 * p.TW + 2) * lanes_up(p.Cin); }
inline void input_tiles(const Plan& p, const float* x, size_t ty0, size_t ty1, float* buf, float* V, size_t ldxi) {
  const size_t nc = 4 * p.TW + 2, Cp = lanes_up(p.Cin);
  to_strip(x, p.Cin, p.H, p.W, static_cast<ptrdiff_t>(4 * ty0) - p.pt, 4 * (ty1 - ty0) + 2, -p.pl, nc, Cp, buf);
  for (size_t ty = 0; ty < ty1 - ty0; ++ty)
    for (size_t tx = 0; tx < p.TW; ++tx)
      for (size_t c0 = 0; c0 < Cp; c0 += Vec::kLanes) {
        const float* s = buf + (4 * ty * nc + 4 * tx) * Cp + c0;  // d[r][j] at s + (r nc + j) Cp
        Reg T[6][6];                                              // (d B)[r][b]
        for (size_t r = 0; r < 6; ++r) {
          const Reg d[6] = {Vec::load(s + (r * nc) * Cp), Vec::load(s + (r * nc + 1) * Cp),
                            Vec::load(s + (r * nc + 2) * Cp), Vec::load(s + (r * nc + 3) * Cp),
                            Vec::load(s + (r * nc + 4) * Cp), Vec::load(s + (r * nc + 5) * Cp)};
          bt6(d, T[r]);
        }
        float* v = V + (ty * p.TW + tx) * Cp + c0;
        for (size_t b = 0; b < 6; ++b) {
          const Reg d[6] = {T[0][b], T[1][b], T[2][b], T[3][b], T[4][b], T[5][b]};
          Reg o[6];
          bt6(d, o);
          for (size_t a = 0; a < 6; ++a) Vec::store(v + (a * 6 + b) * ldxi, o[a]);
        }
      }
}

// One image's output rows 4 ty .. 4 ty + 3 (those < OH, columns < OW) = bias + A^T M A for the tile rows
// [ty0, ty1), M[xi * ldxi + t Op + o] (t from 0; y: that image's Cout planes, bias: Op floats).
// buf: output_floats(p) floats.
inline size_t output_floats(const Plan& p) { return 16 * p.TW * lanes_up(p.Cout); }
inline void output_tiles(const Plan& p, const float* M, size_t ldxi, size_t ty0, size_t ty1, const float* bias,
                         float* y, float* buf) {
  const size_t Op = lanes_up(p.Cout), nw = 4 * p.TW;
  for (size_t ty = ty0; ty < ty1; ++ty) {
    for (size_t tx = 0; tx < p.TW; ++tx)
      for (size_t o0 = 0; o0 < Op; o0 += Vec::kLanes) {
        const float* m = M + ((ty - ty0) * p.TW + tx) * Op + o0;  // element xi at m + xi ldxi
        const Reg bv = Vec::load(bias + o0);
        Reg T1[4][6];  // (A^T M)[i][b]
        for (size_t b = 0; b < 6; ++b) {
          Reg mv[6], o[4];
          for (size_t a = 0; a < 6; ++a) mv[a] = Vec::load(m + (a * 6 + b) * ldxi);
          at6(mv, o);
          for (size_t i = 0; i < 4; ++i) T1[i][b] = o[i];
        }
        for (size_t i = 0; i < 4; ++i) {
          Reg o[4];
          at6(T1[i], o);
          for (size_t j = 0; j < 4; ++j) Vec::store(buf + (i * nw + 4 * tx + j) * Op + o0, o[j] + bv);
        }
      }
    for (size_t i = 0; i < 4 && 4 * ty + i < p.OH; ++i)
      transpose(buf + i * nw * Op, Op, p.OW, p.Cout, y + (4 * ty + i) * p.OW, p.OH * p.OW);
  }
}

// dM[xi * ldxi + t Op + o] = (A dY A^T)[xi], dY the 4 x 4 tiles t = ty TW + tx of the tile rows [ty0, ty1) of one
// image's dy (t from 0; zero past OH, OW). buf: grad_floats(p, ty1 - ty0) floats.
inline size_t grad_floats(const Plan& p, size_t nty) { return 16 * nty * p.TW * lanes_up(p.Cout); }
inline void grad_tiles(const Plan& p, const float* dy, size_t ty0, size_t ty1, float* buf, float* dM, size_t ldxi) {
  const size_t nw = 4 * p.TW, Op = lanes_up(p.Cout);
  to_strip(dy, p.Cout, p.OH, p.OW, static_cast<ptrdiff_t>(4 * ty0), 4 * (ty1 - ty0), 0, nw, Op, buf);
  for (size_t ty = 0; ty < ty1 - ty0; ++ty)
    for (size_t tx = 0; tx < p.TW; ++tx)
      for (size_t o0 = 0; o0 < Op; o0 += Vec::kLanes) {
        const float* s = buf + (4 * ty * nw + 4 * tx) * Op + o0;  // dY[i][j] at s + (i nw + j) Op
        Reg T[4][6];                                              // (dY A^T)[i][b]
        for (size_t i = 0; i < 4; ++i) {
          const Reg d[4] = {Vec::load(s + (i * nw) * Op), Vec::load(s + (i * nw + 1) * Op),
                            Vec::load(s + (i * nw + 2) * Op), Vec::load(s + (i * nw + 3) * Op)};
          a4(d, T[i]);
        }
        float* m = dM + (ty * p.TW + tx) * Op + o0;
        for (size_t b = 0; b < 6; ++b) {
          const Reg d[4] = {T[0][b], T[1][b], T[2][b], T[3][b]};
          Reg o[6];
          a4(d, o);
          for (size_t a = 0; a < 6; ++a) Vec::store(m + (a * 6 + b) * ldxi, o[a]);
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

// Groups of consecutive tile rows (over images and rows: row r is image r / TH's tile row r % TH) for the
// threads: as many rows as keep a group's transformed input within kGroupFloats (its V and M then stay in the
// core's L2 between the transform, the 36 products and the inverse transform), but at least kGroupMinTiles tiles
// (the 36 products' rows: fewer re-read the transformed kernel, Cin x Cout floats a product, too often for wide
// layers), at most 512 tiles and 2 Mi floats, and at least as many groups as threads. Any grouping gives the same
// values (see Determinism above).
// Measured in whole train steps (Intel Xeon, avx512, 2 threads), where a conv's input and output come from memory,
// not from a warm cache as in the kernel benches (bench_kernels --gemm --cold shows the difference): against the
// former 2 Mi-float groups, the BN CNN's step 1.14x, the CIFAR CNN-BN's 1.13x, ResNet-18's at 32 x 32 (512 channels
// on 4 x 4 planes, which the floor of tiles keeps from 20% slower) 1.04x (docs/kernels.md, bench/ab_step.sh).
inline constexpr size_t kGroupFloats = size_t(1) << 16, kGroupMinTiles = 32;
// Tile rows per group (at least 1): as many as keep row_floats each within `budget`, raised to kGroupMinTiles tiles,
// then capped at `cap` floats and `max_rows`.
inline size_t group_rows(const Plan& p, size_t row_floats, size_t budget, size_t cap, size_t max_rows) {
  row_floats = std::max<size_t>(row_floats, 1);
  const size_t want = std::max(budget / row_floats, (kGroupMinTiles + p.TW - 1) / p.TW);
  return std::max<size_t>(1, std::min({want, cap / row_floats, max_rows}));
}
struct RowGroups {
  size_t per = 1, count = 0;
  RowGroups(const Plan& p, size_t floats_per_tile) {
    const size_t rows = p.B * p.TH;
    const size_t fit = group_rows(p, floats_per_tile * p.TW, kGroupFloats, size_t(1) << 21, 512 / p.TW);
    const size_t threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
    per = std::max<size_t>(1, std::min(fit, (rows + threads - 1) / threads));
    count = (rows + per - 1) / per;
  }
};

// y = the correlation of p, from the transformed kernel U [36][Cin][Cout] (bias: nullptr or Cout values).
// Scratch slots 0 (V), 1 (M), 4 (strips and the padded bias).
inline void correlate(const Plan& p, const float* x, const float* U, const float* bias, float* y) {
  const size_t Cp = lanes_up(p.Cin), Op = lanes_up(p.Cout);
  const RowGroups rg(p, kXi * Cp);
  const size_t rows = p.B * p.TH, inHW = p.H * p.W, outHW = p.OH * p.OW;
  for_chunks(rg.count, p.work(), [&](size_t lo, size_t hi) {
    for (size_t gi = lo; gi < hi; ++gi) {
      const size_t r0 = gi * rg.per, r1 = std::min(rows, r0 + rg.per), n = (r1 - r0) * p.TW;
      float* V = scratch(0, kXi * n * Cp);  // [36][n][Cp]
      float* M = scratch(1, kXi * n * Op);  // [36][n][Op]
      const size_t strip = std::max(input_floats(p, std::min(p.TH, r1 - r0)), output_floats(p));
      float* buf = scratch(4, Op + strip);
      float* bv = buf + strip;  // the bias, after the strip
      for (size_t o = 0; o < Op; ++o) bv[o] = bias && o < p.Cout ? bias[o] : 0.0f;
      segments(p, r0, r1, [&](size_t bi, size_t ty0, size_t ty1, size_t t) {
        input_tiles(p, x + bi * p.Cin * inHW, ty0, ty1, buf, V + t * Cp, n * Cp);
      });
      for (size_t xi = 0; xi < kXi; ++xi)
        gemm(Gemm{n, p.Cout, p.Cin, V + xi * n * Cp, Cp, 1, U + xi * p.Cin * p.Cout, p.Cout, M + xi * n * Op, Op,
                  nullptr, Init::Zero});
      segments(p, r0, r1, [&](size_t bi, size_t ty0, size_t ty1, size_t t) {
        output_tiles(p, M + t * Op, n * Op, ty0, ty1, bv, y + bi * p.Cout * outHW, buf);
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

// Groups of tile rows one after the other (each: its transforms threaded over tile rows, then the 36 products one
// per thread, accumulating into Z), each group's V and dM within kWeightGroupFloats (at least kGroupMinTiles tiles,
// at most 4 Mi floats; 1 Mi against the former 4 Mi was about 3% of the BN CNN's step, part of the 1.14x above).
inline constexpr size_t kWeightGroupFloats = size_t(1) << 20;
void backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW) {
  const Plan p(s.B, s.C, s.H, s.W, s.O, s.OH(), s.OW(), static_cast<ptrdiff_t>(s.pad_top),
               static_cast<ptrdiff_t>(s.pad_left));
  const size_t Cp = lanes_up(p.Cin), Op = lanes_up(p.Cout);
  const size_t rows = p.B * p.TH, inHW = p.H * p.W, outHW = p.OH * p.OW;
  const size_t per = group_rows(p, kXi * p.TW * (Cp + Op), kWeightGroupFloats, size_t(1) << 22, rows);
  const size_t nmax = std::min(rows, per) * p.TW;
  float* Z = scratch(5, kXi * p.Cin * p.Cout);  // [36][Cin][Cout]
  float* V = scratch(0, kXi * nmax * Cp);       // [36][n][Cp]
  float* dM = scratch(1, kXi * nmax * Op);      // [36][n][Op]
  for (size_t r0 = 0; r0 < rows; r0 += per) {
    const size_t r1 = std::min(rows, r0 + per), n = (r1 - r0) * p.TW;
    for_chunks(r1 - r0, p.work(), [&](size_t lo, size_t hi) {
      const size_t nty = std::min(p.TH, hi - lo);
      float* buf = scratch(4, std::max(input_floats(p, nty), grad_floats(p, nty)));
      segments(p, r0 + lo, r0 + hi, [&](size_t bi, size_t ty0, size_t ty1, size_t t) {
        const size_t at = lo * p.TW + t;  // the segment's first tile in the group
        input_tiles(p, x + bi * p.Cin * inHW, ty0, ty1, buf, V + at * Cp, n * Cp);
        grad_tiles(p, dy + bi * p.Cout * outHW, ty0, ty1, buf, dM + at * Op, n * Op);
      });
    });
    for_chunks(kXi, p.work(), [&](size_t lo, size_t hi) {
      for (size_t xi = lo; xi < hi; ++xi)
        gemm(Gemm{p.Cin, p.Cout, n, V + xi * n * Cp, 1, Cp, dM + xi * n * Op, Op, Z + xi * p.Cin * p.Cout, p.Cout,
                  nullptr, r0 == 0 ? Init::Zero : Init::C});
    });
  }
  weight_grad_transform(Z, p.Cout, p.Cin, dW);
}

}  // namespace wino
