// pdiv, derived mechanically from forward code: the C++ counterpart of the book's
//   pdiv f x i j := fderiv f x (e_i) j      (the (i, j) Jacobian entry, d f_j / d x_i)
// f is any program written generically over its scalar type; running it on Dual<T> seeded with the
// basis tangent e_i gives, in output j's tangent, exactly pdiv f x i j (no finite differences).
#pragma once

#include <cstddef>
#include <vector>

#include "veridl/calculus/dual.hpp"

namespace veridl {

// Seed x with tangent t.
template <class T>
std::vector<Dual<T>> seed(const std::vector<T>& x, const std::vector<T>& t) {
  std::vector<Dual<T>> xd(x.size());
  for (size_t k = 0; k < x.size(); ++k) xd[k] = Dual<T>(x[k], t[k]);
  return xd;
}

template <class T>
std::vector<T> tangents(const std::vector<Dual<T>>& y) {
  std::vector<T> d(y.size());
  for (size_t k = 0; k < y.size(); ++k) d[k] = y[k].d;
  return d;
}

template <class T>
std::vector<T> primals(const std::vector<Dual<T>>& y) {
  std::vector<T> v(y.size());
  for (size_t k = 0; k < y.size(); ++k) v[k] = y[k].v;
  return v;
}

// J(x) t, by one forward run on duals.  F: std::vector<Dual<T>> -> std::vector<Dual<T>>.
template <class T, class F>
std::vector<T> jvp(F&& f, const std::vector<T>& x, const std::vector<T>& t) {
  return tangents(f(seed(x, t)));
}

// pdiv f x i j, by one forward run on duals seeded with e_i.
template <class T, class F>
T pdiv(F&& f, const std::vector<T>& x, size_t i, size_t j) {
  std::vector<T> e(x.size(), T(0));
  e.at(i) = T(1);
  return jvp<T>(f, x, e).at(j);
}

}  // namespace veridl
