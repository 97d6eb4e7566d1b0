// Fast float32 dense-layer kernels (the training path). Same contracts as the templated reference in
// prims/dense/reference.hpp, which they are differentially tested against (tests/test_kernels.cpp):
//
//   dense_forward          y[b,o]  = b[o] + sum_i x[b,i] W[i,o]      x [B,I], W [I,O], y [B,O]
//   dense_backward_input   dx[b,i] = sum_o W[i,o] dy[b,o]            (overwrites dx)
//   dense_backward_weight  dW[i,o] = sum_b x[b,i] dy[b,o]            (overwrites dW)
//   dense_backward_bias    db[o]   = sum_b dy[b,o]                   (overwrites db)
//
// All arrays are dense row-major; outputs must not alias inputs. Float summation order differs from
// the reference (FMA, 8-lane partial sums), so results agree with it to rounding, not bit for bit.
//
// Determinism: every output element is computed entirely by one thread, with a summation order that
// depends only on the shape (and on the build: AVX2 or portable), never on the number of OpenMP
// threads or on scheduling. So results are bit-identical for any OMP_NUM_THREADS.
//
// Threads: a kernel uses the OpenMP team (omp_get_max_threads()) only when its multiply-add count is
// at least kParallelMinWork; smaller calls run on the calling thread.
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"
#include "veridl/kernels/parallel.hpp"
#include "veridl/prims/dense/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(dense_forward, void(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y));
VERIDL_KERNEL(dense_backward_input, void(const ops::DenseShape& s, const float* W, const float* dy, float* dx));
VERIDL_KERNEL(dense_backward_weight, void(const ops::DenseShape& s, const float* x, const float* dy, float* dW));
VERIDL_KERNEL(dense_backward_bias, void(const ops::DenseShape& s, const float* dy, float* db));

// Which loop nest computes a product (AVX2 and AVX-512 variants; the portable variant has one nest and ignores it).
//   WideO:   for large O. forward and dW: broadcast-FMA GEMM with the vector lanes along O;
//            dx: 8-lane dot products along O (rows of dy against rows of W).
//   NarrowO: for small O (MNIST: O = 10), where lanes along O would be mostly idle. forward: 8-lane dot
//            products along I against a transposed copy of W; dW: broadcast-FMA with the lanes along I,
//            each register tile of W^T stored transposed; dx: broadcast-FMA with the lanes along I, W's
//            panels packed from its rows, transposed 8 x 8 at a time (no copy of W^T or dy^T, no transposed
//            tiles of dx; each dx element the same chain over o as before, session 30).
//   Auto:    chosen by shape (what the public functions use; dx prefers NarrowO unless I is narrower than
//            O's lanes would be busy).
enum class DenseVariant { Auto, WideO, NarrowO };

VERIDL_KERNEL(dense_forward_variant, void(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y, DenseVariant v));
VERIDL_KERNEL(dense_backward_input_variant, void(const ops::DenseShape& s, const float* W, const float* dy, float* dx, DenseVariant v));
VERIDL_KERNEL(dense_backward_weight_variant, void(const ops::DenseShape& s, const float* x, const float* dy, float* dW, DenseVariant v));

}  // namespace veridl::kernels
