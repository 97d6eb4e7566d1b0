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

struct MaxPoolShape {
  size_t B = 1, C = 1, H = 1, W = 1, KH = 1, KW = 1, stride = 1;
  size_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;

  size_t OH() const { return detail::out_extent(H, pad_top, pad_bottom, KH, stride); }
  size_t OW() const { return detail::out_extent(W, pad_left, pad_right, KW, stride); }
  size_t x_size() const { return B * C * H * W; }
  size_t y_size() const { return B * C * OH() * OW(); }

  std::string str() const {
    return "B=" + std::to_string(B) + " C=" + std::to_string(C) + " H=" + std::to_string(H) +
           " W=" + std::to_string(W) + " k=" + std::to_string(KH) + "x" + std::to_string(KW) +
           " s=" + std::to_string(stride) + " " + detail::pads_str(pad_top, pad_left, pad_bottom, pad_right);
  }

  // Throws std::invalid_argument (one line, naming the shape) for zero sizes, windows larger than the
  // padded input, and windows that lie entirely in the padding.
  void validate() const {
    if (B == 0 || C == 0 || H == 0 || W == 0 || KH == 0 || KW == 0 || stride == 0)
      throw std::invalid_argument("maxpool: zero size in shape " + str());
    if (H + pad_top + pad_bottom < KH || W + pad_left + pad_right < KW)
      throw std::invalid_argument("maxpool: window " + std::to_string(KH) + "x" + std::to_string(KW) +
                                  " is larger than the padded input " + std::to_string(H + pad_top + pad_bottom) +
                                  "x" + std::to_string(W + pad_left + pad_right) + " in shape " + str());
    // Window starts increase with i: the first must end in range, the last must start in range.
    if (pad_top >= KH || pad_left >= KW || (OH() - 1) * stride >= H + pad_top || (OW() - 1) * stride >= W + pad_left)
      throw std::invalid_argument("maxpool: a window lies entirely in the padding in shape " + str());
  }
};

// A square-window pool shape from (k, stride, same/valid, pad style). Validated.
inline MaxPoolShape maxpool_shape(size_t B, size_t C, size_t H, size_t W, size_t k, size_t stride, Padding p,
                                  PadStyle style = PadStyle::XlaSame) {
  MaxPoolShape s{B, C, H, W, k, k, stride, 0, 0, 0, 0};
  if (H == 0 || W == 0 || k == 0 || stride == 0) s.validate();  // names the zero size
  const Pads ph = conv_pads(H, k, stride, p, style), pw = conv_pads(W, k, stride, p, style);
  s.pad_top = ph.lo;
  s.pad_bottom = ph.hi;
  s.pad_left = pw.lo;
  s.pad_right = pw.hi;
  s.validate();
  return s;
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
