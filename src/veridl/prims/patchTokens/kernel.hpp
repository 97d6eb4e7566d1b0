// Fast float32 patchTokens (the training path): the same contract as prims/patchTokens/reference.hpp, which it
// is differentially tested against through the primitive table. A transpose [D, P] -> [P, D] done in 16 x 16
// tiles (both sides touch whole cache lines), plus the CLS row and the position embedding; the backward
// transposes back and sums dcls, dpos over the batch in example order. Single-threaded (memory-bound, a few
// MB at ViT-Tiny's batch 16); results do not depend on the thread count.
#pragma once

#include "veridl/kernels/isa.hpp"
#include "veridl/prims/patchTokens/reference.hpp"

namespace veridl::kernels {

VERIDL_KERNEL(patch_tokens_forward, void(const ops::PatchTokensShape& s, const float* x, const float* cls, const float* pos, float* y));
VERIDL_KERNEL(patch_tokens_backward, void(const ops::PatchTokensShape& s, const float* dy, float* dx, float* dcls, float* dpos));

}  // namespace veridl::kernels
