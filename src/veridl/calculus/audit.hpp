// Numerical audit of the trusted base: each atom's derivative rule (the tangent Dual<double> computes)
// against a central difference of the atom's real value. The rules are axioms of the exact check, so
// this audit is what stands between a wrong rule and "verified" wrong backwards (tests/test_atoms.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "veridl/calculus/atoms.hpp"

namespace veridl {

struct AtomAudit {
  std::string atom;
  double max_rel_error = 0.0;
  int points = 0;
};

// value: double -> double; rule: Dual<double> -> Dual<double>; points drawn uniformly from [lo, hi].
template <class Value, class Rule>
AtomAudit audit_atom_rule(const std::string& name, Value&& value, Rule&& rule, double lo, double hi, int points = 1000,
                          uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  AtomAudit a{name, 0.0, points};
  for (int k = 0; k < points; ++k) {
    const double x = u(rng);
    const double h = 1e-5 * std::max(1.0, std::fabs(x));
    const double fd = (value(x + h) - value(x - h)) / (2 * h);
    const double d = rule(Dual<double>(x, 1.0)).d;
    const double rel = std::fabs(d - fd) / std::max(1e-3, std::fabs(fd));
    a.max_rel_error = std::max(a.max_rel_error, rel);
  }
  return a;
}

// The audit of all seven rules as shipped.
inline std::vector<AtomAudit> audit_all_atoms(int points = 1000) {
  return {
      audit_atom_rule("exp", [](double x) { return aexp(x); }, [](Dual<double> x) { return aexp(x); }, -5, 5, points),
      audit_atom_rule("log", [](double x) { return alog(x); }, [](Dual<double> x) { return alog(x); }, 0.05, 10, points),
      audit_atom_rule("tanh", [](double x) { return atanh_(x); }, [](Dual<double> x) { return atanh_(x); }, -4, 4, points),
      audit_atom_rule("sigmoid", [](double x) { return asigmoid(x); }, [](Dual<double> x) { return asigmoid(x); }, -8, 8,
                      points),
      audit_atom_rule("erf", [](double x) { return aerf(x); }, [](Dual<double> x) { return aerf(x); }, -3, 3, points),
      audit_atom_rule("rsqrt", [](double x) { return arsqrt(x); }, [](Dual<double> x) { return arsqrt(x); }, 0.05, 10,
                      points),
      audit_atom_rule("sqrt", [](double x) { return asqrt(x); }, [](Dual<double> x) { return asqrt(x); }, 0.05, 10, points),
  };
}

}  // namespace veridl
