// Dropout and drop-path (stochastic depth), in training mode: y = keep ? x / q : 0, with keep probability
// q = 1 - rate and one random decision per element (dropout) or per example (drop-path, which keeps or
// drops a whole residual branch; Huang et al. 2016, timm's DropPath). At evaluation both are the identity.
//
//   forward   keep_d = D.draw(noise::keep(key, d, threshold(q)))     d = element or example index
//             y_i    = keep_{d(i)} ? x_i * (1/q) : 0
//   VJP       dx_i   = keep_{d(i)} ? dy_i * (1/q) : 0                 dropout_has_vjp_correct,
//                                                                     dropPath_has_vjp_correct
//
// The decisions go through the tape like ReLU's mask: the live value is the counter-based generator's
// (calculus/decisions.hpp, noise::), a pure function of the node's key and d, so the fast kernels draw the
// same bits without a tape; the field run replays them and the random tape covers any other pattern. The
// scale 1/q enters as T(1) / T(q) (q's exact dyadic embedding): the backward reuses that same constant.
//
// Written once over the scalar type: the reference the float kernels (prims/dropout/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct DropShape {
  size_t N = 1;              // examples
  size_t width = 1;          // elements per example
  bool per_example = false;  // drop-path: one decision per example
  size_t first = 0;          // these N examples start at example `first` of the global batch (data-parallel ranks):
                             // decision d is drawn as the global batch's decision first_decision() + d
  size_t count() const { return N * width; }
  size_t decisions() const { return per_example ? N : N * width; }
  size_t per_decision() const { return per_example ? width : 1; }  // elements one decision covers
  size_t first_decision() const { return per_example ? first : first * width; }
};

// Writes y[count] and keep[decisions] (1: kept).
template <class T>
void drop_forward(const DropShape& s, double rate, uint64_t key, const T* x, T* y, uint8_t* keep, Decisions& D) {
  const uint32_t th = noise::keep_threshold(1.0 - rate);
  for (size_t d = 0; d < s.decisions(); ++d) keep[d] = D.draw(noise::keep(key, s.first_decision() + d, th)) ? 1 : 0;
  const T scale = T(1) / T(1.0 - rate);
  const size_t per = s.per_decision();
  for (size_t i = 0; i < s.count(); ++i) y[i] = keep[i / per] ? x[i] * scale : T(0);
}

// dx = keep ? dy / q : 0 (overwrites dx).
template <class T>
void drop_backward(const DropShape& s, double rate, const uint8_t* keep, const T* dy, T* dx) {
  const T scale = T(1) / T(1.0 - rate);
  const size_t per = s.per_decision();
  for (size_t i = 0; i < s.count(); ++i) dx[i] = keep[i / per] ? dy[i] * scale : T(0);
}

// The record form: input {x}, output y; the decisions are kept in Ctx::dec (one entry per decision).
struct DropOp {
  DropShape s;
  double rate = 0.1;
  uint64_t key = 0;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.count()}; }
  size_t out_size() const { return s.count(); }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.out.resize(s.count());
    std::vector<uint8_t> keep(s.decisions());
    drop_forward(s, rate, key, in[0].data(), c.out.data(), keep.data(), D);
    c.dec.assign(keep.begin(), keep.end());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    const std::vector<uint8_t> keep = keep_of(c);
    Ins<T> g{Vec<T>(s.count())};
    drop_backward(s, rate, keep.data(), dy.data(), g[0].data());
    return g;
  }
  template <class T>
  static std::vector<uint8_t> keep_of(const Ctx<T>& c) {
    return std::vector<uint8_t>(c.dec.begin(), c.dec.end());
  }
};

}  // namespace veridl::ops
