// Deliberately broken backwards of LayerScale (book ch. 9): the evidence that the checker bites. Each mutant
// is the real op with one realistic bug in its backward (forward untouched). `veridl verify --mutants` runs
// them; tests/test_layernorm.cpp requires every one to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/layerScale/reference.hpp"

namespace veridl::ops {

struct LayerScaleMutantOp : LayerScaleOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = LayerScaleOp::backward(in, c, dy);
    const Vec<T>& x = in[0];
    const Vec<T>& gamma = in[1];
    const size_t C = s.C, K = s.inner;
    auto at = [&](size_t o, size_t ch, size_t i) { return (o * C + ch) * K + i; };
    auto dgamma_from = [&](auto value_of) {  // dgamma[c] = sum dy value_of(element)
      for (size_t ch = 0; ch < C; ++ch) {
        T acc = T(0);
        for (size_t o = 0; o < s.rows(); ++o)
          for (size_t i = 0; i < K; ++i) acc += dy[at(o, ch, i)] * value_of(at(o, ch, i));
        g[1][ch] = acc;
      }
    };
    if (kind == "dgamma_uses_y") {
      dgamma_from([&](size_t e) { return c.out[e]; });  // y = gamma x instead of x
    } else if (kind == "dx_gamma_missing") {
      for (size_t e = 0; e < s.count(); ++e) g[0][e] = dy[e];  // dx = dy: the scale forgotten
    } else if (kind == "dgamma_wrong_channel") {
      for (size_t ch = 0; ch < C; ++ch) {  // dgamma[c] sums channel c+1 (mod C): an index off by one
        const size_t c2 = (ch + 1) % C;
        T acc = T(0);
        for (size_t o = 0; o < s.rows(); ++o)
          for (size_t i = 0; i < K; ++i) acc += dy[at(o, c2, i)] * x[at(o, c2, i)];
        g[1][ch] = acc;
      }
    } else if (kind == "dx_channels_last_index") {
      // gamma indexed by the flat element index mod C, as if the channel axis were the last one: right on
      // [T, D], wrong on a C x H x W input
      for (size_t e = 0; e < s.count(); ++e) g[0][e] = gamma[e % C] * dy[e];
    } else if (kind == "dgamma_first_example_only") {
      for (size_t ch = 0; ch < C; ++ch) {
        T acc = T(0);
        for (size_t o = 0; o < s.P; ++o)
          for (size_t i = 0; i < K; ++i) acc += dy[at(o, ch, i)] * x[at(o, ch, i)];
        g[1][ch] = acc;  // the batch sum forgotten
      }
    } else {
      throw std::invalid_argument("unknown layerScale mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
