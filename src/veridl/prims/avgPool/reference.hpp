// avg-pool (book ch. 6): NCHW, window KH x KW, stride, zero padding; the divisor is always the full window
// KH KW (PyTorch's count_include_pad=True, its default): a padded cell counts as a zero in the sum AND in
// the divisor, so a border window of a "same" pool averages its in-range cells over KH KW, not over how many
// of them exist.
//
//   y[b,c,i,j]  = inv * sum over the window's in-range cells (h, w) of x[b,c,h,w],   inv = 1 / (KH KW)
//                 window (i, j): h = i s - pt + kh, w = j s - pl + kw, 0 <= kh < KH, 0 <= kw < KW
//   dx[b,c,h,w] = inv * sum over the windows (i, j) containing (h, w) of dy[b,c,i,j]
//                                                                           avgPool_has_vjp_correct
//
// No data-dependent decisions: the op is linear, so the identity check covers it for every input. inv is
// T(1) / T(KH KW) (exact in the field), computed once. Summation order (the fast kernels use the same one
// in float, so they are bit-identical to this reference at T = float): the forward sums each window row
// over kw, then the row sums over kh, each from T(0), then multiplies by inv; the backward (gather form)
// sums dy over the covering j of each covering output row i, then those row sums over i, then multiplies.
//
// Written once over the scalar type: the reference the float kernels (prims/avgPool/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/conv2d/reference.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl::ops {

// window() is the divisor.
struct AvgPoolTag {
  static constexpr const char* kName = "avgpool";
};
using AvgPoolShape = PoolShapeOf<AvgPoolTag>;

// A square-window pool shape from (k, stride, same/valid, pad style). Validated.
inline AvgPoolShape avgpool_shape(size_t B, size_t C, size_t H, size_t W, size_t k, size_t stride, Padding p,
                                  PadStyle style = PadStyle::XlaSame) {
  return AvgPoolShape::square(B, C, H, W, k, stride, p, style);
}

namespace detail {
// The outputs [lo, hi) along one dimension whose windows contain input coordinate h (may be empty: with a
// stride larger than the window, or rows past the last window, some inputs are read by no window).
inline void covering(size_t h, size_t k, size_t stride, size_t pad, size_t out, size_t& lo, size_t& hi) {
  const size_t t = h + pad;  // window i contains h iff i s <= t <= i s + k - 1
  lo = t + 1 > k ? (t + 1 - k + stride - 1) / stride : 0;
  hi = t / stride + 1;
  if (hi > out) hi = out;
  if (lo > hi) lo = hi;
}
}  // namespace detail

// y [B, C, OH, OW]. Overwrites y.
template <class T>
void avgpool_forward(const AvgPoolShape& s, const T* x, T* y) {
  s.validate();
  const size_t OH = s.OH(), OW = s.OW();
  const T inv = T(1) / T(static_cast<int64_t>(s.window()));
  for (size_t bc = 0; bc < s.B * s.C; ++bc) {
    const T* plane = x + bc * s.H * s.W;
    for (size_t i = 0; i < OH; ++i)
      for (size_t j = 0; j < OW; ++j) {
        T acc = T(0);
        for (size_t kh = 0; kh < s.KH; ++kh) {
          const ptrdiff_t h = detail::in_coord(i, kh, s.stride, s.pad_top, s.H);
          if (h < 0) continue;
          T row = T(0);
          for (size_t kw = 0; kw < s.KW; ++kw) {
            const ptrdiff_t w = detail::in_coord(j, kw, s.stride, s.pad_left, s.W);
            if (w >= 0) row += plane[static_cast<size_t>(h) * s.W + static_cast<size_t>(w)];
          }
          acc += row;
        }
        y[(bc * OH + i) * OW + j] = acc * inv;
      }
  }
}

// dx [B, C, H, W]: every input cell gathers dy over the windows containing it. Overwrites dx.
template <class T>
void avgpool_backward(const AvgPoolShape& s, const T* dy, T* dx) {
  s.validate();
  const size_t OH = s.OH(), OW = s.OW();
  const T inv = T(1) / T(static_cast<int64_t>(s.window()));
  for (size_t bc = 0; bc < s.B * s.C; ++bc) {
    const T* g = dy + bc * OH * OW;
    for (size_t h = 0; h < s.H; ++h) {
      size_t i0, i1;
      detail::covering(h, s.KH, s.stride, s.pad_top, OH, i0, i1);
      for (size_t w = 0; w < s.W; ++w) {
        size_t j0, j1;
        detail::covering(w, s.KW, s.stride, s.pad_left, OW, j0, j1);
        T acc = T(0);
        for (size_t i = i0; i < i1; ++i) {
          T row = T(0);
          for (size_t j = j0; j < j1; ++j) row += g[i * OW + j];
          acc += row;
        }
        dx[(bc * s.H + h) * s.W + w] = acc * inv;
      }
    }
  }
}

// The record form: input {x}, output y. No decisions.
struct AvgPoolOp {
  AvgPoolShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const {
    s.validate();
    return {s.x_size()};
  }
  size_t out_size() const { return s.y_size(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(out_size());
    avgpool_forward(s, in[0].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.x_size())};
    avgpool_backward(s, dy.data(), g[0].data());
    return g;
  }
};

}  // namespace veridl::ops
