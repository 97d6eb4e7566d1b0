// Fast float32 multi-head scaled dot-product attention (the training path). Same contract as the templated
// reference in prims/sdpa/reference.hpp, which it is differentially tested against (tests/test_prims.cpp
// through the primitive table, tests/test_attention.cpp on ViT shapes):
//
//   sdpa_forward   out = softmax(q_h k_h^T / sqrt(d)) v_h per head; m, inv per row when not nullptr
//   sdpa_backward  dq, dk, dv from the saved m and inv (overwrites; each may be nullptr)
//
// Memory: one task is one (example, head); a thread holds that head's T x T scores (forward: one T x T
// buffer; backward: P and dS, two) and its q, k, v, dO, out columns as contiguous [T, d] copies in
// thread-local scratch that grows once and is reused; nothing of size T x T outlives the call: the saved
// state is 2 floats per (example, head, row). ViT-Tiny (T = 197, d = 64): 152 KiB (forward) / 303 KiB
// (backward) of score scratch per thread plus 5 x 49 KiB of head columns, and 2 x 16 x 3 x 197 floats saved
// per layer at batch 16.
//
// The products are the dense layer's blocked GEMM kernels on the gathered heads (kernel.cpp). Precision:
// float with FMA, exp via std::exp (float); agrees with the reference to rounding, not bit for bit.
//
// Determinism: each (example, head) is computed by one thread in an order fixed by the shape, and the tasks
// write disjoint columns of out, dq, dk, dv, so results are bit-identical for any OMP_NUM_THREADS.
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/sdpa/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(sdpa_forward, void(const ops::SdpaShape& s, const float* q, const float* k, const float* v, float* out, float* m, float* inv));
VERIDL_KERNEL(sdpa_backward, void(const ops::SdpaShape& s, const float* q, const float* k, const float* v, const float* m, const float* inv, const float* dO, float* dq, float* dk, float* dv));

}  // namespace veridl::kernels
