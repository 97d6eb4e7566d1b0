// veridl verify: run the contract registry (and the mutant suite), or check a whole network plan.
#include <fmt/core.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "veridl/cli.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl::cli {

namespace {
const char* kVerifyHelp = R"(usage: veridl verify [options]
Checks every registered VJP contract exactly over two prime fields (adjoint identity, Schwartz-Zippel).
  --contract NAME   only this contract (repeatable as a comma-separated list)
  --chapter N       only the contracts of book chapter N
  --mutants         run the mutant suite: deliberately broken backwards that must all be rejected
  --spec FILE       check a whole network (a NetSpec) at its real shapes instead of the registry
  --batch N         batch size for --spec (default: the spec's recipe batch, else 128)
  --seed S          seed of the check's randomness (replays a failure), default 1
  --trials N        field trials per config and tape (default 2)
  --no-production   skip the production shapes (small sweeps only)
  --json            machine-readable output
exit status: 0 when everything is verified (and every mutant rejected), 1 otherwise, 2 on bad usage.
)";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    if (c == std::string::npos) c = s.size();
    if (c > start) out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
  return out;
}
}  // namespace

int cmd_verify(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fmt::print("{}", kVerifyHelp);
      return 0;
    }
  Args a(argc, argv, 2, {"--contract", "--chapter", "--seed", "--trials", "--spec", "--batch"},
         {"--mutants", "--json", "--no-production"});
  RunOptions opt;
  opt.seed = static_cast<uint64_t>(a.integer("--seed", 1, 0, (1LL << 62)));
  opt.trials = static_cast<int>(a.integer("--trials", 2, 1, 1000));
  opt.production = !a.has("--no-production");
  const bool json = a.has("--json");

  if (auto spec = a.get("--spec")) {
    auto batch = a.opt_integer("--batch", 1, 1 << 20);
    NetCheckReport rep = verify_net_spec(*spec, batch ? std::optional<size_t>(static_cast<size_t>(*batch)) : std::nullopt,
                                         opt.seed, opt.trials);
    if (json) {
      nlohmann::json j = {{"spec", *spec},         {"network", rep.network}, {"batch", rep.batch},
                          {"inputs", rep.inputs},  {"params", rep.params},   {"trials", rep.trials},
                          {"verified", rep.pass},  {"seconds", rep.seconds}, {"failure", rep.failure}};
      std::cout << j.dump(2) << "\n";
    } else {
      fmt::print("{}: whole-network contract at batch {} ({} parameters, {} checked inputs)\n", rep.network, rep.batch,
                 rep.params, rep.inputs);
      if (rep.pass)
        fmt::print("verified: the executor's backward equals J^T dy over F61 and F62, {} trials ({:.2f}s)\n", rep.trials,
                   rep.seconds);
      else
        fmt::print("REJECTED: {}\n", rep.failure);
    }
    return rep.pass ? 0 : 1;
  }

  const Registry& reg = builtin_contracts();
  std::vector<const Contract*> selected;
  auto names = a.get("--contract") ? split_list(*a.get("--contract")) : std::vector<std::string>{};
  auto chapter = a.opt_integer("--chapter", 0, 100);
  for (const auto& n : names)
    if (!reg.find(n)) throw Error("--contract: no contract named '" + n + "' (veridl verify lists them all)");
  for (const auto& c : reg.all()) {
    if (!names.empty() && std::find(names.begin(), names.end(), c.name) == names.end()) continue;
    if (chapter && c.chapter != *chapter) continue;
    selected.push_back(&c);
  }
  if (selected.empty()) throw Error("no contract matches the selection");

  nlohmann::json jout = nlohmann::json::object();
  bool all_ok = true;
  size_t wc = 30, wm = 26;  // the name columns: as wide as the longest contract (and mutant) name
  for (const Contract* c : selected) {
    wc = std::max(wc, c->name.size());
    for (const auto& m : c->mutants) wm = std::max(wm, m.name.size());
  }
  if (a.has("--mutants")) {
    int killed = 0, total = 0;
    nlohmann::json jm = nlohmann::json::array();
    if (!json) fmt::print("{:<{}} {:<{}} {}\n", "contract", wc, "mutant", wm, "result");
    for (const Contract* c : selected)
      for (const auto& m : c->mutants) {
        MutantResult r = run_mutant(*c, m, opt);
        ++total;
        killed += r.killed;
        if (!json)
          fmt::print("{:<{}} {:<{}} {}\n", c->name, wc, m.name, wm,
                     r.killed ? "rejected (" + r.killed_by.substr(0, r.killed_by.find(':')) + ")" : "SURVIVED: " + m.description);
        jm.push_back({{"contract", c->name}, {"mutant", m.name}, {"description", m.description}, {"rejected", r.killed},
                      {"rejected_by", r.killed_by}});
      }
    all_ok = killed == total;
    if (json) {
      jout["mutants"] = jm;
      jout["killed"] = killed;
      jout["total"] = total;
      std::cout << jout.dump(2) << "\n";
    } else {
      fmt::print("kill rate: {}/{} mutants rejected ({:.0f}%)\n", killed, total, total ? 100.0 * killed / total : 0.0);
    }
    return all_ok ? 0 : 1;
  }

  nlohmann::json jc = nlohmann::json::array();
  int n_ok = 0, configs = 0, trials = 0;
  double seconds = 0;
  if (!json) fmt::print("{:<{}} {:>3} {:>8} {:>7} {:<9} {:>8}\n", "contract", wc, "ch", "configs", "trials", "result", "time");
  for (const Contract* c : selected) {
    ContractResult r = run_contract(*c, opt);
    n_ok += r.pass;
    configs += r.configs;
    trials += r.trials;
    seconds += r.seconds;
    if (!json) {
      fmt::print("{:<{}} {:>3} {:>8} {:>7} {:<9} {:>7.2f}s\n", c->name, wc, c->chapter, r.configs, r.trials,
                 r.pass ? "verified" : "REJECTED", r.seconds);
      for (const auto& cs : r.cases)
        if (!cs.check.pass) fmt::print("  rejected at {} ({} tape): {}\n", cs.config, cs.tape, cs.check.failure);
    }
    nlohmann::json jcase = nlohmann::json::array();
    for (const auto& cs : r.cases)
      if (!cs.check.pass)
        jcase.push_back({{"config", cs.config}, {"tape", cs.tape}, {"failure", cs.check.failure},
                         {"same_atoms_suspect", cs.check.same_atoms_suspect}});
    jc.push_back({{"contract", c->name}, {"chapter", c->chapter}, {"statement", c->statement}, {"configs", r.configs},
                  {"trials", r.trials}, {"verified", r.pass}, {"seconds", r.seconds}, {"rejections", jcase}});
  }
  all_ok = n_ok == static_cast<int>(selected.size());
  if (json) {
    jout["contracts"] = jc;
    jout["verified"] = n_ok;
    jout["total"] = selected.size();
    jout["seed"] = opt.seed;
    std::cout << jout.dump(2) << "\n";
  } else {
    fmt::print("{} {}/{} contracts verified ({} configs, {} field trials per prime, seed {}, {:.2f}s)\n",
               all_ok ? "OK:" : "FAILED:", n_ok, selected.size(), configs, trials, opt.seed, seconds);
  }
  return all_ok ? 0 : 1;
}

}  // namespace veridl::cli
