// The atoms: the trusted base of the whole system.
//
// exp, log, tanh, sigmoid, erf, rsqrt, sqrt, and the transcendental constants. Everything else a
// layer computes is field arithmetic (+ - * /) on inputs, exactly embedded constants and atom values.
//   * real types (float, double) call libm;
//   * the prime field calls a keyed random oracle H(seed, atom id, x) -- the atom is an uninterpreted
//     function, so no identity between atoms (exp(a-b) = exp(a)/exp(b), ...) holds;
//   * Dual<T> applies the derivative rule written in terms of the atom's own value:
//       exp' = e, tanh' = 1 - t^2, sigmoid' = s(1 - s), rsqrt' = -r^3/2, log' = 1/u,
//       sqrt' = 1/(2s), erf' = c * exp(-u^2) with c = 2/sqrt(pi) a constant atom.
// These seven rules are the analogue of Mathlib's derivative lemmas; tests/test_atoms.cpp audits each
// one against central differences in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "veridl/calculus/dual.hpp"
#include "veridl/calculus/field.hpp"

namespace veridl {

enum class AtomId : uint64_t { Exp = 1, Log, Tanh, Sigmoid, Erf, Rsqrt, Sqrt, ConstTwoOverSqrtPi, ConstSqrtPi };

// The field oracle's key. It is redrawn every trial by the checker; thread-local so that checks on
// different threads do not interfere.
struct Oracle {
  static uint64_t& key() {
    thread_local uint64_t k = 0x9E3779B97F4A7C15ull;
    return k;
  }
  static uint64_t mix(uint64_t z) {  // splitmix64 finaliser
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  template <uint64_t P>
  static Zp<P> eval(AtomId id, Zp<P> x) {
    uint64_t h = mix(key() ^ mix(static_cast<uint64_t>(id) * 0x100000001B3ull ^ P));
    h = mix(h ^ x.raw());
    h = mix(h + 0x632BE59BD9B4E019ull);
    return Zp<P>::from_raw(h);
  }
};

// ---- constants ---------------------------------------------------------------------------------
// Transcendental constants are constant atoms; for real types they are the libm values.
template <class T>
struct Consts;
template <>
struct Consts<double> {
  static double two_over_sqrt_pi() { return 2.0 / std::sqrt(M_PI); }
  static double sqrt_pi() { return std::sqrt(M_PI); }
  static double inv_sqrt2() { return 1.0 / std::sqrt(2.0); }
};
template <>
struct Consts<float> {
  static float two_over_sqrt_pi() { return static_cast<float>(2.0 / std::sqrt(M_PI)); }
  static float sqrt_pi() { return static_cast<float>(std::sqrt(M_PI)); }
  static float inv_sqrt2() { return static_cast<float>(1.0 / std::sqrt(2.0)); }
};
template <uint64_t P>
struct Consts<Zp<P>> {
  static Zp<P> two_over_sqrt_pi() { return Oracle::eval(AtomId::ConstTwoOverSqrtPi, Zp<P>(0)); }
  static Zp<P> sqrt_pi() { return Oracle::eval(AtomId::ConstSqrtPi, Zp<P>(0)); }
  static Zp<P> inv_sqrt2() { return Zp<P>::inv_sqrt2(); }  // algebraic: exact in the field
};
template <class T>
struct Consts<Dual<T>> {
  static Dual<T> two_over_sqrt_pi() { return {Consts<T>::two_over_sqrt_pi(), T(0)}; }
  static Dual<T> sqrt_pi() { return {Consts<T>::sqrt_pi(), T(0)}; }
  static Dual<T> inv_sqrt2() { return {Consts<T>::inv_sqrt2(), T(0)}; }
};

// ---- real types ----------------------------------------------------------------------------------
inline double aexp(double x) { return std::exp(x); }
inline double alog(double x) { return std::log(x); }
inline double atanh_(double x) { return std::tanh(x); }
inline double asigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double aerf(double x) { return std::erf(x); }
inline double arsqrt(double x) { return 1.0 / std::sqrt(x); }
inline double asqrt(double x) { return std::sqrt(x); }
inline float aexp(float x) { return std::exp(x); }
inline float alog(float x) { return std::log(x); }
inline float atanh_(float x) { return std::tanh(x); }
inline float asigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float aerf(float x) { return std::erf(x); }
inline float arsqrt(float x) { return 1.0f / std::sqrt(x); }
inline float asqrt(float x) { return std::sqrt(x); }

// ---- the prime field: uninterpreted functions ------------------------------------------------------
template <uint64_t P> Zp<P> aexp(Zp<P> x) { return Oracle::eval(AtomId::Exp, x); }
template <uint64_t P> Zp<P> alog(Zp<P> x) { return Oracle::eval(AtomId::Log, x); }
template <uint64_t P> Zp<P> atanh_(Zp<P> x) { return Oracle::eval(AtomId::Tanh, x); }
template <uint64_t P> Zp<P> asigmoid(Zp<P> x) { return Oracle::eval(AtomId::Sigmoid, x); }
template <uint64_t P> Zp<P> aerf(Zp<P> x) { return Oracle::eval(AtomId::Erf, x); }
template <uint64_t P> Zp<P> arsqrt(Zp<P> x) { return Oracle::eval(AtomId::Rsqrt, x); }
template <uint64_t P> Zp<P> asqrt(Zp<P> x) { return Oracle::eval(AtomId::Sqrt, x); }

// ---- Dual: the derivative rules (the trusted base) -------------------------------------------------
template <class T> Dual<T> aexp(const Dual<T>& x) {
  T e = aexp(x.v);
  return {e, e * x.d};
}
template <class T> Dual<T> alog(const Dual<T>& x) { return {alog(x.v), x.d / x.v}; }
template <class T> Dual<T> atanh_(const Dual<T>& x) {
  T t = atanh_(x.v);
  return {t, (T(1) - t * t) * x.d};
}
template <class T> Dual<T> asigmoid(const Dual<T>& x) {
  T s = asigmoid(x.v);
  return {s, s * (T(1) - s) * x.d};
}
template <class T> Dual<T> aerf(const Dual<T>& x) {
  return {aerf(x.v), Consts<T>::two_over_sqrt_pi() * aexp(-(x.v * x.v)) * x.d};
}
template <class T> Dual<T> arsqrt(const Dual<T>& x) {
  T r = arsqrt(x.v);
  return {r, -(r * r * r) / T(2) * x.d};
}
template <class T> Dual<T> asqrt(const Dual<T>& x) {
  T s = asqrt(x.v);
  return {s, x.d / (T(2) * s)};
}

}  // namespace veridl
