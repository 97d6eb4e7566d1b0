// Exact prime-field scalars for the adjoint check.
//
// Zp<P> is the field Z/PZ. It has == and != but deliberately no ordering operators: layer code that
// branches on a value does not compile for it, so every data-dependent decision has to go through the
// decision tape (decisions.hpp). Two moduli are used by the checker, so that a discrepancy whose
// coefficients are all multiples of one modulus cannot pass:
//   F61 : p = 2^61 - 1           (Mersenne)
//   F62 : p = 2^62 - 57          (the largest prime below 2^62)
// Both are = 7 (mod 8), so 1/2 has an exact square root in each.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace veridl {

__extension__ typedef __int128 i128;            // GCC/Clang extension: 128-bit products
__extension__ typedef unsigned __int128 u128;

// A division by a zero field element. For random field points this is a degenerate draw (probability
// at most deg/p); the checker redraws, it never counts it as a pass.
struct DivByZero : std::runtime_error {
  DivByZero() : std::runtime_error("division by zero in the prime field") {}
};

template <uint64_t P>
class Zp {
  static_assert(P > 2 && P < (uint64_t{1} << 63), "modulus must fit in 63 bits");

 public:
  static constexpr uint64_t modulus = P;

  constexpr Zp() = default;

  // Exact embedding of an integer.
  template <std::integral I>
  constexpr explicit Zp(I n) : v_(reduce_signed(static_cast<i128>(n))) {}

  // Exact embedding of the dyadic rational a double denotes: d = m * 2^e with integer m.
  explicit Zp(double d) {
    if (!std::isfinite(d)) throw std::invalid_argument("cannot embed a non-finite double in the prime field");
    if (d == 0.0) return;
    int e = 0;
    double frac = std::frexp(d, &e);                        // d = frac * 2^e, 0.5 <= |frac| < 1
    auto m = static_cast<int64_t>(std::ldexp(frac, 53));   // exact: 53 significant bits
    e -= 53;                                                // d = m * 2^e
    Zp r(m);
    if (e >= 0) {
      r = r * pow(Zp(2), static_cast<uint64_t>(e));
    } else {
      r = r * pow(inv(Zp(2)), static_cast<uint64_t>(-e));
    }
    v_ = r.v_;
  }

  static constexpr Zp from_raw(uint64_t x) {
    Zp z;
    z.v_ = x % P;
    return z;
  }
  constexpr uint64_t raw() const { return v_; }

  friend constexpr Zp operator+(Zp a, Zp b) {
    uint64_t s = a.v_ + b.v_;
    if (s >= P) s -= P;
    return from_raw_reduced(s);
  }
  friend constexpr Zp operator-(Zp a, Zp b) { return from_raw_reduced(a.v_ >= b.v_ ? a.v_ - b.v_ : a.v_ + P - b.v_); }
  friend constexpr Zp operator-(Zp a) { return from_raw_reduced(a.v_ == 0 ? 0 : P - a.v_); }
  friend constexpr Zp operator*(Zp a, Zp b) { return from_raw_reduced(mulmod(a.v_, b.v_)); }
  friend Zp operator/(Zp a, Zp b) { return a * inv(b); }
  Zp& operator+=(Zp b) { return *this = *this + b; }
  Zp& operator-=(Zp b) { return *this = *this - b; }
  Zp& operator*=(Zp b) { return *this = *this * b; }
  Zp& operator/=(Zp b) { return *this = *this / b; }
  friend constexpr bool operator==(Zp a, Zp b) { return a.v_ == b.v_; }
  // No <, >, <=, >=: a field has no order compatible with its arithmetic.

  static constexpr Zp pow(Zp b, uint64_t e) {
    Zp r = from_raw_reduced(1);
    while (e) {
      if (e & 1) r = r * b;
      b = b * b;
      e >>= 1;
    }
    return r;
  }
  static Zp inv(Zp a) {
    if (a.v_ == 0) throw DivByZero();
    return pow(a, P - 2);  // Fermat
  }

  // A square root of 1/2 (exists because P = 7 mod 8): r = (1/2)^((P+1)/4), valid since P = 3 mod 4.
  static Zp inv_sqrt2() {
    Zp half = inv(Zp(2));
    return pow(half, (P + 1) / 4);
  }

  std::string str() const { return std::to_string(v_); }

 private:
  uint64_t v_ = 0;

  // Moduli of the form 2^62 - c with c < 2^16 reduce by folding instead of a 128-bit division.
  static constexpr uint64_t kC = (uint64_t{1} << 62) - P;
  static constexpr bool kPseudoMersenne = P < (uint64_t{1} << 62) && (uint64_t{1} << 62) - P < (uint64_t{1} << 16);

  static constexpr Zp from_raw_reduced(uint64_t x) {
    Zp z;
    z.v_ = x;
    return z;
  }
  static constexpr uint64_t reduce_signed(i128 n) {
    i128 r = n % static_cast<i128>(P);
    if (r < 0) r += P;
    return static_cast<uint64_t>(r);
  }
  static constexpr uint64_t mulmod(uint64_t a, uint64_t b) {
    u128 t = static_cast<u128>(a) * b;
    if constexpr (P == (uint64_t{1} << 61) - 1) {
      // Mersenne reduction: t = hi * 2^61 + lo = hi + lo (mod P).
      uint64_t lo = static_cast<uint64_t>(t) & P;
      uint64_t hi = static_cast<uint64_t>(t >> 61);
      uint64_t s = lo + hi;
      if (s >= P) s -= P;
      return s;
    } else if constexpr (kPseudoMersenne) {
      // P = 2^62 - c with small c: t = hi * 2^62 + lo = c * hi + lo (mod P), folded twice, then one subtraction.
      constexpr uint64_t mask = (uint64_t{1} << 62) - 1;
      const u128 t1 = (t >> 62) * kC + (static_cast<uint64_t>(t) & mask);  // < 2^68
      uint64_t s = (static_cast<uint64_t>(t1) & mask) + static_cast<uint64_t>(t1 >> 62) * kC;  // < 2^62 + 64c < 2P
      if (s >= P) s -= P;
      return s;
    } else {
      return static_cast<uint64_t>(t % P);  // any other modulus: the generic (slow) 128-bit remainder
    }
  }
};

using F61 = Zp<(uint64_t{1} << 61) - 1>;
using F62 = Zp<(uint64_t{1} << 62) - 57>;

template <class T>
inline constexpr bool is_field_v = false;
template <uint64_t P>
inline constexpr bool is_field_v<Zp<P>> = true;

}  // namespace veridl
