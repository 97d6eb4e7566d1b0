// Fast float32 scale: y = c x (a vectorized loop; tested against prims/scale/reference.hpp through the table).
#pragma once

#include <cstddef>

#include "veridl/kernels/isa.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(scale_forward, void(size_t n, float c, const float* x, float* y));

}  // namespace veridl::kernels

