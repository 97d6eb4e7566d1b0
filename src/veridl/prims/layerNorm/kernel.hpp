// Fast float32 LayerNorm kernels. Same contracts as the templated reference in prims/layerNorm/reference.hpp,
// which they are differentially tested against (tests/test_layernorm.cpp, tests/test_prims.cpp):
//
//   layernorm_forward    per position (o, i): mean and biased var over the C values x[o, c, i] (/C),
//                        r = 1/sqrt(var + eps), xhat = (x - mean) r, y = gamma_c xhat + beta_c;
//                        r [positions] and xhat [count] are written when not nullptr
//   layernorm_backward   dx = r (g - sum_c g / C - xhat sum_c(g xhat) / C), g = gamma_c dy;
//                        dgamma_c = sum dy xhat, dbeta_c = sum dy over rows and positions
//                        (dx / dgamma / dbeta may be nullptr)
//
// Layout: element (o, c, i) at (o C + c) inner + i (ops::LayerNormShape): inner = H W on axis "channels"
// (the C values of a pixel are H W apart), inner = 1 on axis "last" (contiguous rows).
//
// Precision: every statistic (mean, var, the two sums of the dx formula, dgamma, dbeta) is accumulated in
// double, over c in order (statistics; on axis "last", where a row's C values are contiguous, in the vector
// lanes' fixed order instead) or over rows then positions in order (dgamma, dbeta); the
// per-element arithmetic is double, rounded to float once on store. So the kernels agree with ops:: at
// T = double to float rounding of each output (and of the saved r and xhat the backward reads).
//
// Determinism: a position's statistics and outputs are computed by one thread; the positions are cut into
// tiles of up to kLayerNormTile consecutive i of one row, and the tiles into contiguous chunks per thread
// (kernels::for_chunks). dgamma / dbeta are computed per channel, the channels cut into contiguous chunks
// per thread, each channel's sum in the fixed order above. Results are bit-identical for any
// OMP_NUM_THREADS.
//
// Outputs must not alias inputs.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/layerNorm/reference.hpp"

namespace veridl::kernels {

inline constexpr size_t kLayerNormTile = 64;  // positions of one row handled together (channels-first)

VERIDL_KERNEL(layernorm_forward, void(const ops::LayerNormShape& s, double eps, const float* x, const float* gamma, const float* beta, float* y, float* r, float* xhat));

VERIDL_KERNEL(layernorm_backward, void(const ops::LayerNormShape& s, const float* gamma, const float* r, const float* xhat, const float* dy, float* dx, float* dgamma, float* dbeta));

}  // namespace veridl::kernels
