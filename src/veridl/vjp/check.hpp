// The contract checker: a reusable public tool (like JAX check_grads / PyTorch gradcheck), not a
// test-only helper.
//
// For a record f, it verifies the adjoint identity
//     < backward(x, dy), v >  ==  < dy, JVP(x, v) >
// exactly, over two prime fields (F61, F62), at uniformly random field points x, v, dy, with the atoms
// as a freshly keyed random oracle. JVP is the tangent of forward run on Dual<F> (pdiv, mechanically).
// Data-dependent decisions are taken from a tape recorded by a real (double) run at a sampled point,
// or from a random tape. By Schwartz-Zippel a wrong backward passes one trial with probability at most
// about deg/p (~1e-16); see docs/verification.md for the precise guarantee.
//
// A division by zero in the field is a degenerate draw: it is redrawn, never counted as a pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl {

enum class TapeSource { Real, Random };
enum class Sample { Normal, Ties };  // real sample for the tape run: N(0,1), or integers in {-2..2}

struct CheckOptions {
  uint64_t seed = 1;
  int trials = 2;
  TapeSource tape = TapeSource::Real;
  Sample sample = Sample::Normal;
  std::vector<std::string> wrt;  // names of the inputs whose gradients are checked; empty = all
  int max_redraws = 16;
};

struct CheckResult {
  bool pass = false;
  int trials = 0;        // trials completed (both primes each)
  int degenerate = 0;    // redrawn degenerate draws (division by zero)
  std::string failure;   // empty on pass: which trial/prime and a diagnosis
  bool same_atoms_suspect = false;  // the backward looks correct over R but not in same-atoms form
  double real_rel_error = 0.0;      // relative adjoint mismatch in double at the failing trial
};

CheckResult check_vjp(const Vjp& f, const CheckOptions& opt);

// The adjoint identity in double at a real point, with Dual<double> for the JVP: the relative
// mismatch |<g,v> - <dy,Jv>| / (sum |g_i v_i| + sum |dy_j (Jv)_j|). About 1e-16 for a correct backward.
double real_adjoint_error(const Vjp& f, const CheckOptions& opt, uint64_t trial_seed);

// An independent second opinion: PyTorch-style finite-difference gradcheck in double (central
// differences, eps, atol + rtol * |analytic|) with the branches frozen by the recorded tape.
struct FdOptions {
  uint64_t seed = 1;
  double eps = 1e-6, atol = 1e-5, rtol = 1e-3;
  Sample sample = Sample::Normal;
  std::vector<std::string> wrt;
};
struct FdResult {
  bool pass = false;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;
};
FdResult fd_gradcheck(const Vjp& f, const FdOptions& opt);

}  // namespace veridl
