// Deliberately broken backwards: the evidence that the checker bites. Each mutant is the real op with
// one realistic bug in its backward (forward untouched). `veridl verify --mutants` runs them all and
// prints the kill rate; the tests require every one of them to be rejected.
#pragma once

#include <stdexcept>
#include <string>

#include "veridl/ops/dense.hpp"
#include "veridl/ops/softmax.hpp"

namespace veridl::ops {

struct DenseMutantOp : DenseOp {
  std::string kind;

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = DenseOp::backward(in, c, dy);
    const Vec<T>& x = in[0];
    const Vec<T>& W = in[1];
    const size_t B = s.B, I = s.I, O = s.O;
    const T k10001 = T(1.0001);
    if (kind == "dx_transpose") {
      for (size_t b = 0; b < B; ++b)
        for (size_t i = 0; i < I; ++i) {
          T acc = T(0);
          for (size_t o = 0; o < O; ++o) acc += W[o * I + i] * dy[b * O + o];
          g[0][b * I + i] = acc;
        }
    } else if (kind == "dx_sign") {
      for (auto& e : g[0]) e = -e;
    } else if (kind == "dx_scale_1.0001") {
      for (auto& e : g[0]) e *= k10001;
    } else if (kind == "dx_drop_last_output") {
      for (size_t b = 0; b < B; ++b)
        for (size_t i = 0; i < I; ++i) g[0][b * I + i] -= W[i * O + O - 1] * dy[b * O + O - 1];
    } else if (kind == "dW_sign") {
      for (auto& e : g[1]) e = -e;
    } else if (kind == "dW_scale_1.0001") {
      for (auto& e : g[1]) e *= k10001;
    } else if (kind == "dW_first_row_only") {
      for (size_t i = 0; i < I; ++i)
        for (size_t o = 0; o < O; ++o) g[1][i * O + o] = x[i] * dy[o];
    } else if (kind == "dW_wrong_row") {
      for (size_t i = 0; i < I; ++i)
        for (size_t o = 0; o < O; ++o) {
          T acc = T(0);
          for (size_t b = 0; b < B; ++b) acc += x[((b + 1) % B) * I + i] * dy[b * O + o];
          g[1][i * O + o] = acc;
        }
    } else if (kind == "db_mean") {
      for (auto& e : g[2]) e = e / T(static_cast<int64_t>(B));
    } else if (kind == "db_first_row_only") {
      for (size_t o = 0; o < O; ++o) g[2][o] = dy[o];
    } else if (kind == "db_scale_1.0001") {
      for (auto& e : g[2]) e *= k10001;
    } else if (kind == "db_sign") {
      for (auto& e : g[2]) e = -e;
    } else {
      throw std::invalid_argument("unknown dense mutant '" + kind + "'");
    }
    return g;
  }
};

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
