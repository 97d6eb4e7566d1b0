#include "veridl/prims/transpose/kernel.hpp"

#include <algorithm>
#include <cstring>

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {

void swap_axes(const ops::SwapShape& s, const float* x, float* y) {
  const size_t A = s.A, B = s.B, C = s.C, ABC = A * B * C;
  for (size_t n = 0; n < s.N; ++n) {
    const float* xn = x + n * ABC;
    float* yn = y + n * ABC;
    if (C > 1) {
      for (size_t a = 0; a < A; ++a)
        for (size_t b = 0; b < B; ++b) std::memcpy(yn + (b * A + a) * C, xn + (a * B + b) * C, C * sizeof(float));
      continue;
    }
    constexpr size_t kTile = 16;
    for (size_t a0 = 0; a0 < A; a0 += kTile)
      for (size_t b0 = 0; b0 < B; b0 += kTile) {
        const size_t a1 = std::min(A, a0 + kTile), b1 = std::min(B, b0 + kTile);
        for (size_t b = b0; b < b1; ++b)
          for (size_t a = a0; a < a1; ++a) yn[b * A + a] = xn[a * B + b];
      }
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
