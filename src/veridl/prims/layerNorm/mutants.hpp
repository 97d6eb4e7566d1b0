// Deliberately broken backwards of LayerNorm (book ch. 9): the evidence that the checker bites. Each mutant
// is the real op with one realistic bug in its backward (forward untouched). `veridl verify --mutants` runs
// them; tests/test_layernorm.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/layerNorm/reference.hpp"

namespace veridl::ops {

struct LayerNormMutantOp : LayerNormOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = LayerNormOp::backward(in, c, dy);
    const Vec<T>& x = in[0];
    const Vec<T>& gamma = in[1];
    const Vec<T>& r = c.saved[kR];
    const Vec<T>& xhat = c.saved[kXhat];
    const size_t C = s.C, K = s.inner;
    const T n = T(static_cast<int64_t>(C));
    auto at = [&](size_t o, size_t ch, size_t i) { return (o * C + ch) * K + i; };

    // dx at every position as r' (g - sum g / d1 - xhat sum(g xhat) / d2), with a chosen r', divisors and
    // terms (the correct one: r, d1 = d2 = C, both terms, g = gamma dy).
    auto set_dx = [&](auto rr_of, T d1, T d2, bool mean_term, bool xhat_term, bool with_gamma) {
      for (size_t o = 0; o < s.rows(); ++o)
        for (size_t i = 0; i < K; ++i) {
          T sum_g = T(0), sum_gx = T(0);
          for (size_t ch = 0; ch < C; ++ch) {
            const T gv = with_gamma ? gamma[ch] * dy[at(o, ch, i)] : dy[at(o, ch, i)];
            sum_g += gv;
            sum_gx += gv * xhat[at(o, ch, i)];
          }
          const T rr = rr_of(o, i);
          for (size_t ch = 0; ch < C; ++ch) {
            const size_t e = at(o, ch, i);
            T v = with_gamma ? gamma[ch] * dy[e] : dy[e];
            if (mean_term) v -= sum_g / d1;
            if (xhat_term) v -= xhat[e] * sum_gx / d2;
            g[0][e] = rr * v;
          }
        }
    };
    auto saved_r = [&](size_t o, size_t i) { return r[o * K + i]; };

    if (kind == "dx_default_eps") {
      // r computed again in the backward with the default eps 1e-5, not the layer's (ConvNeXt's 1e-6): a
      // fresh rsqrt of another value (invisible to finite differences at eps = 1e-5 and 1e-6 alike).
      auto recomputed = [&](size_t o, size_t i) {
        T sum = T(0);
        for (size_t ch = 0; ch < C; ++ch) sum += x[at(o, ch, i)];
        const T mu = sum / n;
        T sq = T(0);
        for (size_t ch = 0; ch < C; ++ch) sq += (x[at(o, ch, i)] - mu) * (x[at(o, ch, i)] - mu);
        return arsqrt(sq / n + T(kLayerNormEps));
      };
      set_dx(recomputed, n, n, true, true, true);
    } else if (kind == "dx_missing_mean") {
      set_dx(saved_r, n, n, false, true, true);  // the sum_c g (mean) term is missing
    } else if (kind == "dx_missing_xhat_term") {
      set_dx(saved_r, n, n, true, false, true);  // the xhat sum_c(g xhat) term is missing
    } else if (kind == "dx_count_c_plus_1") {
      set_dx(saved_r, n + T(1), n + T(1), true, true, true);  // divides by C + 1
    } else if (kind == "dx_count_positions") {
      // BatchNorm's count: divides by the positions per row (H W; 1 on axis "last") instead of C
      const T hw = T(static_cast<int64_t>(K));
      set_dx(saved_r, hw, hw, true, true, true);
    } else if (kind == "dx_gamma_missing") {
      set_dx(saved_r, n, n, true, true, false);  // g = dy: gamma forgotten
    } else if (kind == "dgamma_x_instead_of_xhat") {
      for (size_t ch = 0; ch < C; ++ch) {
        T acc = T(0);
        for (size_t o = 0; o < s.rows(); ++o)
          for (size_t i = 0; i < K; ++i) acc += dy[at(o, ch, i)] * x[at(o, ch, i)];
        g[1][ch] = acc;  // the unnormalised input
      }
    } else if (kind == "dbeta_first_row_only") {
      for (size_t ch = 0; ch < C; ++ch) {
        T acc = T(0);
        for (size_t i = 0; i < K; ++i) acc += dy[at(0, ch, i)];
        g[2][ch] = acc;  // the sum over the batch (and tokens) forgotten
      }
    } else {
      throw std::invalid_argument("unknown layerNorm mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
