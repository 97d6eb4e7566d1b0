// Fast float32 LayerNorm: see kernel.hpp for the contracts, the precision and the determinism argument.
// A tile is up to kLayerNormTile consecutive positions i of one row o; its statistics live in small double
// arrays, and every pass walks the C channel runs of the tile with unit stride over i (GCC vectorizes the
// widening loops on axis "channels"; on axis "last" a tile is one position and its channel run is the
// contiguous row).
#include "veridl/prims/layerNorm/kernel.hpp"

#include <algorithm>
#include <cmath>

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

constexpr size_t kTile = kLayerNormTile;
constexpr size_t kChannelBlock = 256;  // channels whose dgamma / dbeta sums one pass over the rows carries

size_t tiles_per_row(const ops::LayerNormShape& s) { return (s.inner + kTile - 1) / kTile; }

// ---- axis "last" (inner = 1): one position per row, its C values contiguous; the reductions over c are
// vectorized (double lanes, a fixed order for a given build), each row computed by one thread.
double row_sum(const float* x, size_t C) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (size_t c = 0; c < C; ++c) acc += static_cast<double>(x[c]);
  return acc;
}

void forward_rows(const ops::LayerNormShape& s, double eps, const float* x, const float* gamma, const float* beta,
                  float* y, float* r, float* xhat, size_t lo, size_t hi) {
  const size_t C = s.C;
  const double n = static_cast<double>(C);
  for (size_t o = lo; o < hi; ++o) {
    const float* xo = x + o * C;
    const double mu = row_sum(xo, C) / n;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (size_t c = 0; c < C; ++c) {
      const double d = static_cast<double>(xo[c]) - mu;
      sq += d * d;
    }
    const double rv = 1.0 / std::sqrt(sq / n + eps);
    if (r) r[o] = static_cast<float>(rv);
    float* yo = y + o * C;
    float* ho = xhat ? xhat + o * C : nullptr;
#pragma omp simd
    for (size_t c = 0; c < C; ++c) {
      const double h = (static_cast<double>(xo[c]) - mu) * rv;
      if (ho) ho[c] = static_cast<float>(h);
      yo[c] = static_cast<float>(static_cast<double>(gamma[c]) * h + static_cast<double>(beta[c]));
    }
  }
}

void dx_rows(const ops::LayerNormShape& s, const float* gamma, const float* r, const float* xhat, const float* dy,
             float* dx, size_t lo, size_t hi) {
  const size_t C = s.C;
  const double n = static_cast<double>(C);
  for (size_t o = lo; o < hi; ++o) {
    const float *d = dy + o * C, *h = xhat + o * C;
    double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
    for (size_t c = 0; c < C; ++c) {
      const double g = static_cast<double>(gamma[c]) * static_cast<double>(d[c]);
      s1 += g;
      s2 += g * static_cast<double>(h[c]);
    }
    s1 /= n;
    s2 /= n;
    const double rr = r[o];
    float* out = dx + o * C;
#pragma omp simd
    for (size_t c = 0; c < C; ++c)
      out[c] = static_cast<float>(
          rr * ((static_cast<double>(gamma[c]) * static_cast<double>(d[c]) - s1) - static_cast<double>(h[c]) * s2));
  }
}

// Tiles [lo, hi) of the forward: tile t covers row t / tiles_per_row, positions from (t % tiles_per_row) kTile.
void forward_tiles(const ops::LayerNormShape& s, double eps, const float* x, const float* gamma, const float* beta,
                   float* y, float* r, float* xhat, size_t lo, size_t hi) {
  const size_t C = s.C, K = s.inner, per_row = tiles_per_row(s);
  const double n = static_cast<double>(C);
  double mu[kTile], rv[kTile], acc[kTile];
  for (size_t t = lo; t < hi; ++t) {
    const size_t o = t / per_row, i0 = (t % per_row) * kTile, w = std::min(kTile, K - i0);
    const size_t base = o * C * K + i0;
    std::fill_n(acc, w, 0.0);
    for (size_t c = 0; c < C; ++c) {
      const float* xc = x + base + c * K;
      for (size_t i = 0; i < w; ++i) acc[i] += static_cast<double>(xc[i]);
    }
    for (size_t i = 0; i < w; ++i) mu[i] = acc[i] / n;
    std::fill_n(acc, w, 0.0);
    for (size_t c = 0; c < C; ++c) {
      const float* xc = x + base + c * K;
      for (size_t i = 0; i < w; ++i) {
        const double d = static_cast<double>(xc[i]) - mu[i];
        acc[i] += d * d;
      }
    }
    for (size_t i = 0; i < w; ++i) rv[i] = 1.0 / std::sqrt(acc[i] / n + eps);
    if (r)
      for (size_t i = 0; i < w; ++i) r[o * K + i0 + i] = static_cast<float>(rv[i]);
    for (size_t c = 0; c < C; ++c) {
      const float* xc = x + base + c * K;
      float* yc = y + base + c * K;
      const double g = gamma[c], b = beta[c];
      if (xhat) {
        float* hc = xhat + base + c * K;
        for (size_t i = 0; i < w; ++i) {
          const double h = (static_cast<double>(xc[i]) - mu[i]) * rv[i];
          hc[i] = static_cast<float>(h);
          yc[i] = static_cast<float>(g * h + b);
        }
      } else {
        for (size_t i = 0; i < w; ++i) yc[i] = static_cast<float>(g * ((static_cast<double>(xc[i]) - mu[i]) * rv[i]) + b);
      }
    }
  }
}

// Tiles [lo, hi) of dx = r (g - sum g / C - xhat sum(g xhat) / C), g = gamma dy.
void dx_tiles(const ops::LayerNormShape& s, const float* gamma, const float* r, const float* xhat, const float* dy,
              float* dx, size_t lo, size_t hi) {
  const size_t C = s.C, K = s.inner, per_row = tiles_per_row(s);
  const double n = static_cast<double>(C);
  double s1[kTile], s2[kTile];
  for (size_t t = lo; t < hi; ++t) {
    const size_t o = t / per_row, i0 = (t % per_row) * kTile, w = std::min(kTile, K - i0);
    const size_t base = o * C * K + i0;
    std::fill_n(s1, w, 0.0);
    std::fill_n(s2, w, 0.0);
    for (size_t c = 0; c < C; ++c) {
      const float* dc = dy + base + c * K;
      const float* hc = xhat + base + c * K;
      const double gm = gamma[c];
      for (size_t i = 0; i < w; ++i) {
        const double g = gm * static_cast<double>(dc[i]);
        s1[i] += g;
        s2[i] += g * static_cast<double>(hc[i]);
      }
    }
    for (size_t i = 0; i < w; ++i) {
      s1[i] /= n;
      s2[i] /= n;
    }
    const float* rr = r + o * K + i0;
    for (size_t c = 0; c < C; ++c) {
      const float* dc = dy + base + c * K;
      const float* hc = xhat + base + c * K;
      float* out = dx + base + c * K;
      const double gm = gamma[c];
      for (size_t i = 0; i < w; ++i)
        out[i] = static_cast<float>(static_cast<double>(rr[i]) *
                                    ((gm * static_cast<double>(dc[i]) - s1[i]) - static_cast<double>(hc[i]) * s2[i]));
    }
  }
}

// Channels [lo, hi) of dgamma = sum dy xhat, dbeta = sum dy (rows, then positions, in order), kChannelBlock
// channels per pass over the rows.
void param_grads(const ops::LayerNormShape& s, const float* xhat, const float* dy, float* dgamma, float* dbeta,
                 size_t lo, size_t hi) {
  const size_t C = s.C, K = s.inner;
  double sg[kChannelBlock], sb[kChannelBlock];
  for (size_t c0 = lo; c0 < hi; c0 += kChannelBlock) {
    const size_t m = std::min(kChannelBlock, hi - c0);
    std::fill_n(sg, m, 0.0);
    std::fill_n(sb, m, 0.0);
    if (K == 1) {  // axis "last": channels contiguous in a row, the same sums vectorized over j
      for (size_t o = 0; o < s.rows(); ++o) {
        const float* d = dy + o * C + c0;
        const float* h = xhat + o * C + c0;
#pragma omp simd
        for (size_t j = 0; j < m; ++j) {
          sg[j] += static_cast<double>(d[j]) * static_cast<double>(h[j]);
          sb[j] += static_cast<double>(d[j]);
        }
      }
    } else
    for (size_t o = 0; o < s.rows(); ++o)
      for (size_t j = 0; j < m; ++j) {
        const size_t off = (o * C + c0 + j) * K;
        const float* d = dy + off;
        const float* h = xhat + off;
        double a = sg[j], b = sb[j];
        for (size_t i = 0; i < K; ++i) {
          const double dv = d[i];
          a += dv * static_cast<double>(h[i]);
          b += dv;
        }
        sg[j] = a;
        sb[j] = b;
      }
    if (dgamma)
      for (size_t j = 0; j < m; ++j) dgamma[c0 + j] = static_cast<float>(sg[j]);
    if (dbeta)
      for (size_t j = 0; j < m; ++j) dbeta[c0 + j] = static_cast<float>(sb[j]);
  }
}

}  // namespace

void layernorm_forward(const ops::LayerNormShape& s, double eps, const float* x, const float* gamma,
                       const float* beta, float* y, float* r, float* xhat) {
  if (s.inner == 1) {
    for_chunks(s.rows(), s.count(), [=](size_t lo, size_t hi) { forward_rows(s, eps, x, gamma, beta, y, r, xhat, lo, hi); });
    return;
  }
  const size_t tiles = s.rows() * tiles_per_row(s);
  for_chunks(tiles, s.count(), [=](size_t lo, size_t hi) { forward_tiles(s, eps, x, gamma, beta, y, r, xhat, lo, hi); });
}

void layernorm_backward(const ops::LayerNormShape& s, const float* gamma, const float* r, const float* xhat,
                        const float* dy, float* dx, float* dgamma, float* dbeta) {
  if (dgamma || dbeta)
    for_chunks(s.C, s.count(), [=](size_t lo, size_t hi) { param_grads(s, xhat, dy, dgamma, dbeta, lo, hi); });
  if (dx && s.inner == 1) {
    for_chunks(s.rows(), s.count(), [=](size_t lo, size_t hi) { dx_rows(s, gamma, r, xhat, dy, dx, lo, hi); });
  } else if (dx) {
    const size_t tiles = s.rows() * tiles_per_row(s);
    for_chunks(tiles, s.count(), [=](size_t lo, size_t hi) { dx_tiles(s, gamma, r, xhat, dy, dx, lo, hi); });
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
