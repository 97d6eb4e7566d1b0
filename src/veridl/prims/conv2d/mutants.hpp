// Deliberately broken conv2d backwards (book ch. 4; grouped and depthwise, ch. 7): the evidence that the
// checker bites on the index logic of convolutions. Each mutant is the real op with one realistic bug in
// its backward (forward untouched); the sweep of prims/conv2d/contracts.cpp must reject every one of them.
// The dw_ / g_ mutants belong to the depthwise / grouped contracts (G > 1: another channel's or group's
// kernel or input, the groups forgotten, the stride left out of the dilation, the kernel flip).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "veridl/prims/conv2d/reference.hpp"

namespace veridl::ops {

namespace mutant_detail {

// The input-gradient gather with knobs for the usual bugs (each knob at its default is the correct gather):
//   dx[b,c,h,w] = sum_{o in c's group} W[o',c-c0,kh',kw'] dy[b,o,i,j],  i s = h + (pt + shift) - kh kstep
//   (likewise j), kh' = flip ? KH - 1 - kh : kh (flip = the kernel is not flipped the way the gather
//   needs), o' = (o + wshift) mod O (the weight of another channel or group), all_groups = every output
//   channel summed (the groups forgotten), no_dilation = i = h + pt - kh (dy not dilated by the stride).
struct DxBugs {
  size_t shift = 0, kstep = 1;
  bool flip = false;
  size_t wshift = 0;
  bool all_groups = false, no_dilation = false;
};
template <class T>
void dx_gather(const Conv2dShape& s, const T* W, const T* dy, T* dx, const DxBugs& m) {
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
  const ptrdiff_t st = m.no_dilation ? 1 : static_cast<ptrdiff_t>(s.stride);
  auto out = [&](size_t h, size_t pad, size_t k, size_t n) -> ptrdiff_t {
    const ptrdiff_t t = static_cast<ptrdiff_t>(h + pad + m.shift) - static_cast<ptrdiff_t>(k * m.kstep);
    if (t < 0 || t % st != 0 || t / st >= static_cast<ptrdiff_t>(n)) return -1;
    return t / st;
  };
  for (size_t b = 0; b < s.B; ++b)
    for (size_t c = 0; c < s.C; ++c) {
      const size_t g = c / CG, cl = c - g * CG;
      const size_t o0 = m.all_groups ? 0 : g * OG, o1 = m.all_groups ? s.O : (g + 1) * OG;
      for (size_t h = 0; h < s.H; ++h)
        for (size_t w = 0; w < s.W; ++w) {
          T acc = T(0);
          for (size_t o = o0; o < o1; ++o)
            for (size_t kh = 0; kh < s.KH; ++kh) {
              const ptrdiff_t i = out(h, s.pad_top, kh, OH);
              if (i < 0) continue;
              for (size_t kw = 0; kw < s.KW; ++kw) {
                const ptrdiff_t j = out(w, s.pad_left, kw, OW);
                if (j < 0) continue;
                const size_t wh = m.flip ? s.KH - 1 - kh : kh, ww = m.flip ? s.KW - 1 - kw : kw;
                const size_t ow = (o + m.wshift) % s.O;
                acc += W[((ow * CG + cl) * s.KH + wh) * s.KW + ww] *
                       dy[((b * s.O + o) * OH + static_cast<size_t>(i)) * OW + static_cast<size_t>(j)];
              }
            }
          dx[((b * s.C + c) * s.H + h) * s.W + w] = acc;
        }
    }
}
template <class T>
void dx_gather(const Conv2dShape& s, const T* W, const T* dy, T* dx, size_t shift, size_t kstep, bool flip) {
  DxBugs m;
  m.shift = shift;
  m.kstep = kstep;
  m.flip = flip;
  dx_gather(s, W, dy, dx, m);
}

// The weight gradient with knobs: the input cell is (i s + kh kstep - (pt + shift), ...) (no_dilation: s
// read as 1); only batch entries [0, nb) are summed; transposed = written in [C, O, KH, KW] layout
// instead of [O, C, KH, KW] (G = 1 only); the input channel read is c0 + c' with c0 = ((o / OG + gshift)
// mod G) CG (gshift: another group's input), c0 = 0 when group0 (the group offset forgotten), or every
// group's c' summed when all_groups (the groups forgotten); flip = written spatially flipped.
struct DwBugs {
  size_t shift = 0, kstep = 1, nb = 0;  // nb 0: the whole batch
  bool transposed = false, no_dilation = false, group0 = false, all_groups = false, flip = false;
  size_t gshift = 0;
};
template <class T>
void dW_sum(const Conv2dShape& s, const T* x, const T* dy, T* dW, const DwBugs& m) {
  const size_t OH = s.OH(), OW = s.OW(), CG = s.CG(), OG = s.OG();
  const size_t nb = m.nb ? m.nb : s.B, st = m.no_dilation ? 1 : s.stride;
  auto in = [&](size_t i, size_t k, size_t pad, size_t n) -> ptrdiff_t {
    const ptrdiff_t v = static_cast<ptrdiff_t>(i * st + k * m.kstep) - static_cast<ptrdiff_t>(pad + m.shift);
    return v >= 0 && v < static_cast<ptrdiff_t>(n) ? v : -1;
  };
  for (size_t o = 0; o < s.O; ++o)
    for (size_t c = 0; c < CG; ++c)
      for (size_t kh = 0; kh < s.KH; ++kh)
        for (size_t kw = 0; kw < s.KW; ++kw) {
          T acc = T(0);
          const size_t g = m.group0 ? 0 : (o / OG + m.gshift) % s.G;
          for (size_t gg = m.all_groups ? 0 : g; gg < (m.all_groups ? s.G : g + 1); ++gg) {
            const size_t xc = gg * CG + c;
            for (size_t b = 0; b < nb; ++b)
              for (size_t i = 0; i < OH; ++i) {
                const ptrdiff_t ih = in(i, kh, s.pad_top, s.H);
                if (ih < 0) continue;
                for (size_t j = 0; j < OW; ++j) {
                  const ptrdiff_t iw = in(j, kw, s.pad_left, s.W);
                  if (iw < 0) continue;
                  acc += x[((b * s.C + xc) * s.H + static_cast<size_t>(ih)) * s.W + static_cast<size_t>(iw)] *
                         dy[((b * s.O + o) * OH + i) * OW + j];
                }
              }
          }
          const size_t wh = m.flip ? s.KH - 1 - kh : kh, ww = m.flip ? s.KW - 1 - kw : kw;
          const size_t at =
              m.transposed ? ((c * s.O + o) * s.KH + wh) * s.KW + ww : ((o * CG + c) * s.KH + wh) * s.KW + ww;
          dW[at] = acc;
        }
}
template <class T>
void dW_sum(const Conv2dShape& s, const T* x, const T* dy, T* dW, size_t shift, size_t kstep, size_t nb,
            bool transposed) {
  DwBugs m;
  m.shift = shift;
  m.kstep = kstep;
  m.nb = nb;
  m.transposed = transposed;
  dW_sum(s, x, dy, dW, m);
}

// db[o] = sum_{b,i,j} dy[b,(o + oshift) mod O,i,j]: the bias gradient of another channel or group.
template <class T>
void db_shifted(const Conv2dShape& s, const T* dy, T* db, size_t oshift) {
  const size_t P = s.OH() * s.OW();
  for (size_t o = 0; o < s.O; ++o) {
    T acc = T(0);
    for (size_t b = 0; b < s.B; ++b)
      for (size_t p = 0; p < P; ++p) acc += dy[(b * s.O + (o + oshift) % s.O) * P + p];
    db[o] = acc;
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
      // ---- depthwise (G = C = O) and grouped (G > 1) convolutions, book ch. 7 ----
    } else if (kind == "dw_dx_next_channel_weight" || kind == "g_dx_next_group_weight") {
      DxBugs m;  // W[o + OG]: the neighbouring channel's (depthwise) or group's kernel
      m.wshift = s.OG();
      dx_gather(s, W, dy.data(), g[0].data(), m);
    } else if (kind == "dw_dx_sums_all_channels" || kind == "g_dx_groups_ignored") {
      DxBugs m;  // every output channel feeds every input channel, as in a dense conv
      m.all_groups = true;
      dx_gather(s, W, dy.data(), g[0].data(), m);
    } else if (kind == "dw_dx_kernel_not_flipped" || kind == "g_dx_kernel_not_flipped") {
      DxBugs m;
      m.flip = true;
      dx_gather(s, W, dy.data(), g[0].data(), m);
    } else if (kind == "dw_dx_stride_ignored" || kind == "g_dx_stride_ignored") {
      DxBugs m;  // dy not dilated by the stride: i = h + pt - kh
      m.no_dilation = true;
      dx_gather(s, W, dy.data(), g[0].data(), m);
    } else if (kind == "dw_dx_pad_off_by_one") {
      DxBugs m;
      m.shift = 1;
      dx_gather(s, W, dy.data(), g[0].data(), m);
    } else if (kind == "dw_dW_sums_all_channels" || kind == "g_dW_groups_ignored") {
      DwBugs m;  // every group's input channel c' summed into dW[o, c']
      m.all_groups = true;
      dW_sum(s, x, dy.data(), g[1].data(), m);
    } else if (kind == "dw_dW_reads_channel_0" || kind == "g_dW_reads_group_0") {
      DwBugs m;  // the group's channel offset forgotten: x[b, c'] instead of x[b, c0 + c']
      m.group0 = true;
      dW_sum(s, x, dy.data(), g[1].data(), m);
    } else if (kind == "g_dW_next_group_input") {
      DwBugs m;
      m.gshift = 1;
      dW_sum(s, x, dy.data(), g[1].data(), m);
    } else if (kind == "dw_dW_stride_ignored" || kind == "g_dW_stride_ignored") {
      DwBugs m;  // x[i + kh - pt] instead of x[i s + kh - pt]
      m.no_dilation = true;
      dW_sum(s, x, dy.data(), g[1].data(), m);
    } else if (kind == "dw_dW_kernel_flipped") {
      DwBugs m;
      m.flip = true;
      dW_sum(s, x, dy.data(), g[1].data(), m);
    } else if (kind == "dw_dW_first_example_only" || kind == "g_dW_first_example_only") {
      DwBugs m;
      m.nb = 1;
      dW_sum(s, x, dy.data(), g[1].data(), m);
    } else if (kind == "dw_db_next_channel" || kind == "g_db_next_group") {
      db_shifted(s, dy.data(), g[2].data(), s.OG());
    } else if (kind == "dw_db_scale_1.0001" || kind == "g_db_scale_1.0001") {
      for (auto& e : g[2]) e *= k10001;
    } else {
      throw std::invalid_argument("unknown conv2d mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
