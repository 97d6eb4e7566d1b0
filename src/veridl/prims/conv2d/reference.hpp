// conv2d (book ch. 4; grouped and depthwise, ch. 7): NCHW cross-correlation with stride, zero padding and
// channel groups.
//
//   x [B, C, H, W], weight W [O, C/G, KH, KW] (OIHW, as the original and PyTorch's groups), optional bias
//   b [O] (convBn has none), y [B, O, OH, OW], OH = (H + pad_top + pad_bottom - KH) / stride + 1 (likewise
//   OW). Out-of-range input cells are zeros (zero padding).
//
//   Groups G (C % G == 0, O % G == 0): the channels split into G consecutive slices, CG = C / G input and
//   OG = O / G output channels each; output channel o belongs to group g(o) = o / OG and reads only the
//   input channels c0(o) = g(o) CG ... c0(o) + CG - 1, through W[o, c - c0(o), ., .]. G = 1 is the plain
//   convolution (c0 = 0, the formulas below with c' = c); G = C = O is depthwise (one channel per group,
//   W [C, 1, KH, KW]: MobileNet's 3x3 depthwise conv); G = C, O = m C a depthwise conv with channel
//   multiplier m.
//
//   forward        y[b,o,i,j] = b[o] + sum_{c',kh,kw} W[o,c',kh,kw] x[b,c0(o)+c', i s + kh - pt, j s + kw - pl]
//                  (c' < CG)
//   input grad     dx[b,c,h,w] = sum_{o in group(c), kh,kw} W[o, c - c0(o), kh, kw] dy[b,o,i,j]  over the
//                  (i, j) with i s = h + pt - kh, j s = w + pl - kw in range, group(c) = the OG output
//                  channels of group c / CG  (= per group, the conv of the stride-dilated dy with the
//                  spatially flipped, io-transposed kernel)
//                                                    conv2d_has_vjp3_correct          (G = 1)
//                                                    depthwise_has_vjp3_correct       (G = C = O)
//                                                    groupedConv2d_has_vjp3_correct   (other G > 1)
//   weight grad    dW[o,c',kh,kw] = sum_{b,i,j} x[b,c0(o)+c', i s + kh - pt, j s + kw - pl] dy[b,o,i,j]
//                                                    conv2d_weight_grad_has_vjp, depthwise_weight_grad_has_vjp,
//                                                    groupedConv2d_weight_grad_has_vjp
//   bias grad      db[o] = sum_{b,i,j} dy[b,o,i,j]   conv2d_bias_grad_has_vjp, depthwise_bias_grad_has_vjp,
//                                                    groupedConv2d_bias_grad_has_vjp
//
// Written once over the scalar type: the reference the float kernels (prims/conv2d/kernel.hpp) are tested
// against, and the code the exact backend checks. There are no data-dependent decisions. At G = 1 every
// loop runs in the order it ran before groups existed (c' = c, c0 = 0): the same values bit for bit.
//
// Padding helpers (original-system.md 1.1, 9.4 item 6): "valid" pads nothing; "same" pads either
//   PadStyle::Symmetric  (k - 1) / 2 on both sides (torchvision; ResNet), or
//   PadStyle::XlaSame    output ceil(n / s), total pad max((ceil(n / s) - 1) s + k - n, 0), the extra
//                        cell on the high side (bottom / right): 7x7/s2 on 224 pads (2, 3).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "veridl/calculus/dot.hpp"
#include "veridl/graph/pad_style.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl::ops {

enum class Padding { Same, Valid };
using PadStyle = graph::PadStyle;  // { Symmetric, XlaSame }: graph/pad_style.hpp

// "same" or "valid"; anything else is an std::invalid_argument.
inline Padding parse_padding(std::string_view s) {
  if (s == "same") return Padding::Same;
  if (s == "valid") return Padding::Valid;
  throw std::invalid_argument("padding must be \"same\" or \"valid\", not \"" + std::string(s) + "\"");
}

// The pads of one spatial dimension: lo = top / left, hi = bottom / right.
struct Pads {
  size_t lo = 0, hi = 0;
  friend bool operator==(const Pads&, const Pads&) = default;
};

// Pads for an input extent n, kernel k, stride s.
inline Pads conv_pads(size_t n, size_t k, size_t stride, Padding p, PadStyle style) {
  if (n == 0 || k == 0 || stride == 0)
    throw std::invalid_argument("conv_pads: zero size (n=" + std::to_string(n) + " k=" + std::to_string(k) +
                                " stride=" + std::to_string(stride) + ")");
  if (p == Padding::Valid) return {0, 0};
  if (style == PadStyle::Symmetric) return {(k - 1) / 2, (k - 1) / 2};
  const size_t out = (n + stride - 1) / stride;  // ceil(n / s)
  const size_t need = (out - 1) * stride + k;
  const size_t total = need > n ? need - n : 0;
  return {total / 2, total - total / 2};
}

namespace detail {
inline std::string pads_str(size_t t, size_t l, size_t b, size_t r) {
  return "pad=(t" + std::to_string(t) + ",l" + std::to_string(l) + ",b" + std::to_string(b) + ",r" +
         std::to_string(r) + ")";
}
// Output extent for input n, pads lo + hi, kernel k, stride s; 0 when the kernel does not fit.
inline size_t out_extent(size_t n, size_t lo, size_t hi, size_t k, size_t s) {
  if (s == 0 || k == 0 || n + lo + hi < k) return 0;
  return (n + lo + hi - k) / s + 1;
}
}  // namespace detail

// A pooling window over B x C x H x W (max-pool, avg-pool): KH x KW, stride, pads. Tag::kName names the op
// in the errors. validate() throws std::invalid_argument (one line, naming the shape) for zero sizes,
// windows larger than the padded input, and windows that lie entirely in the padding (window starts
// increase with i: the first must end in range, the last must start in range).
template <class Tag>
struct PoolShapeOf {
  size_t B = 1, C = 1, H = 1, W = 1, KH = 1, KW = 1, stride = 1;
  size_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;

  size_t OH() const { return detail::out_extent(H, pad_top, pad_bottom, KH, stride); }
  size_t OW() const { return detail::out_extent(W, pad_left, pad_right, KW, stride); }
  size_t x_size() const { return B * C * H * W; }
  size_t y_size() const { return B * C * OH() * OW(); }
  size_t window() const { return KH * KW; }

  std::string str() const {
    return "B=" + std::to_string(B) + " C=" + std::to_string(C) + " H=" + std::to_string(H) +
           " W=" + std::to_string(W) + " k=" + std::to_string(KH) + "x" + std::to_string(KW) +
           " s=" + std::to_string(stride) + " " + detail::pads_str(pad_top, pad_left, pad_bottom, pad_right);
  }

  void validate() const {
    const std::string op = Tag::kName;
    if (B == 0 || C == 0 || H == 0 || W == 0 || KH == 0 || KW == 0 || stride == 0)
      throw std::invalid_argument(op + ": zero size in shape " + str());
    if (H + pad_top + pad_bottom < KH || W + pad_left + pad_right < KW)
      throw std::invalid_argument(op + ": window " + std::to_string(KH) + "x" + std::to_string(KW) +
                                  " is larger than the padded input " + std::to_string(H + pad_top + pad_bottom) +
                                  "x" + std::to_string(W + pad_left + pad_right) + " in shape " + str());
    if (pad_top >= KH || pad_left >= KW || (OH() - 1) * stride >= H + pad_top || (OW() - 1) * stride >= W + pad_left)
      throw std::invalid_argument(op + ": a window lies entirely in the padding in shape " + str());
  }

  // A square window from (k, stride, same/valid, pad style). Validated.
  static PoolShapeOf square(size_t B, size_t C, size_t H, size_t W, size_t k, size_t stride, Padding p,
                            PadStyle style) {
    PoolShapeOf s{B, C, H, W, k, k, stride, 0, 0, 0, 0};
    if (H == 0 || W == 0 || k == 0 || stride == 0) s.validate();  // names the zero size
    const Pads ph = conv_pads(H, k, stride, p, style), pw = conv_pads(W, k, stride, p, style);
    s.pad_top = ph.lo;
    s.pad_bottom = ph.hi;
    s.pad_left = pw.lo;
    s.pad_right = pw.hi;
    s.validate();
    return s;
  }
};

struct Conv2dShape {
  size_t B = 1, C = 1, H = 1, W = 1, O = 1, KH = 1, KW = 1, stride = 1;
  size_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool bias = true;
  size_t G = 1;  // channel groups (last, so that the positional initialisers above keep their meaning)

  size_t OH() const { return detail::out_extent(H, pad_top, pad_bottom, KH, stride); }
  size_t OW() const { return detail::out_extent(W, pad_left, pad_right, KW, stride); }
  size_t CG() const { return G ? C / G : 0; }  // input channels per group (the weight's second extent)
  size_t OG() const { return G ? O / G : 0; }  // output channels per group
  bool depthwise() const { return G > 1 && G == C && G == O; }
  size_t x_size() const { return B * C * H * W; }
  size_t w_size() const { return O * CG() * KH * KW; }
  size_t y_size() const { return B * O * OH() * OW(); }

  std::string str() const {
    return "B=" + std::to_string(B) + " C=" + std::to_string(C) + " H=" + std::to_string(H) +
           " W=" + std::to_string(W) + " O=" + std::to_string(O) + " k=" + std::to_string(KH) + "x" +
           std::to_string(KW) + " s=" + std::to_string(stride) + " " +
           detail::pads_str(pad_top, pad_left, pad_bottom, pad_right) + (bias ? " bias" : " no-bias") +
           (G != 1 ? " groups=" + std::to_string(G) : "");
  }

  // Throws std::invalid_argument (one line, naming the shape) for zero sizes, groups that do not divide
  // both channel counts, and kernels larger than the padded input.
  void validate() const {
    if (B == 0 || C == 0 || H == 0 || W == 0 || O == 0 || KH == 0 || KW == 0 || stride == 0 || G == 0)
      throw std::invalid_argument("conv2d: zero size in shape " + str());
    if (C % G != 0 || O % G != 0)
      throw std::invalid_argument("conv2d: groups " + std::to_string(G) + " must divide both C=" + std::to_string(C) +
                                  " and O=" + std::to_string(O) + " in shape " + str());
    if (H + pad_top + pad_bottom < KH || W + pad_left + pad_right < KW)
      throw std::invalid_argument("conv2d: kernel " + std::to_string(KH) + "x" + std::to_string(KW) +
                                  " is larger than the padded input " + std::to_string(H + pad_top + pad_bottom) +
                                  "x" + std::to_string(W + pad_left + pad_right) + " in shape " + str());
  }
};

// A square-kernel conv shape from (k, stride, same/valid, pad style). Validated.
inline Conv2dShape conv2d_shape(size_t B, size_t C, size_t H, size_t W, size_t O, size_t k, size_t stride,
                                Padding p, PadStyle style = PadStyle::XlaSame, bool bias = true, size_t groups = 1) {
  Conv2dShape s{B, C, H, W, O, k, k, stride, 0, 0, 0, 0, bias, groups};
  if (H == 0 || W == 0 || k == 0 || stride == 0) s.validate();  // names the zero size
  const Pads ph = conv_pads(H, k, stride, p, style), pw = conv_pads(W, k, stride, p, style);
  s.pad_top = ph.lo;
  s.pad_bottom = ph.hi;
  s.pad_left = pw.lo;
  s.pad_right = pw.hi;
  s.validate();
  return s;
}

namespace detail {
// Input coordinate of output position i at kernel offset k: i s + k - pad, or -1 when it is padding.
inline ptrdiff_t in_coord(size_t i, size_t k, size_t stride, size_t pad, size_t n) {
  const ptrdiff_t v = static_cast<ptrdiff_t>(i * stride + k) - static_cast<ptrdiff_t>(pad);
  return v >= 0 && v < static_cast<ptrdiff_t>(n) ? v : -1;
}
// Output position i with i s = h + pad - k, or -1 when there is none in [0, out).
inline ptrdiff_t out_coord(size_t h, size_t k, size_t stride, size_t pad, size_t out) {
  const ptrdiff_t t = static_cast<ptrdiff_t>(h + pad) - static_cast<ptrdiff_t>(k);
  if (t < 0 || t % static_cast<ptrdiff_t>(stride) != 0) return -1;
  const ptrdiff_t i = t / static_cast<ptrdiff_t>(stride);
  return i < static_cast<ptrdiff_t>(out) ? i : -1;
}
// Fork threads only for shapes with enough multiply-adds to pay for it (the contract sweeps are tiny).
inline bool parallel_worth_it(const Conv2dShape& s) {
  return s.B * s.O * s.OH() * s.OW() * s.CG() * s.KH * s.KW >= (size_t{1} << 18);
}
// The output positions i in [0, out) whose input coordinate i s + k - pad lies in [0, n): [lo, hi).
struct Span {
  size_t lo = 0, hi = 0;
};
inline Span valid_outputs(size_t out, size_t k, size_t stride, size_t pad, size_t n) {
  Span r;
  if (pad > k) r.lo = (pad - k + stride - 1) / stride;
  r.hi = n + pad > k ? std::min(out, (n - 1 + pad - k) / stride + 1) : 0;
  if (r.hi < r.lo) r.hi = r.lo;
  return r;
}

// The exact backend's loop orders (T a prime field or dual numbers over one, calculus/dot.hpp): each
// kernel tap is one scalar times a strided run of inputs, added into an array of lazy accumulators, with
// the padding's range cut out of the loops instead of tested per element. Same values as the loops below
// (the arithmetic is exact); the float and double paths keep their order.
template <class T>
void conv2d_forward_exact(const Conv2dShape& s, const T* x, const T* W, const T* bias, T* y) {
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
#pragma omp parallel for collapse(2) schedule(dynamic) if (parallel_worth_it(s))
  for (size_t b = 0; b < s.B; ++b)
    for (size_t o = 0; o < s.O; ++o) {
      const size_t c0 = o / OG * CG;
      std::vector<DotAcc<T>> acc(OH * OW, DotAcc<T>(s.bias ? bias[o] : T(0)));
      for (size_t c = 0; c < CG; ++c) {
        const T* xc = x + (b * s.C + c0 + c) * s.H * s.W;
        for (size_t kh = 0; kh < s.KH; ++kh) {
          const Span si = valid_outputs(OH, kh, s.stride, s.pad_top, s.H);
          for (size_t kw = 0; kw < s.KW; ++kw) {
            const Span sj = valid_outputs(OW, kw, s.stride, s.pad_left, s.W);
            const T w = W[((o * CG + c) * s.KH + kh) * s.KW + kw];
            for (size_t i = si.lo; i < si.hi; ++i) {
              const T* xr = xc + (i * s.stride + kh - s.pad_top) * s.W;
              DotAcc<T>* ar = acc.data() + i * OW;
              for (size_t j = sj.lo; j < sj.hi; ++j) ar[j].add_mul(w, xr[j * s.stride + kw - s.pad_left]);
            }
          }
        }
      }
      T* yo = y + (b * s.O + o) * OH * OW;
      for (size_t p = 0; p < OH * OW; ++p) yo[p] = acc[p].value();
    }
}

template <class T>
void conv2d_backward_input_exact(const Conv2dShape& s, const T* W, const T* dy, T* dx) {
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
#pragma omp parallel for collapse(2) schedule(dynamic) if (parallel_worth_it(s))
  for (size_t b = 0; b < s.B; ++b)
    for (size_t c = 0; c < s.C; ++c) {
      const size_t g = c / CG, cl = c - g * CG;
      std::vector<DotAcc<T>> acc(s.H * s.W);
      for (size_t o = g * OG; o < (g + 1) * OG; ++o) {
        const T* dyo = dy + (b * s.O + o) * OH * OW;
        for (size_t kh = 0; kh < s.KH; ++kh) {
          const Span si = valid_outputs(OH, kh, s.stride, s.pad_top, s.H);
          for (size_t kw = 0; kw < s.KW; ++kw) {
            const Span sj = valid_outputs(OW, kw, s.stride, s.pad_left, s.W);
            const T w = W[((o * CG + cl) * s.KH + kh) * s.KW + kw];
            for (size_t i = si.lo; i < si.hi; ++i) {
              DotAcc<T>* ar = acc.data() + (i * s.stride + kh - s.pad_top) * s.W;
              const T* dr = dyo + i * OW;
              for (size_t j = sj.lo; j < sj.hi; ++j) ar[j * s.stride + kw - s.pad_left].add_mul(w, dr[j]);
            }
          }
        }
      }
      T* dxc = dx + (b * s.C + c) * s.H * s.W;
      for (size_t p = 0; p < s.H * s.W; ++p) dxc[p] = acc[p].value();
    }
}

template <class T>
void conv2d_backward_weight_exact(const Conv2dShape& s, const T* x, const T* dy, T* dW) {
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
#pragma omp parallel for collapse(2) schedule(dynamic) if (parallel_worth_it(s))
  for (size_t o = 0; o < s.O; ++o)
    for (size_t c = 0; c < CG; ++c) {
      const size_t xc = o / OG * CG + c;
      for (size_t kh = 0; kh < s.KH; ++kh) {
        const Span si = valid_outputs(OH, kh, s.stride, s.pad_top, s.H);
        for (size_t kw = 0; kw < s.KW; ++kw) {
          const Span sj = valid_outputs(OW, kw, s.stride, s.pad_left, s.W);
          DotAcc<T> acc;
          for (size_t b = 0; b < s.B; ++b)
            for (size_t i = si.lo; i < si.hi; ++i) {
              const T* xr = x + ((b * s.C + xc) * s.H + i * s.stride + kh - s.pad_top) * s.W;
              const T* dr = dy + ((b * s.O + o) * OH + i) * OW;
              for (size_t j = sj.lo; j < sj.hi; ++j) acc.add_mul(xr[j * s.stride + kw - s.pad_left], dr[j]);
            }
          dW[((o * CG + c) * s.KH + kh) * s.KW + kw] = acc.value();
        }
      }
    }
}
}  // namespace detail

// y = conv(x, W) (+ b). bias is read only when s.bias (may be nullptr otherwise). Overwrites y.
// (bias does not take part in deducing T, so a literal nullptr works.)
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* W, const std::type_identity_t<T>* bias, T* y) {
  s.validate();
  if constexpr (kLazyDot<T>) return detail::conv2d_forward_exact(s, x, W, bias, y);
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
  // Each thread computes whole output elements in the same order as a serial run: identical results for any
  // thread count and any T (the reference runs in the prime fields at real network shapes, where it is slow).
#pragma omp parallel for collapse(2) schedule(static) if (detail::parallel_worth_it(s))
  for (size_t b = 0; b < s.B; ++b)
    for (size_t o = 0; o < s.O; ++o) {
      const size_t c0 = o / OG * CG;  // the group's first input channel
      for (size_t i = 0; i < OH; ++i)
        for (size_t j = 0; j < OW; ++j) {
          T acc = s.bias ? bias[o] : T(0);
          for (size_t c = 0; c < CG; ++c)
            for (size_t kh = 0; kh < s.KH; ++kh) {
              const ptrdiff_t ih = detail::in_coord(i, kh, s.stride, s.pad_top, s.H);
              if (ih < 0) continue;
              for (size_t kw = 0; kw < s.KW; ++kw) {
                const ptrdiff_t iw = detail::in_coord(j, kw, s.stride, s.pad_left, s.W);
                if (iw < 0) continue;
                acc += W[((o * CG + c) * s.KH + kh) * s.KW + kw] *
                       x[((b * s.C + c0 + c) * s.H + static_cast<size_t>(ih)) * s.W + static_cast<size_t>(iw)];
              }
            }
          y[((b * s.O + o) * OH + i) * OW + j] = acc;
        }
    }
}

// dx[b,c,h,w] = sum_{o in c's group, kh,kw} W[o,c-c0,kh,kw] dy[b,o,(h+pt-kh)/s,(w+pl-kw)/s] (exact, in-range
// quotients).
template <class T>
void conv2d_backward_input(const Conv2dShape& s, const T* W, const T* dy, T* dx) {
  s.validate();
  if constexpr (kLazyDot<T>) return detail::conv2d_backward_input_exact(s, W, dy, dx);
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
#pragma omp parallel for collapse(2) schedule(static) if (detail::parallel_worth_it(s))
  for (size_t b = 0; b < s.B; ++b)
    for (size_t c = 0; c < s.C; ++c) {
      const size_t g = c / CG, cl = c - g * CG;  // c's group and its index in the group
      for (size_t h = 0; h < s.H; ++h)
        for (size_t w = 0; w < s.W; ++w) {
          T acc = T(0);
          for (size_t o = g * OG; o < (g + 1) * OG; ++o)
            for (size_t kh = 0; kh < s.KH; ++kh) {
              const ptrdiff_t i = detail::out_coord(h, kh, s.stride, s.pad_top, OH);
              if (i < 0) continue;
              for (size_t kw = 0; kw < s.KW; ++kw) {
                const ptrdiff_t j = detail::out_coord(w, kw, s.stride, s.pad_left, OW);
                if (j < 0) continue;
                acc += W[((o * CG + cl) * s.KH + kh) * s.KW + kw] *
                       dy[((b * s.O + o) * OH + static_cast<size_t>(i)) * OW + static_cast<size_t>(j)];
              }
            }
          dx[((b * s.C + c) * s.H + h) * s.W + w] = acc;
        }
    }
}

// dW[o,c',kh,kw] = sum_{b,i,j} x[b,c0(o)+c',i s+kh-pt,j s+kw-pl] dy[b,o,i,j] (in-range input cells).
template <class T>
void conv2d_backward_weight(const Conv2dShape& s, const T* x, const T* dy, T* dW) {
  s.validate();
  if constexpr (kLazyDot<T>) return detail::conv2d_backward_weight_exact(s, x, dy, dW);
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
#pragma omp parallel for collapse(2) schedule(static) if (detail::parallel_worth_it(s))
  for (size_t o = 0; o < s.O; ++o)
    for (size_t c = 0; c < CG; ++c) {
      const size_t xc = o / OG * CG + c;  // the input channel this weight reads
      for (size_t kh = 0; kh < s.KH; ++kh)
        for (size_t kw = 0; kw < s.KW; ++kw) {
          T acc = T(0);
          for (size_t b = 0; b < s.B; ++b)
            for (size_t i = 0; i < OH; ++i) {
              const ptrdiff_t ih = detail::in_coord(i, kh, s.stride, s.pad_top, s.H);
              if (ih < 0) continue;
              for (size_t j = 0; j < OW; ++j) {
                const ptrdiff_t iw = detail::in_coord(j, kw, s.stride, s.pad_left, s.W);
                if (iw < 0) continue;
                acc += x[((b * s.C + xc) * s.H + static_cast<size_t>(ih)) * s.W + static_cast<size_t>(iw)] *
                       dy[((b * s.O + o) * OH + i) * OW + j];
              }
            }
          dW[((o * CG + c) * s.KH + kh) * s.KW + kw] = acc;
        }
    }
}

// db[o] = sum_{b,i,j} dy[b,o,i,j].
template <class T>
void conv2d_backward_bias(const Conv2dShape& s, const T* dy, T* db) {
  s.validate();
  const size_t P = s.OH() * s.OW();
  for (size_t o = 0; o < s.O; ++o) {
    T acc = T(0);
    for (size_t b = 0; b < s.B; ++b)
      for (size_t p = 0; p < P; ++p) acc += dy[(b * s.O + o) * P + p];
    db[o] = acc;
  }
}

// The record form: inputs {x, W, b} (or {x, W} without bias), output y.
struct Conv2dOp {
  Conv2dShape s;
  std::vector<std::string> in_names() const {
    if (s.bias) return {"x", "W", "b"};
    return {"x", "W"};
  }
  std::vector<size_t> in_sizes() const {
    s.validate();
    if (s.bias) return {s.x_size(), s.w_size(), s.O};
    return {s.x_size(), s.w_size()};
  }
  size_t out_size() const { return s.y_size(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(out_size());
    conv2d_forward(s, in[0].data(), in[1].data(), s.bias ? in[2].data() : nullptr, c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.x_size()), Vec<T>(s.w_size())};
    conv2d_backward_input(s, in[1].data(), dy.data(), g[0].data());
    conv2d_backward_weight(s, in[0].data(), dy.data(), g[1].data());
    if (s.bias) {
      g.emplace_back(s.O);
      conv2d_backward_bias(s, dy.data(), g[2].data());
    }
    return g;
  }
};

}  // namespace veridl::ops
