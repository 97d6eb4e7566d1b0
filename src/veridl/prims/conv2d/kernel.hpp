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
// 1x1 stride-1 unpadded convs skip im2col (col is x itself).
// Shapes are validated first (std::invalid_argument, as ops::Conv2dShape::validate). Outputs must not
// alias inputs. Float summation order differs from the reference (FMA, blocking), so results agree with
// it to rounding, not bit for bit.
//
// Determinism: results are bit-identical for any OMP_NUM_THREADS. Forward and dx: every output element
// is computed by exactly one thread, in an order fixed by the shape. dW sums over the batch: the
// (image, position-chunk) units are split into a number of chunks fixed by the shape (never by the
// thread count), each chunk's partial dW is accumulated in unit order, and the partials are added in
// chunk order. db: each element by one thread, 8-lane partial sums combined in a fixed order.
#pragma once

#include <cstddef>

#include "veridl/prims/conv2d/reference.hpp"

namespace veridl::kernels {

void conv2d_forward(const ops::Conv2dShape& s, const float* x, const float* W, const float* b, float* y);
void conv2d_backward_input(const ops::Conv2dShape& s, const float* W, const float* dy, float* dx);
void conv2d_backward_weight(const ops::Conv2dShape& s, const float* x, const float* dy, float* dW);
void conv2d_backward_bias(const ops::Conv2dShape& s, const float* dy, float* db);

}  // namespace veridl::kernels
