// Deliberately broken backwards of BatchNorm (book ch. 5): the evidence that the checker bites. Each
// mutant is the real op with one realistic bug in its backward (forward untouched). `veridl verify
// --mutants` runs them; tests/test_relu_bn.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/batchNorm/reference.hpp"

namespace veridl::ops {

struct BatchNormMutantOp : BatchNormOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy_in) const {
    if (kind == "relu_mask_ignored") {  // the fused ReLU's gate forgotten: the plain BatchNorm's backward
      BatchNormOp plain = *this;
      plain.relu = false;
      return plain.backward(in, c, dy_in);
    }
    Ins<T> g = BatchNormOp::backward(in, c, dy_in);
    // The mutants below break the BatchNorm part; with the fused ReLU they see the gated dy, as the real op does.
    Vec<T> gated;
    if (relu) {
      const std::vector<uint8_t> mask = ReluOp::mask_of(c);
      gated.resize(dy_in.size());
      relu_backward(ReluShape{dy_in.size()}, mask.data(), dy_in.data(), gated.data());
    }
    const Vec<T>& dy = relu ? gated : dy_in;
    const Vec<T>& x = in[0];
    const Vec<T>& gamma = in[1];
    const Vec<T>& r = c.saved[kR];
    const Vec<T>& xhat = c.saved[kXhat];
    const size_t HW = s.H * s.W, np = s.per_channel();
    const T n = T(static_cast<int64_t>(np));
    const T k10001 = T(1.0001);
    auto at = [&](size_t b, size_t ch, size_t k) { return (b * s.C + ch) * HW + k; };
    for (size_t ch = 0; ch < s.C; ++ch) {
      T sum_dy = T(0), sum_dy_xhat = T(0), sum_dy_x = T(0);
      for (size_t b = 0; b < s.N; ++b)
        for (size_t k = 0; k < HW; ++k) {
          sum_dy += dy[at(b, ch, k)];
          sum_dy_xhat += dy[at(b, ch, k)] * xhat[at(b, ch, k)];
          sum_dy_x += dy[at(b, ch, k)] * x[at(b, ch, k)];
        }
      const T sum_dxhat = gamma[ch] * sum_dy, sum_xhat_dxhat = gamma[ch] * sum_dy_xhat;
      // dx = r (dxhat - sum dxhat / n - xhat sum(xhat dxhat) / d) with a chosen r and divisor d.
      auto set_dx = [&](T rr, T d_proj, bool with_proj, bool with_gamma) {
        for (size_t b = 0; b < s.N; ++b)
          for (size_t k = 0; k < HW; ++k) {
            const size_t i = at(b, ch, k);
            const T dxh = with_gamma ? gamma[ch] * dy[i] : dy[i];
            const T sdxh = with_gamma ? sum_dxhat : sum_dy, sxdxh = with_gamma ? sum_xhat_dxhat : sum_dy_xhat;
            T v = dxh - sdxh / n;
            if (with_proj) v -= xhat[i] * sxdxh / d_proj;
            g[0][i] = rr * v;
          }
      };
      if (kind == "dx_n_minus_1") {
        set_dx(r[ch], n - T(1), true, true);  // 1/(n-1) in the projection term
      } else if (kind == "dx_missing_projection") {
        set_dx(r[ch], n, false, true);  // the xhat sum(xhat dxhat) term is missing
      } else if (kind == "dx_eps_dropped") {
        // r computed again from the batch variance without eps: rsqrt(var) instead of rsqrt(var + eps)
        T sum = T(0);
        for (size_t b = 0; b < s.N; ++b)
          for (size_t k = 0; k < HW; ++k) sum += x[at(b, ch, k)];
        const T mu = sum / n;
        T sq = T(0);
        for (size_t b = 0; b < s.N; ++b)
          for (size_t k = 0; k < HW; ++k) sq += (x[at(b, ch, k)] - mu) * (x[at(b, ch, k)] - mu);
        set_dx(arsqrt(sq / n), n, true, true);
      } else if (kind == "dx_gamma_missing") {
        set_dx(r[ch], n, true, false);  // dxhat = dy instead of gamma dy
      } else if (kind == "dx_scale_1.0001") {
        for (size_t b = 0; b < s.N; ++b)
          for (size_t k = 0; k < HW; ++k) g[0][at(b, ch, k)] *= k10001;
      } else if (kind == "dgamma_without_xhat") {
        g[1][ch] = sum_dy;
      } else if (kind == "dgamma_x_instead_of_xhat") {
        g[1][ch] = sum_dy_x;  // the unnormalised input
      } else if (kind == "dgamma_mean") {
        g[1][ch] = sum_dy_xhat / n;
      } else if (kind == "dgamma_scale_1.0001") {
        g[1][ch] *= k10001;
      } else if (kind == "dbeta_mean") {
        g[2][ch] = sum_dy / n;
      } else if (kind == "dbeta_times_gamma") {
        g[2][ch] = gamma[ch] * sum_dy;  // dxhat summed instead of dy
      } else if (kind == "dbeta_first_example_only") {
        T acc = T(0);
        for (size_t k = 0; k < HW; ++k) acc += dy[at(0, ch, k)];
        g[2][ch] = acc;
      } else if (kind == "dbeta_scale_1.0001") {
        g[2][ch] *= k10001;
      } else {
        throw std::invalid_argument("unknown batchnorm mutant '" + kind + "'");
      }
    }
    return g;
  }
};

}  // namespace veridl::ops
