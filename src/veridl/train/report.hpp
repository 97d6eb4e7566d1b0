// The run report (issue 18 item 3): `veridl report RUN_DIR` reads a run folder (train/trainer.hpp's metrics.jsonl,
// test.json, summary.json, spec.json, command.txt) and writes one self-contained HTML page: inline SVG charts and
// CSS, no script, no fonts, no images, nothing fetched. It shows the loss, accuracy, learning-rate and throughput
// curves, the test confusion matrix and per-class accuracy, the command line and the summary, the spec with its
// parameter table, and the contract table of the primitives the spec uses, checked when the report is written
// (the checker `veridl verify` runs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <nlohmann/json.hpp>

#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"

namespace veridl::train {

// One "epoch" line of metrics.jsonl.
struct RunEpoch {
  size_t epoch = 0, step = 0;
  double train_loss = 0, train_accuracy = 0, lr = 0, images_per_second = 0, seconds = 0;
  std::optional<double> val_loss, val_accuracy, val_top5;  // absent in an epoch without validation
};
// One "step" line of metrics.jsonl.
struct RunStep {
  size_t epoch = 0, step = 0;
  double loss = 0, lr = 0;
};
// test.json.
struct RunTest {
  size_t correct = 0, total = 0, top5_correct = 0;
  double accuracy = 0, top5 = 0, loss = 0;
  std::vector<double> per_class;                 // percent; -1 for a class without examples
  std::vector<std::vector<size_t>> confusion;   // row: the true class, column: the prediction
};

struct RunRecord {
  std::string dir;
  std::vector<RunEpoch> epochs;  // in order; a resumed run's lines replace the ones they repeat
  std::vector<RunStep> steps;
  std::optional<RunTest> test;   // absent for an interrupted run (summary.json says so)
  nlohmann::json summary;        // summary.json
  std::string spec_text;         // spec.json as written
  net::NetSpec spec;
  std::string command;           // command.txt, without its final newline
};

// Reads a run folder. Every problem is a one-line veridl::Error naming the file at fault: a missing folder or
// file, a line of metrics.jsonl that is not JSON (a truncated line) or lacks a field, a run without a finished
// epoch, a test.json or summary.json of the wrong shape, a spec.json that is not a valid NetSpec.
RunRecord load_run(const std::string& dir);

// A contract of a primitive the run's network uses, and its check.
struct ContractRow {
  std::string name, statement;
  int chapter = 0;
  std::vector<std::string> used_by;  // primitive names (the fan-out: "fan-out (accumulate edges)")
  int configs = 0, trials = 0;
  bool pass = false;
  double seconds = 0;
  std::string failure;  // the first rejection, when !pass
};
struct ContractTable {
  std::vector<ContractRow> rows;
  std::string checked_at;  // UTC, ISO 8601
  uint64_t seed = 1;
  int trials = 2;
  double seconds = 0;
  size_t verified() const;
};

// The registered contracts of the primitives `plan` uses (in the primitive table's order; fanout_has_vjp when the
// plan has accumulate edges), not yet checked, with the primitives that use them.
ContractTable plan_contracts(const net::Plan& plan);
// Runs each contract of `t` (vjp/registry.hpp run_contract, as `veridl verify` does) and records the result.
void check_contracts(ContractTable& t, uint64_t seed = 1, int trials = 2);

// The page. `plan` is the run's spec compiled (any batch): its nodes and parameter tensors.
std::string render_report(const RunRecord& run, const net::Plan& plan, const ContractTable& contracts);

// & < > " ' as entities: every string from a run folder goes through this before it reaches the page.
std::string html_escape(std::string_view s);

}  // namespace veridl::train
