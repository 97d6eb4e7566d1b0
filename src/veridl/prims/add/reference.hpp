// add, the elementwise fan-in of a graph (book ch. 6): the residual's join.
//
//   add       y_i = a_i + b_i                         (n elements)
//     VJP     da_i = dy_i,  db_i = dy_i                                          biPath_has_vjp (ch. 6)
//
// No decisions: it is polynomial, so the identity check covers it for every input.
//
// Written once over the scalar type: the reference the float kernels (prims/add/kernel.hpp) are tested
// against, and the code the exact backend checks.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct AddShape {
  size_t n = 1;  // number of elements of each operand and of the sum
};

// y = a + b.
template <class T>
void add_forward(const AddShape& s, const T* a, const T* b, T* y) {
  for (size_t i = 0; i < s.n; ++i) y[i] = a[i] + b[i];
}

// da = dy, db = dy (overwrites); either output may be nullptr (not wanted, not touched).
template <class T>
void add_backward(const AddShape& s, const T* dy, T* da, T* db) {
  if (da)
    for (size_t i = 0; i < s.n; ++i) da[i] = dy[i];
  if (db)
    for (size_t i = 0; i < s.n; ++i) db[i] = dy[i];
}

// The record form.

// Inputs {a, b}, output a + b.
struct AddOp {
  AddShape s;
  std::vector<std::string> in_names() const { return {"a", "b"}; }
  std::vector<size_t> in_sizes() const { return {s.n, s.n}; }
  size_t out_size() const { return s.n; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.n);
    add_forward(s, in[0].data(), in[1].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.n), Vec<T>(s.n)};
    add_backward(s, dy.data(), g[0].data(), g[1].data());
    return g;
  }
};

}  // namespace veridl::ops
