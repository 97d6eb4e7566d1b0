// Helpers shared by the StableHLO emitters of the window primitives (conv2d, max-pool) and the
// per-channel reductions (conv2d bias, BatchNorm).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "veridl/hlo/builder.hpp"
#include "veridl/prims/conv2d/reference.hpp"
#include "veridl/prims/maxPool/reference.hpp"

namespace veridl::prims::hlo_util {

using hlo::Builder;
using hlo::Shape;
using hlo::Val;

inline int64_t i64(size_t v) { return static_cast<int64_t>(v); }

// Sets the builder's trailing comment (the contract an op belongs to) for a scope.
struct Tag {
  Builder& b;
  Tag(Builder& bb, const char* t) : b(bb) { b.tag = t; }
  ~Tag() { b.tag.clear(); }
};

// Per-channel sum of an NCHW tensor, one dimension at a time (W, then H, then N): float32 error grows
// with the length of each sum, so three short sums are far closer to the native kernels (which
// accumulate BatchNorm statistics in double) than one sum of N*H*W terms.
inline Val channel_sum(Builder& b, const Val& x) { return b.sum(b.sum(b.sum(x, {3}), {2}), {0}); }

// A window geometry along H and W (conv or pool): input extent, kernel, stride, output extent, low pad.
struct Windows {
  int64_t H, W, KH, KW, st, OH, OW, pt, pl;
};
Windows windows(const ops::Conv2dShape& c);
Windows windows(const ops::MaxPoolShape& p);

// The input and its padding cut to what the windows read: (OH - 1) s + KH padded rows (likewise
// columns). With "valid" or symmetric padding a strided window op can leave padded or real rows past its
// last window; those contribute nothing, and IREE 3.13 rejects such a strided convolution ("linalg.generic
// op inferred input/output operand ... dimension"), so they are never emitted.
struct FittedInput {
  Val x;
  std::vector<std::pair<int64_t, int64_t>> pad;
};
FittedInput fit_input(Builder& b, const Val& x, const Windows& g);

// The input gradient of a window op as a convolution of the stride-dilated dy with the flipped,
// io-transposed kernel w [O, C, KH, KW]: dy [N, O, OH, OW] -> [N, C, H, W]. With groups > 1, w is
// [O / groups, C, KH, KW] (group g's io-transposed kernels in columns g C/groups ...) and the convolution has
// feature_group_count = groups: dy's channel group g feeds dx's channel group g only.
Val window_input_grad(Builder& b, const Val& dy, const Val& w, const Windows& g, const std::string& where,
                      int64_t groups = 1);

}  // namespace veridl::prims::hlo_util
