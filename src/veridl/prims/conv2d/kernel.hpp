// Fast float32 conv2d kernels (the training path). Same contracts as the templated reference in
// prims/conv2d/reference.hpp (NCHW, OIHW weights, stride, zero padding), which they are differentially tested
// against (tests/test_conv_kernels.cpp):
//
//   conv2d_forward          y = conv(x, W) (+ b when s.bias; b may be nullptr otherwise)   (overwrites y)
//   conv2d_backward_input   dx[b,c,h,w] = sum_{o,kh,kw} W[o,c,kh,kw] dy[b,o,i,j]            (overwrites dx)
//   conv2d_backward_weight  dW[o,c,kh,kw] = sum_{b,i,j} x[b,c,..] dy[b,o,i,j]                (overwrites dW)
//   conv2d_backward_bias    db[o] = sum_{b,i,j} dy[b,o,i,j]                                  (overwrites db)
//
// Method: im2col + a register-tiled GEMM (AVX2 broadcast-FMA, 6 x 16 tiles; portable loops otherwise).
// With K = C KH KW and P = OH OW, per image and per chunk of output positions:
//   forward   y[o, p]     = b[o] + sum_k W[o, k] col[k, p]          (M = O, N = P, depth K)
//   dx        dcol[k, p]  = sum_o W[o, k] dy[o, p], then col2im       (M = K, N = P, depth O)
//   dW        dW^T[k, o] += sum_p col[k, p] dy^T[p, o]                (M = K, N = O, depth P)
// 1x1 stride-1 unpadded convs skip im2col (col is x itself). This is the G = 1 path, except for 3x3 stride-1 convs
// with pads <= 2 and enough channels and tiles (wino::applies), which the AVX2 and AVX-512 variants run as Winograd
// F(4x4, 3x3) (prims/conv2d/winograd.hpp: a quarter of the multiplies, another rounding; VERIDL_WINOGRAD).
//
// Groups (ops::Conv2dShape::G > 1; W [O, C/G, KH, KW]):
//   depthwise (G = C = O)  direct loops, no im2col/GEMM: forward and dx per (image, channel) plane,
//                          threaded over B C planes, the inner loop over output columns (vectorized by GCC;
//                          stride 1 and 2 compiled as constants, any other stride and any kernel size
//                          generic); dx scatters dy W into the plane (the adjoint of the forward's
//                          reads); dW per channel, threaded over C, the batch sum inside the channel's
//                          thread, 8 lane partial sums per kernel tap. Stride-1 planes narrower than 32
//                          columns (MobileNetV2's 28, 14, 7) run on a zero-padded copy of the plane, one
//                          contiguous loop of OH (OW + KW - 1) per tap instead of rows of OW (dx: the
//                          correlation of the padded dy with the flipped kernel). Not tuned further:
//                          the stride-2 dx scatter stores with stride 2 (unvectorized; the slowest of
//                          the three at MobileNetV2's 112x112x96/s2).
//   grouped (other G > 1)  the im2col + GEMM path above on each group's channel slice (per image the input,
//                          weight and output slices of a group are contiguous): forward over (image,
//                          group, position chunk), dx over (image, group), dW over (group, chunk of
//                          units) with the partials added in chunk order. Tuned no further than that
//                          (small groups give thin GEMMs: a channel multiplier runs K = KH KW).
// Shapes are validated first (std::invalid_argument, as ops::Conv2dShape::validate). Outputs must not
// alias inputs. Float summation order differs from the reference (FMA, blocking), so results agree with
// it to rounding, not bit for bit.
//
// Determinism: results are bit-identical for any OMP_NUM_THREADS. Forward and dx: every output element
// is computed by exactly one thread, in an order fixed by the shape. dW sums over the batch: the
// (image, position-chunk) units are split into a number of chunks fixed by the shape (never by the
// thread count), each chunk's partial dW is accumulated in unit order, and the partials are added in
// chunk order. db: each element by one thread, 8-lane partial sums combined in a fixed order. Depthwise:
// every plane (forward, dx) and every channel's dW by one thread in a fixed order; grouped: as G = 1.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/conv2d/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(conv2d_forward, void(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y));
VERIDL_KERNEL(conv2d_backward_input, void(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx));
VERIDL_KERNEL(conv2d_backward_weight, void(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW));
VERIDL_KERNEL(conv2d_backward_bias, void(const ops::Conv2dShape& s, const float* dy, float* db));

}  // namespace veridl::kernels
