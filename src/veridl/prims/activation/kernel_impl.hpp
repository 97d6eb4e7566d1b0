// The elementwise activations' float32 kernels, for one ISA variant: included by a policy's kernel.cpp
// (prims/<name>/kernel.cpp) after kernels/target.hpp, which then instantiates them for its policy with
// VERIDL_ELEMENTWISE_KERNELS(PolicyFn). The loops are branch-free over the policy's float functions
// (kernels/vmath.hpp) and vectorized by the compiler for the variant's vector width.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "veridl/kernels/parallel.hpp"
#include "veridl/prims/activation/elementwise.hpp"

#ifndef VERIDL_ISA_NS
#error "prims/activation/kernel_impl.hpp: include kernels/target.hpp first"
#endif

namespace veridl::kernels::VERIDL_ISA_NS {

// ---- the fast float32 kernels: the policy's float functions in branch-free loops GCC vectorizes ----------
// y may alias x (read before write); dx may alias dy. One contiguous chunk per thread (whole blocks of 64
// elements) once the work reaches kParallelMinWork: results are identical for any thread count.
template <class F>
void elementwise_forward_range(const float* x, float* y, uint8_t* r8, size_t lo, size_t hi) {
  if constexpr (F::kRegions > 1) {
    for (size_t i = lo; i < hi; ++i) {
      const float v = x[i];
      const uint8_t r = F::region_f(v);
      r8[i] = r;
      y[i] = F::value_f(v, r);
    }
  } else {
    for (size_t i = lo; i < hi; ++i) y[i] = F::value_f(x[i], 0);
  }
}
template <class F>
void elementwise_backward_range(const float* x, const uint8_t* r8, const float* dy, float* dx, size_t lo, size_t hi) {
  if constexpr (F::kRegions > 1) {
    for (size_t i = lo; i < hi; ++i) dx[i] = F::derivative_f(x[i], r8[i]) * dy[i];
  } else {
    for (size_t i = lo; i < hi; ++i) dx[i] = F::derivative_f(x[i], 0) * dy[i];
  }
}
// Chunk boundaries at multiples of kElementwiseBlock elements: the vectorized loop body and its scalar
// remainder can round differently (seen: geluErf's dx changed with the thread count when chunks split
// anywhere), so every element must take the same path whatever the thread count.
inline constexpr size_t kElementwiseBlock = 64;
template <class Body>
void for_element_blocks(size_t n, Body&& body) {
  const size_t blocks = (n + kElementwiseBlock - 1) / kElementwiseBlock;
  for_chunks(blocks, n * 8, [&](size_t lo, size_t hi) {
    body(lo * kElementwiseBlock, std::min(hi * kElementwiseBlock, n));
  });
}
template <class F>
void elementwise_forward(size_t n, const float* x, float* y, uint8_t* r8) {
  for_element_blocks(n, [=](size_t lo, size_t hi) { elementwise_forward_range<F>(x, y, r8, lo, hi); });
}
template <class F>
void elementwise_backward(size_t n, const float* x, const uint8_t* r8, const float* dy, float* dx) {
  for_element_blocks(n, [=](size_t lo, size_t hi) { elementwise_backward_range<F>(x, r8, dy, dx, lo, hi); });
}


}  // namespace veridl::kernels::VERIDL_ISA_NS

#define VERIDL_ELEMENTWISE_KERNELS(F)                                                                       \
  template void veridl::kernels::VERIDL_ISA_NS::elementwise_forward<F>(size_t, const float*, float*, uint8_t*); \
  template void veridl::kernels::VERIDL_ISA_NS::elementwise_backward<F>(size_t, const float*, const uint8_t*,  \
                                                                        const float*, float*);
