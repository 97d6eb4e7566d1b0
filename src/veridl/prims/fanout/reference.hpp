// fanout, the split of a graph (book ch. 6): one value read by two consumers. Not a table entry: the plan
// expresses it as accumulate edges of the backward (the second consumer's gradient is added, not written);
// this record is the contract those edges implement.
//
//   fanout    x -> (x, x), one record whose output is the two copies concatenated (2n elements)
//     VJP     dx_i = dy_i + dy_{n+i}   (the two uses' gradients accumulate)       fanout_has_vjp (ch. 6)
//
// No decisions: it is polynomial, so the identity check covers it for every input.
//
// Written once over the scalar type; the fast accumulation is kernels::add_into (prims/add/kernel.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct FanoutShape {
  size_t n = 1;  // elements of x; the output holds 2n (the two copies)
};

// y = (x, x): y[0:n] = x, y[n:2n] = x.
template <class T>
void fanout_forward(const FanoutShape& s, const T* x, T* y) {
  for (size_t i = 0; i < s.n; ++i) {
    y[i] = x[i];
    y[s.n + i] = x[i];
  }
}

// dx = dy[0:n] + dy[n:2n] (overwrites).
template <class T>
void fanout_backward(const FanoutShape& s, const T* dy, T* dx) {
  for (size_t i = 0; i < s.n; ++i) dx[i] = dy[i] + dy[s.n + i];
}

// The record form.

// Input {x}, output (x, x) concatenated (2n).
struct FanoutOp {
  FanoutShape s;
  std::vector<std::string> in_names() const { return {"x"}; }
  std::vector<size_t> in_sizes() const { return {s.n}; }
  size_t out_size() const { return 2 * s.n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(2 * s.n);
    fanout_forward(s, in[0].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.n)};
    fanout_backward(s, dy.data(), g[0].data());
    return g;
  }
};

}  // namespace veridl::ops
