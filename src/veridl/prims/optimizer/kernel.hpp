// The optimizers' elementwise updates (train/optimizer.cpp) as float kernels with ISA variants. Not a primitive:
// the kernels live here because prims/<name>/kernel.cpp is where CMake compiles the three variants.
//
//   sgd_update    per element, with w = wd where decay[i] else 0:  g = g[i] + w p[i];  with vel (momentum mu):
//                 g = mu vel[i] + g, vel[i] = g;  p[i] -= lr g
//   adam_update   m[i] = b1 m[i] + omb1 g;  v[i] = b2 v[i] + omb2 g^2;
//                 p[i] -= step m[i] / (sqrt(v[i]) isb2 + eps)   (bias corrections folded into step and isb2)
//                 with the decay of `form`: Coupled (adam: g = g[i] + w p[i]), After (adamw: p -= lr w p after the
//                 step, the original's order) or Before (torch.optim.AdamW's: p *= before first).
//
// Every variant gives the same bits: each element's operations are the scalar formula's, in its order, each
// rounded once (vector sqrt and division are correctly rounded like the scalar ones), and this file is compiled
// with -ffp-contract=off (CMakeLists.txt), so the AVX2 and AVX-512 variants do not fuse a multiply and an add
// into an FMA that the portable one (no FMA) cannot. Tested: Optimizer.EveryKernelVariantGivesThePortableBits.
// Threads take contiguous chunks from kParallelMinWork elements on, which never changes a value.
#pragma once

#include <cstddef>
#include <cstdint>

#include "veridl/kernels/isa.hpp"

namespace veridl::kernels {

// step = lr / (1 - b1^t), isb2 = 1 / sqrt(1 - b2^t); omb1, omb2 = 1 - b1, 1 - b2 rounded once from double (as
// PyTorch's Python-float betas give); before = float(1 - lr wd).
struct AdamConsts {
  float lr, wd, b1, b2, omb1, omb2, eps, step, isb2, before;
};

enum class AdamDecay : int { Coupled, After, Before };

// vel == nullptr: no momentum (mu unused).
VERIDL_KERNEL(sgd_update, void(size_t n, float* p, const float* g, float* vel, const uint8_t* decay, float lr,
                               float wd, float mu));
VERIDL_KERNEL(adam_update, void(AdamDecay form, size_t n, float* p, const float* g, float* m, float* v,
                                const uint8_t* decay, const AdamConsts& k));

}  // namespace veridl::kernels
