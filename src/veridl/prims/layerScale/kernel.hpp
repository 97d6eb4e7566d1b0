// Fast float32 LayerScale kernels (the training path). Same contract as the templated reference in
// prims/layerScale/reference.hpp, which they are differentially tested against (tests/test_layernorm.cpp,
// tests/test_prims.cpp):
//
//   layerscale_forward    y[o,c,i] = gamma[c] x[o,c,i]
//   layerscale_backward   dx[o,c,i] = gamma[c] dy[o,c,i]; dgamma[c] = sum_{o,i} dy x   (either may be nullptr)
//
// Layout as ops::LayerScaleShape: element (o, c, i) at (o C + c) inner + i.
//
// Precision: y and dx are one float multiply per element, bit-identical to the reference at T = float;
// dgamma is accumulated in double (rows, then positions, in order) and rounded once, so it agrees with the
// reference at T = double to float rounding.
//
// Determinism: y and dx are split into contiguous chunks of rows, dgamma into contiguous chunks of
// channels, one per thread (kernels::for_chunks, from kParallelMinWork elements on); every output element is
// computed by one thread in an order that depends only on the shape, so results are bit-identical for any
// OMP_NUM_THREADS. Aliasing: y may alias x, and dx may alias dy when dgamma is nullptr or computed first (it
// is: dgamma is summed before dx is written); nothing else may overlap.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/layerScale/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(layerscale_forward, void(const ops::LayerScaleShape& s, const float* x, const float* gamma, float* y));
VERIDL_KERNEL(layerscale_backward, void(const ops::LayerScaleShape& s, const float* x, const float* gamma, const float* dy, float* dx, float* dgamma));

}  // namespace veridl::kernels
