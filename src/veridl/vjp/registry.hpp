// The contract registry: one declarative entry per contract, carrying the book's name, its chapter,
// the statement being checked, which gradients it covers, a sweep of configurations (the sweep is part
// of the spec), production shapes, and the realistic broken backwards (mutants) it must reject.
//
// A case's factory builds the record for a variant: "" is the real implementation, any other string
// names a mutant of that contract. `veridl verify` runs every builtin contract (prims/table.hpp); so do the
// tests.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "veridl/vjp/check.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl {

struct ContractCase {
  std::string config;                                   // e.g. "B=3 I=5 O=4"
  std::function<Vjp(const std::string& variant)> make;  // "" = the implementation under test
  Sample sample = Sample::Normal;
  bool production = false;                              // a real network shape: one trial, real tape
};

// Small spatial extents for the image primitives' sweeps (conv2d, the pools), cycled by the case number so that odd and
// even H and W, and the batch and channel counts, all mix.
inline constexpr size_t kSweepExtents[] = {3, 4, 5, 6, 7};

struct MutantInfo {
  std::string name;
  std::string description;
};

struct Contract {
  std::string name;       // the book's theorem name, e.g. dense_weight_grad_correct
  int chapter = 0;
  std::string statement;  // the formula checked
  std::vector<std::string> wrt;  // inputs whose gradient this contract covers; empty = all
  std::vector<ContractCase> sweep;
  std::vector<MutantInfo> mutants;
};

class Registry {
 public:
  void add(Contract c);
  const std::vector<Contract>& all() const { return contracts_; }
  const Contract* find(const std::string& name) const;

 private:
  std::vector<Contract> contracts_;
};

// builtin_contracts(), every contract of the system, is built from the primitive table (prims/table.hpp).

struct RunOptions {
  uint64_t seed = 1;
  int trials = 2;
  bool production = true;  // include the production shapes
};

struct CaseResult {
  std::string config;
  std::string tape;  // "real" or "random"
  CheckResult check;
};

struct ContractResult {
  const Contract* contract = nullptr;
  std::vector<CaseResult> cases;
  int configs = 0, trials = 0;
  bool pass = true;
  double seconds = 0;
};

// Every case of the sweep, with a real-run tape and a random tape (two trials each by default), and
// each production shape with one trial on a real-run tape.
ContractResult run_contract(const Contract& c, const RunOptions& opt, const std::string& variant = "");

struct MutantResult {
  const Contract* contract = nullptr;
  const MutantInfo* mutant = nullptr;
  bool killed = false;
  std::string killed_by;  // the first config that rejected it
};
MutantResult run_mutant(const Contract& c, const MutantInfo& m, const RunOptions& opt);

}  // namespace veridl
