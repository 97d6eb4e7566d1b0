// Dot-product accumulators for the reference kernels: sum_k a_k b_k, exactly.
//
// DotAcc<T> is `T s; s += a * b` for any scalar. For the prime fields (and dual numbers over them) it
// postpones the modular reduction: each 64 x 64-bit product (< p^2 < 2^124) is added into a 192-bit
// integer (a 128-bit sum and a count of its overflows), reduced once by value(). The result is the same
// field element as the reduced sum, in any order: field arithmetic is exact. The exact backend runs the
// templated reference kernels at real network shapes (veridl verify --spec, ResNet-34 at 224^2), where a
// modular reduction per multiply-add was most of the time.
//
// kLazyDot<T> says whether the lazy form exists; the reference kernels use it to pick loop orders that
// keep such accumulators in arrays (for float and double they keep their own summation order, so the
// float kernels' tests compare against unchanged reference values).
#pragma once

#include <cstdint>

#include "veridl/calculus/dual.hpp"
#include "veridl/calculus/field.hpp"

namespace veridl {

template <class T>
struct DotAcc {
  T s{};
  DotAcc() = default;
  explicit DotAcc(const T& init) : s(init) {}
  void add_mul(const T& a, const T& b) { s += a * b; }
  void add(const T& a) { s += a; }
  T value() const { return s; }
};

// sum of raw products in [0, 2^192): lo + 2^128 hi.
template <uint64_t P>
struct DotAcc<Zp<P>> {
  u128 lo = 0;
  uint64_t hi = 0;
  DotAcc() = default;
  explicit DotAcc(Zp<P> init) : lo(init.raw()) {}
  void add_mul(Zp<P> a, Zp<P> b) { add_raw(static_cast<u128>(a.raw()) * b.raw()); }
  void add(Zp<P> a) { add_raw(a.raw()); }
  void add_raw(u128 t) {
    lo += t;
    hi += lo < t;
  }
  Zp<P> value() const {
    static const Zp<P> r64 = Zp<P>::pow(Zp<P>(2), 64), r128 = r64 * r64;
    return Zp<P>::from_raw(static_cast<uint64_t>(lo)) + Zp<P>::from_raw(static_cast<uint64_t>(lo >> 64)) * r64 +
           Zp<P>::from_raw(hi) * r128;
  }
};

// (a.v + a.d e)(b.v + b.d e) = a.v b.v + (a.d b.v + a.v b.d) e: three lazy products.
template <uint64_t P>
struct DotAcc<Dual<Zp<P>>> {
  using F = Zp<P>;
  DotAcc<F> v, d;
  DotAcc() = default;
  explicit DotAcc(const Dual<F>& init) : v(init.v), d(init.d) {}
  void add_mul(const Dual<F>& a, const Dual<F>& b) {
    v.add_mul(a.v, b.v);
    d.add_mul(a.d, b.v);
    d.add_mul(a.v, b.d);
  }
  void add(const Dual<F>& a) {
    v.add(a.v);
    d.add(a.d);
  }
  Dual<F> value() const { return {v.value(), d.value()}; }
};

template <class T>
inline constexpr bool kLazyDot = false;
template <uint64_t P>
inline constexpr bool kLazyDot<Zp<P>> = true;
template <uint64_t P>
inline constexpr bool kLazyDot<Dual<Zp<P>>> = true;

}  // namespace veridl
