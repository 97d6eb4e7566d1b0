// Fast float32 ReLU: see kernel.hpp for the contract. Branch-free loops (compare + select) that GCC
// vectorizes; large tensors are split into one contiguous chunk per thread.
#include "veridl/prims/relu/kernel.hpp"

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// Plain functions over pointer arguments (not lambda captures): a uint8_t store may alias anything, so
// pointers read through a closure would be reloaded every iteration and block vectorization. GCC
// versions these loops on a runtime overlap check.
void forward_range(const float* x, float* y, uint8_t* mask, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) {
    const float v = x[i];
    const bool on = v > 0.0f;
    mask[i] = static_cast<uint8_t>(on);
    y[i] = on ? v : 0.0f;
  }
}

void backward_range(const uint8_t* mask, const float* dy, float* dx, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) {
    const float g = dy[i];  // read unconditionally: a select, not a masked load
    dx[i] = mask[i] ? g : 0.0f;
  }
}

}  // namespace

void relu_forward(const ops::ReluShape& s, const float* x, float* y, uint8_t* mask) {
  for_chunks(s.n, s.n, [=](size_t lo, size_t hi) { forward_range(x, y, mask, lo, hi); });
}

void relu_backward(const ops::ReluShape& s, const uint8_t* mask, const float* dy, float* dx) {
  for_chunks(s.n, s.n, [=](size_t lo, size_t hi) { backward_range(mask, dy, dx, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
