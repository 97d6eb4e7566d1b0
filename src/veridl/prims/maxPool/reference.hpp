// max-pool (book ch. 4): NCHW, window KH x KW, stride, padding.
//
//   y[b,c,i,j] = max over the in-range cells of the window at (i s - pt, j s - pl)
//   dx[b,c,h,w] = sum over the windows whose chosen cell is (h, w) of dy[b,c,i,j]  maxPool2_has_vjp3_correct
//
// Padded cells never win: a window scans only its in-range cells (so padding is not "zero padding";
// it only adds windows). A window with no in-range cell is rejected by validate().
//
// The arg-max of every window is a decision and goes through the tape: Decisions::argmax over the
// window's in-range cells in row-major window scan order, so ties go to the first maximum in that order
// (the convention lives in Decisions). The forward stores the chosen cell as its in-window index
// kh * KW + kw (Ctx::dec in the record; an index buffer in the pointer API); the backward routes dy
// there and never re-decides. Overlapping windows (stride < k) accumulate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/conv2d/reference.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct MaxPoolTag {
  static constexpr const char* kName = "maxpool";
};
using MaxPoolShape = PoolShapeOf<MaxPoolTag>;

// A square-window pool shape from (k, stride, same/valid, pad style). Validated.
inline MaxPoolShape maxpool_shape(size_t B, size_t C, size_t H, size_t W, size_t k, size_t stride, Padding p,
                                  PadStyle style = PadStyle::XlaSame) {
  return MaxPoolShape::square(B, C, H, W, k, stride, p, style);
}

// y and idx [B, C, OH, OW]; idx holds the in-window index kh * KW + kw of each window's chosen cell.
template <class T>
void maxpool_forward(const MaxPoolShape& s, const T* x, T* y, uint32_t* idx, Decisions& D) {
  s.validate();
  const size_t OH = s.OH(), OW = s.OW();
  std::vector<uint32_t> cells(s.KH * s.KW);  // in-window indices of the in-range cells, scan order
  for (size_t bc = 0; bc < s.B * s.C; ++bc) {
    const T* plane = x + bc * s.H * s.W;
    for (size_t i = 0; i < OH; ++i)
      for (size_t j = 0; j < OW; ++j) {
        const ptrdiff_t h0 = static_cast<ptrdiff_t>(i * s.stride) - static_cast<ptrdiff_t>(s.pad_top);
        const ptrdiff_t w0 = static_cast<ptrdiff_t>(j * s.stride) - static_cast<ptrdiff_t>(s.pad_left);
        uint32_t n = 0;
        for (size_t kh = 0; kh < s.KH; ++kh)
          for (size_t kw = 0; kw < s.KW; ++kw) {
            const ptrdiff_t h = h0 + static_cast<ptrdiff_t>(kh), w = w0 + static_cast<ptrdiff_t>(kw);
            if (h >= 0 && h < static_cast<ptrdiff_t>(s.H) && w >= 0 && w < static_cast<ptrdiff_t>(s.W))
              cells[n++] = static_cast<uint32_t>(kh * s.KW + kw);
          }
        auto at = [&](uint32_t k) -> const T& {
          return plane[static_cast<size_t>(h0 + static_cast<ptrdiff_t>(k / s.KW)) * s.W +
                       static_cast<size_t>(w0 + static_cast<ptrdiff_t>(k % s.KW))];
        };
        const uint32_t a = D.argmax(n, [&](uint32_t t) { return at(cells[t]); });
        const size_t o = (bc * OH + i) * OW + j;
        idx[o] = cells[a];
        y[o] = at(cells[a]);
      }
  }
}

// The input position (flat, in [0, B C H W)) that output o's chosen in-window index k routes to;
// throws std::out_of_range for an index that is outside the window or in the padding.
inline size_t maxpool_source(const MaxPoolShape& s, size_t o, uint32_t k) {
  const size_t OH = s.OH(), OW = s.OW();
  const size_t j = o % OW, i = (o / OW) % OH, bc = o / (OW * OH);
  const ptrdiff_t h = static_cast<ptrdiff_t>(i * s.stride + k / s.KW) - static_cast<ptrdiff_t>(s.pad_top);
  const ptrdiff_t w = static_cast<ptrdiff_t>(j * s.stride + k % s.KW) - static_cast<ptrdiff_t>(s.pad_left);
  if (k >= s.KH * s.KW || h < 0 || h >= static_cast<ptrdiff_t>(s.H) || w < 0 || w >= static_cast<ptrdiff_t>(s.W))
    throw std::out_of_range("maxpool: index " + std::to_string(k) + " of output " + std::to_string(o) +
                            " is not an in-range window cell in shape " + s.str());
  return (bc * s.H + static_cast<size_t>(h)) * s.W + static_cast<size_t>(w);
}

// dx = 0, then dx[source of o] += dy[o] for every output o. Overwrites dx.
template <class T>
void maxpool_backward(const MaxPoolShape& s, const uint32_t* idx, const T* dy, T* dx) {
  s.validate();
  const size_t n_in = s.x_size(), n_out = s.y_size();
  for (size_t k = 0; k < n_in; ++k) dx[k] = T(0);
  for (size_t o = 0; o < n_out; ++o) dx[maxpool_source(s, o, idx[o])] += dy[o];
}

// The record form: input {x}, output y; the chosen in-window indices are kept in Ctx::dec.
struct MaxPoolOp {
  MaxPoolShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const {
    s.validate();
    return {s.x_size()};
  }
  size_t out_size() const { return s.y_size(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(out_size());
    c.dec.resize(out_size());
    maxpool_forward(s, in[0].data(), c.out.data(), c.dec.data(), D);
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.x_size())};
    maxpool_backward(s, c.dec.data(), dy.data(), g[0].data());
    return g;
  }
};

}  // namespace veridl::ops
