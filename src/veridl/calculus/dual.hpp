// Dual numbers: v + d*eps with eps^2 = 0. Running a forward program on Dual<T> seeded with tangent t
// computes, in the d parts of its outputs, the Jacobian-vector product J(x) t mechanically; seeded with
// e_i it gives pdiv (see pdiv.hpp). Like Zp, Dual has no ordering operators.
#pragma once

#include <concepts>

namespace veridl {

template <class T>
struct Dual {
  T v{};  // primal value
  T d{};  // tangent

  constexpr Dual() = default;
  constexpr Dual(T value, T tangent) : v(value), d(tangent) {}
  template <std::integral I>
  constexpr explicit Dual(I n) : v(T(n)), d(T(0)) {}
  explicit Dual(double x) : v(T(x)), d(T(0)) {}

  friend Dual operator+(const Dual& a, const Dual& b) { return {a.v + b.v, a.d + b.d}; }
  friend Dual operator-(const Dual& a, const Dual& b) { return {a.v - b.v, a.d - b.d}; }
  friend Dual operator-(const Dual& a) { return {-a.v, -a.d}; }
  friend Dual operator*(const Dual& a, const Dual& b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
  friend Dual operator/(const Dual& a, const Dual& b) {
    T inv = T(1) / b.v;
    T q = a.v * inv;
    return {q, (a.d - q * b.d) * inv};
  }
  Dual& operator+=(const Dual& b) { return *this = *this + b; }
  Dual& operator-=(const Dual& b) { return *this = *this - b; }
  Dual& operator*=(const Dual& b) { return *this = *this * b; }
  Dual& operator/=(const Dual& b) { return *this = *this / b; }
  friend bool operator==(const Dual& a, const Dual& b) { return a.v == b.v && a.d == b.d; }
};

template <class T>
inline constexpr bool is_dual_v = false;
template <class T>
inline constexpr bool is_dual_v<Dual<T>> = true;

}  // namespace veridl
