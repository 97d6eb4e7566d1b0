// Fast float32 global average pool: see kernel.hpp for the contract.
#include "veridl/prims/globalAvgPool/kernel.hpp"

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

// Planes [lo, hi): y[r] = (sum of plane r in order) * inv. The sum is one sequential chain per plane (the
// reference's order); planes are independent.
void forward_planes(const float* x, float* y, size_t K, float inv, size_t lo, size_t hi) {
  for (size_t r = lo; r < hi; ++r) {
    const float* p = x + r * K;
    float acc = 0.0f;
    for (size_t k = 0; k < K; ++k) acc += p[k];
    y[r] = acc * inv;
  }
}

// Planes [lo, hi): dx[r, k] = dy[r] * inv (a splat per plane; vectorizes).
void backward_planes(const float* dy, float* dx, size_t K, float inv, size_t lo, size_t hi) {
  for (size_t r = lo; r < hi; ++r) {
    const float g = dy[r] * inv;
    float* d = dx + r * K;
    for (size_t k = 0; k < K; ++k) d[k] = g;
  }
}

}  // namespace

void global_avgpool_forward(const ops::GlobalAvgPoolShape& s, const float* x, float* y) {
  s.validate();
  const size_t K = s.plane();
  const float inv = 1.0f / static_cast<float>(K);
  for_chunks(s.planes(), s.x_size(), [=](size_t lo, size_t hi) { forward_planes(x, y, K, inv, lo, hi); });
}

void global_avgpool_backward(const ops::GlobalAvgPoolShape& s, const float* dy, float* dx) {
  s.validate();
  const size_t K = s.plane();
  const float inv = 1.0f / static_cast<float>(K);
  for_chunks(s.planes(), s.x_size(), [=](size_t lo, size_t hi) { backward_planes(dy, dx, K, inv, lo, hi); });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
