// Contract test helpers shared by the per-chapter test files: a registered contract by name, "every case of
// these contracts' sweeps verifies", "every mutant of these contracts is rejected for every seed".
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/table.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl::testutil {

// The contract registered under `name` in builtin_contracts() (throws if there is none).
inline const Contract& builtin_contract(const std::string& name) {
  const Contract* c = builtin_contracts().find(name);
  if (!c) throw std::logic_error("contract not registered: " + name);
  return *c;
}

// Every case of each contract's sweep verifies (the production shapes too unless opt.production is false).
inline void expect_contracts_verified(const std::vector<std::string>& names, const RunOptions& opt = {}) {
  for (const std::string& name : names) {
    const ContractResult r = run_contract(builtin_contract(name), opt);
    EXPECT_TRUE(r.pass) << name;
    for (const auto& cs : r.cases)
      EXPECT_TRUE(cs.check.pass) << name << " " << cs.config << " (" << cs.tape << "): " << cs.check.failure;
    EXPECT_GT(r.trials, 0) << name;
  }
}

// Every mutant of each contract is rejected, for every seed (opt's other fields as given).
inline void expect_mutants_rejected(const std::vector<std::string>& names, const std::vector<uint64_t>& seeds,
                                    RunOptions opt = {}) {
  for (uint64_t seed : seeds) {
    opt.seed = seed;
    for (const std::string& name : names) {
      const Contract& c = builtin_contract(name);
      for (const auto& m : c.mutants)
        EXPECT_TRUE(run_mutant(c, m, opt).killed) << name << " / " << m.name << " survived (seed " << seed
                                                  << "): " << m.description;
    }
  }
}

}  // namespace veridl::testutil
