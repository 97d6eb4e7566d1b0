#include "veridl/vjp/registry.hpp"

#include <fmt/core.h>

#include <chrono>
#include <stdexcept>

namespace veridl {

void Registry::add(Contract c) {
  if (find(c.name)) throw std::logic_error("contract registered twice: " + c.name);
  contracts_.push_back(std::move(c));
}

const Contract* Registry::find(const std::string& name) const {
  for (const auto& c : contracts_)
    if (c.name == name) return &c;
  return nullptr;
}

ContractResult run_contract(const Contract& c, const RunOptions& opt, const std::string& variant) {
  auto t0 = std::chrono::steady_clock::now();
  ContractResult res;
  res.contract = &c;
  uint64_t case_index = 0;
  for (const auto& cs : c.sweep) {
    ++case_index;
    if (cs.production && !opt.production) continue;
    Vjp f = cs.make(variant);
    ++res.configs;
    std::vector<TapeSource> tapes = cs.production ? std::vector<TapeSource>{TapeSource::Real}
                                                  : std::vector<TapeSource>{TapeSource::Real, TapeSource::Random};
    for (TapeSource t : tapes) {
      CheckOptions o;
      o.seed = opt.seed * 1000003u + case_index;
      o.trials = cs.production ? 1 : opt.trials;
      o.tape = t;
      o.sample = cs.sample;
      o.wrt = c.wrt;
      CaseResult cr{cs.config, t == TapeSource::Real ? "real" : "random", check_vjp(f, o)};
      res.trials += cr.check.trials;
      if (!cr.check.pass) res.pass = false;
      res.cases.push_back(std::move(cr));
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

MutantResult run_mutant(const Contract& c, const MutantInfo& m, const RunOptions& opt) {
  MutantResult r{&c, &m, false, ""};
  RunOptions o = opt;
  o.production = false;  // mutants must die on the small sweep
  ContractResult cr = run_contract(c, o, m.name);
  for (const auto& cs : cr.cases)
    if (!cs.check.pass) {
      r.killed = true;
      r.killed_by = cs.config + " (" + cs.tape + " tape): " + cs.check.failure;
      break;
    }
  return r;
}

}  // namespace veridl
