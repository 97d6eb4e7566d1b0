// Deliberately broken conv2d backwards (book ch. 4): the evidence that the checker bites on the index
// logic of convolutions. Each mutant is the real op with one realistic bug in its backward (forward
// untouched); the sweep of prims/conv2d/contracts.cpp must reject every one of them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "veridl/prims/conv2d/reference.hpp"

namespace veridl::ops {

namespace mutant_detail {

// The input-gradient gather with knobs for the usual bugs:
//   dx[b,c,h,w] = sum W[o,c,kh',kw'] dy[b,o,i,j],  i s = h + (pt + shift) - kh kstep  (likewise j),
//   kh' = flip ? KH - 1 - kh : kh  (flip = the kernel is not flipped the way the gather needs).
template <class T>
void dx_gather(const Conv2dShape& s, const T* W, const T* dy, T* dx, size_t shift, size_t kstep, bool flip) {
  const size_t OH = s.OH(), OW = s.OW();
  const ptrdiff_t st = static_cast<ptrdiff_t>(s.stride);
  auto out = [&](size_t h, size_t pad, size_t k, size_t n) -> ptrdiff_t {
    const ptrdiff_t t = static_cast<ptrdiff_t>(h + pad + shift) - static_cast<ptrdiff_t>(k * kstep);
    if (t < 0 || t % st != 0 || t / st >= static_cast<ptrdiff_t>(n)) return -1;
    return t / st;
  };
  for (size_t b = 0; b < s.B; ++b)
    for (size_t c = 0; c < s.C; ++c)
      for (size_t h = 0; h < s.H; ++h)
        for (size_t w = 0; w < s.W; ++w) {
          T acc = T(0);
          for (size_t o = 0; o < s.O; ++o)
            for (size_t kh = 0; kh < s.KH; ++kh) {
              const ptrdiff_t i = out(h, s.pad_top, kh, OH);
              if (i < 0) continue;
              for (size_t kw = 0; kw < s.KW; ++kw) {
                const ptrdiff_t j = out(w, s.pad_left, kw, OW);
                if (j < 0) continue;
                const size_t wh = flip ? s.KH - 1 - kh : kh, ww = flip ? s.KW - 1 - kw : kw;
                acc += W[((o * s.C + c) * s.KH + wh) * s.KW + ww] *
                       dy[((b * s.O + o) * OH + static_cast<size_t>(i)) * OW + static_cast<size_t>(j)];
              }
            }
          dx[((b * s.C + c) * s.H + h) * s.W + w] = acc;
        }
}

// The weight gradient with knobs: the input cell is (i s + kh kstep - (pt + shift), ...); only batch
// entries [0, nb) are summed; transposed = written in [C, O, KH, KW] layout instead of [O, C, KH, KW].
template <class T>
void dW_sum(const Conv2dShape& s, const T* x, const T* dy, T* dW, size_t shift, size_t kstep, size_t nb,
            bool transposed) {
  const size_t OH = s.OH(), OW = s.OW();
  auto in = [&](size_t i, size_t k, size_t pad, size_t n) -> ptrdiff_t {
    const ptrdiff_t v = static_cast<ptrdiff_t>(i * s.stride + k * kstep) - static_cast<ptrdiff_t>(pad + shift);
    return v >= 0 && v < static_cast<ptrdiff_t>(n) ? v : -1;
  };
  for (size_t o = 0; o < s.O; ++o)
    for (size_t c = 0; c < s.C; ++c)
      for (size_t kh = 0; kh < s.KH; ++kh)
        for (size_t kw = 0; kw < s.KW; ++kw) {
          T acc = T(0);
          for (size_t b = 0; b < nb; ++b)
            for (size_t i = 0; i < OH; ++i) {
              const ptrdiff_t ih = in(i, kh, s.pad_top, s.H);
              if (ih < 0) continue;
              for (size_t j = 0; j < OW; ++j) {
                const ptrdiff_t iw = in(j, kw, s.pad_left, s.W);
                if (iw < 0) continue;
                acc += x[((b * s.C + c) * s.H + static_cast<size_t>(ih)) * s.W + static_cast<size_t>(iw)] *
                       dy[((b * s.O + o) * OH + i) * OW + j];
              }
            }
          const size_t at = transposed ? ((c * s.O + o) * s.KH + kh) * s.KW + kw : ((o * s.C + c) * s.KH + kh) * s.KW + kw;
          dW[at] = acc;
        }
}

}  // namespace mutant_detail

struct Conv2dMutantOp : Conv2dOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& ctx, const Vec<T>& dy) const {
    Ins<T> g = Conv2dOp::backward(in, ctx, dy);
    const T* x = in[0].data();
    const T* W = in[1].data();
    const T k10001 = T(1.0001);
    const size_t OH = s.OH(), OW = s.OW();
    using namespace mutant_detail;
    if (kind == "dx_pad_off_by_one") {
      dx_gather(s, W, dy.data(), g[0].data(), 1, 1, false);
    } else if (kind == "dx_stride_on_kernel_offset") {
      dx_gather(s, W, dy.data(), g[0].data(), 0, s.stride, false);
    } else if (kind == "dx_kernel_not_flipped") {
      dx_gather(s, W, dy.data(), g[0].data(), 0, 1, true);
    } else if (kind == "dx_scale_1.0001") {
      for (auto& e : g[0]) e *= k10001;
    } else if (kind == "dx_channels_swapped") {  // W read as [C, O, ...]: the io transpose forgotten
      Vec<T> Wt(s.w_size());
      for (size_t o = 0; o < s.O; ++o)
        for (size_t c = 0; c < s.C; ++c)
          for (size_t k = 0; k < s.KH * s.KW; ++k)
            Wt[(o * s.C + c) * s.KH * s.KW + k] = W[(c * s.O + o) * s.KH * s.KW + k];
      conv2d_backward_input(s, Wt.data(), dy.data(), g[0].data());
    } else if (kind == "dW_transposed_io") {
      dW_sum(s, x, dy.data(), g[1].data(), 0, 1, s.B, true);
    } else if (kind == "dW_pad_off_by_one") {
      dW_sum(s, x, dy.data(), g[1].data(), 1, 1, s.B, false);
    } else if (kind == "dW_stride_on_kernel_offset") {
      dW_sum(s, x, dy.data(), g[1].data(), 0, s.stride, s.B, false);
    } else if (kind == "dW_first_example_only") {
      dW_sum(s, x, dy.data(), g[1].data(), 0, 1, 1, false);
    } else if (kind == "dW_scale_1.0001") {
      for (auto& e : g[1]) e *= k10001;
    } else if (kind == "db_mean") {
      const T n = T(static_cast<int64_t>(s.B * OH * OW));
      for (auto& e : g[2]) e = e / n;
    } else if (kind == "db_first_example_only") {
      for (size_t o = 0; o < s.O; ++o) {
        T acc = T(0);
        for (size_t p = 0; p < OH * OW; ++p) acc += dy[o * OH * OW + p];
        g[2][o] = acc;
      }
    } else if (kind == "db_missing_last_row") {
      for (size_t o = 0; o < s.O; ++o) {
        T acc = T(0);
        for (size_t b = 0; b < s.B; ++b)
          for (size_t i = 0; i + 1 < OH; ++i)
            for (size_t j = 0; j < OW; ++j) acc += dy[((b * s.O + o) * OH + i) * OW + j];
        g[2][o] = acc;
      }
    } else if (kind == "db_scale_1.0001") {
      for (auto& e : g[2]) e *= k10001;
    } else {
      throw std::invalid_argument("unknown conv2d mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
