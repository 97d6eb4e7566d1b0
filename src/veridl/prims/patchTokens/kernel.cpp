#include "veridl/prims/patchTokens/kernel.hpp"

#include <algorithm>
#include <cstring>

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {
constexpr size_t kPatchTile = 16;

// b[p * ldb + c] (op)= a[c * lda + p] for c < C, p < P, tile by tile.
template <bool Add>
void transpose(const float* a, size_t C, size_t P, size_t lda, float* b, size_t ldb, const float* add) {
  for (size_t c0 = 0; c0 < C; c0 += kPatchTile)
    for (size_t p0 = 0; p0 < P; p0 += kPatchTile) {
      const size_t c1 = std::min(C, c0 + kPatchTile), p1 = std::min(P, p0 + kPatchTile);
      for (size_t p = p0; p < p1; ++p)
        for (size_t c = c0; c < c1; ++c) {
          const float v = a[c * lda + p];
          b[p * ldb + c] = Add ? v + add[p * ldb + c] : v;
        }
    }
}
}  // namespace

void patch_tokens_forward(const ops::PatchTokensShape& s, const float* x, const float* cls, const float* pos, float* y) {
  const size_t D = s.D, P = s.P, TD = (P + 1) * D;
  for (size_t n = 0; n < s.N; ++n) {
    float* yn = y + n * TD;
    for (size_t c = 0; c < D; ++c) yn[c] = cls[c] + pos[c];
    transpose<true>(x + n * D * P, D, P, P, yn + D, D, pos + D);
  }
}

void patch_tokens_backward(const ops::PatchTokensShape& s, const float* dy, float* dx, float* dcls, float* dpos) {
  const size_t D = s.D, P = s.P, TD = (P + 1) * D;
  if (dx)
    for (size_t n = 0; n < s.N; ++n) transpose<false>(dy + n * TD + D, P, D, D, dx + n * D * P, P, nullptr);
  if (dpos) {
    std::memcpy(dpos, dy, TD * sizeof(float));
    for (size_t n = 1; n < s.N; ++n)
      for (size_t e = 0; e < TD; ++e) dpos[e] += dy[n * TD + e];
  }
  if (dcls) {
    std::memcpy(dcls, dy, D * sizeof(float));
    for (size_t n = 1; n < s.N; ++n)
      for (size_t c = 0; c < D; ++c) dcls[c] += dy[n * TD + c];
  }
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
