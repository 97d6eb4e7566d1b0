// Fast float32 ReLU6: see kernel.hpp for the contract. Branch-free loops (compares + selects) that GCC
// vectorizes; large tensors are split into one contiguous chunk per thread.
#include "veridl/prims/relu6/kernel.hpp"

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// Plain functions over pointer arguments (not lambda captures): a uint8_t store may alias anything, so
// pointers read through a closure would be reloaded every iteration and block vectorization.
void relu6_forward_range(const float* x, float* y, uint8_t* mask, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) {
    const float v = x[i];
    const bool pos = v > 0.0f;
    const bool below = v < 6.0f;
    const bool on = pos & below;
    mask[i] = static_cast<uint8_t>(on);
    const float clamped = pos ? 6.0f : 0.0f;  // the value off the linear piece: 0 below, 6 above
    y[i] = on ? v : clamped;
  }
}

void relu6_backward_range(const uint8_t* mask, const float* dy, float* dx, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) {
    const float g = dy[i];  // read unconditionally: a select, not a masked load
    dx[i] = mask[i] ? g : 0.0f;
  }
}

}  // namespace

void relu6_forward(const ops::Relu6Shape& s, const float* x, float* y, uint8_t* mask) {
  for_chunks(s.n, s.n, [=](size_t lo, size_t hi) { relu6_forward_range(x, y, mask, lo, hi); });
}

void relu6_backward(const ops::Relu6Shape& s, const uint8_t* mask, const float* dy, float* dx) {
  for_chunks(s.n, s.n, [=](size_t lo, size_t hi) { relu6_backward_range(mask, dy, dx, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
