// Fast float32 scale: y = c x (a vectorized loop; tested against prims/scale/reference.hpp through the table).
#pragma once

#include <cstddef>

namespace veridl::kernels {

void scale_forward(size_t n, float c, const float* x, float* y);

}  // namespace veridl::kernels
