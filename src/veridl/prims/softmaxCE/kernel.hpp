// Fast float32 softmax cross-entropy with label smoothing (the training path). Same semantics as the
// templated reference in prims/softmaxCE/reference.hpp, which it is differentially tested against:
//
//   t = (1 - eps) onehot(y) + eps/K          (ops::SmoothedTarget<float>)
//   p[b,k] = exp(z[b,k] - m_b) / S_b,  m_b = max_k z[b,k],  S_b = sum_k exp(z[b,k] - m_b)
//   L = (1/B) sum_b sum_k -t_k ((z[b,k] - m_b) - log S_b)
//   dz[b,k] = dL (p[b,k] - t_k) / B
//
// z, p, dz are [B, K] row-major. Labels must lie in [0, K): both functions throw std::out_of_range
// naming the row and the label (ops::check_labels) before touching any output.
//
// Precision: each row's loss is computed in float (from the shifted logits and log S_b, never from
// log p), the batch sum in double; exp is a vectorised polynomial in the AVX2 build (a few ulp) and
// std::exp in the portable one. The backward is the reference formula evaluated in float.
// Determinism: rows are independent and the batch sum runs in row order, so results do not depend on
// the number of OpenMP threads.
#pragma once

#include <cstdint>

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"

namespace veridl::kernels {

// Returns the mean loss over the batch; writes p (softmax probabilities) for the backward.
VERIDL_KERNEL(softmax_ce_forward, float(const ops::SoftmaxShape& s, float eps, const int32_t* labels, const float* z, float* p));

// dz = dL (p - t) / B, t = (1 - eps) onehot + eps/K.
VERIDL_KERNEL(softmax_ce_backward, void(const ops::SoftmaxShape& s, float eps, const int32_t* labels, const float* p, float dL, float* dz));

}  // namespace veridl::kernels
