// Deliberately broken backwards of softmax and softmax cross-entropy (book ch. 2): the evidence that the
// checker bites. Each mutant is the real op with one realistic bug in its backward (forward untouched).
// `veridl verify --mutants` runs them all and prints the kill rate; the tests require every one of them to
// be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/prims/softmaxCE/reference.hpp"

namespace veridl::ops {

struct SoftmaxMutantOp : SoftmaxOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = SoftmaxOp::backward(in, c, dy);
    const Vec<T>& p = c.out;
    for (size_t b = 0; b < s.B; ++b) {
      T dot = T(0), sum = T(0);
      for (size_t k = 0; k < s.K; ++k) {
        dot += p[b * s.K + k] * dy[b * s.K + k];
        sum += dy[b * s.K + k];
      }
      for (size_t k = 0; k < s.K; ++k) {
        const size_t i = b * s.K + k;
        if (kind == "missing_dot") g[0][i] = p[i] * dy[i];
        else if (kind == "sign") g[0][i] = -g[0][i];
        else if (kind == "scale_1.0001") g[0][i] *= T(1.0001);
        else if (kind == "unweighted_dot") g[0][i] = p[i] * (dy[i] - sum);
        else throw std::invalid_argument("unknown softmax mutant '" + kind + "'");
      }
    }
    return g;
  }
};

struct SoftmaxCEMutantOp : SoftmaxCEOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = SoftmaxCEOp::backward(in, c, dy);
    const Vec<T>& p = c.saved[0];
    const T B = T(static_cast<int64_t>(s.B)), K = T(static_cast<int64_t>(s.K));
    for (size_t b = 0; b < s.B; ++b)
      for (size_t k = 0; k < s.K; ++k) {
        const size_t i = b * s.K + k;
        const bool on = static_cast<size_t>(labels[b]) == k;
        if (kind == "sign") {
          g[0][i] = -g[0][i];
        } else if (kind == "smoothing_K_minus_1") {  // eps/(K-1) off-label, 1-eps on-label
          T t = on ? T(1) - T(eps) : T(eps) / (K - T(1));
          g[0][i] = dy[0] / B * (p[i] - t);
        } else if (kind == "smoothing_ignored") {
          g[0][i] = dy[0] / B * (p[i] - (on ? T(1) : T(0)));
        } else if (kind == "missing_batch_mean") {
          g[0][i] *= B;
        } else if (kind == "scale_1.0001") {
          g[0][i] *= T(1.0001);
        } else {
          throw std::invalid_argument("unknown softmax-CE mutant '" + kind + "'");
        }
      }
    return g;
  }
};

}  // namespace veridl::ops
