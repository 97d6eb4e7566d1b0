// veridl report: a run folder as one self-contained HTML page (train/report.hpp).
#include <fmt/core.h>

#include <filesystem>
#include <string>
#include <vector>

#include "veridl/cli.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/report.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/output.hpp"

namespace veridl::cli {

namespace {
const char* kReportHelp = R"(usage: veridl report RUN_DIR [--out FILE]
Writes one self-contained HTML page about a training run (a run folder of veridl train): the loss, accuracy,
learning-rate and throughput curves, the test confusion matrix and per-class accuracy, the command line and
the summary, the spec and its parameter table, and the contracts of the primitives the network uses, checked
now with the checker of veridl verify. The page needs no network access (inline SVG and CSS, no script).
  --out FILE    where to write it (default RUN_DIR/report.html; written atomically)
exit status: 0 when the page is written and every contract verified, 1 when a contract was rejected (the page
is written and says so), 2 on a bad run folder or bad usage.
)";
}  // namespace

ReportWritten write_run_report(const std::string& run_dir, const std::string& out, const std::string& flag) {
  // Everything is read and the output checked before the contracts run.
  const train::RunRecord run = train::load_run(run_dir);
  const net::Plan plan = net::compile(run.spec, 1);
  std::error_code ec;
  if (std::filesystem::is_directory(out, ec))
    throw Error(flag + " '" + out + "' is a directory; give a file path (e.g. " + out + "/report.html)");
  check_output(flag, out, 8u << 20, nullptr);
  OutputLock lock(flag, out);
  train::ContractTable contracts = train::plan_contracts(plan);
  train::check_contracts(contracts);
  const std::string html = train::render_report(run, plan, contracts);
  write_text_atomic(out, html, "report");
  return {out, html.size(), contracts.verified(), contracts.rows.size(), contracts.seconds};
}

int cmd_report(int argc, char** argv) {
  std::vector<char*> rest = {argv[0], argv[1]};
  std::vector<std::string> dirs;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("{}", kReportHelp);
      return 0;
    }
    if (a.rfind("-", 0) == 0 || (i > 2 && std::string(argv[i - 1]) == "--out")) {
      rest.push_back(argv[i]);
    } else {
      dirs.push_back(a);
    }
  }
  Args a(static_cast<int>(rest.size()), rest.data(), 2, {"--out"}, {});
  if (dirs.empty()) throw Error("a run folder is required: veridl report RUN_DIR [--out FILE]");
  if (dirs.size() > 1) throw Error("one run folder at a time (got '" + dirs[0] + "' and '" + dirs[1] + "')");
  std::string dir = dirs[0];
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const std::string out = a.str("--out", dir + "/report.html");
  if (a.has("--out") && out.empty()) throw Error("--out: the path is empty");
  const ReportWritten w = write_run_report(dir, out, "--out");
  fmt::print("wrote {} ({:.0f} KB): {}/{} contracts of the network's primitives verified ({:.2f}s)\n", w.path,
             static_cast<double>(w.bytes) / 1024.0, w.verified, w.contracts, w.seconds);
  return w.verified == w.contracts ? 0 : 1;
}

}  // namespace veridl::cli
