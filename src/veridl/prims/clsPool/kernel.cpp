#include "veridl/prims/clsPool/kernel.hpp"

#include <cstring>

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {

void cls_pool_forward(const ops::ClsPoolShape& s, const float* x, float* y) {
  for (size_t n = 0; n < s.N; ++n) std::memcpy(y + n * s.D, x + n * s.T * s.D, s.D * sizeof(float));
}

void cls_pool_backward(const ops::ClsPoolShape& s, const float* dy, float* dx) {
  const size_t TD = s.T * s.D;
  for (size_t n = 0; n < s.N; ++n) {
    std::memcpy(dx + n * TD, dy + n * s.D, s.D * sizeof(float));
    std::memset(dx + n * TD + s.D, 0, (TD - s.D) * sizeof(float));
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
