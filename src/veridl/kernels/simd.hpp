// SIMD helpers shared by the float kernels' AVX2 and AVX-512 variants. Include it after kernels/target.hpp
// (inside a variant's region: the helpers are compiled for that variant, in its namespace).
#pragma once

#include <cstddef>
#include <cstdint>

#ifndef VERIDL_ISA_NS
#error "kernels/simd.hpp: include kernels/target.hpp first"
#endif

#if VERIDL_ISA_AVX2
namespace veridl::kernels::VERIDL_ISA_NS::simd {

// Lanes [0, n) on, the rest off (n in [1, 8]): the mask of a vector's tail.
inline __m256i lane_mask(size_t n) {
  static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - n));
}

// The sum of the 8 lanes, in a fixed order ((0+4) + (2+6)) + ((1+5) + (3+7)).
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace veridl::kernels::VERIDL_ISA_NS::simd
#endif  // VERIDL_ISA_AVX2
