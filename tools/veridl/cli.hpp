// Small shared pieces of the command-line program.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "veridl/export/iree_target.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/trainer.hpp"

namespace veridl::cli {

// Parses "--flag value", "--flag=value" and "--switch" arguments. An unknown flag, a flag given twice and a value
// given to a switch are errors naming the flag.
class Args {
 public:
  Args(int argc, char** argv, int first, const std::vector<std::string>& value_flags,
       const std::vector<std::string>& switches);
  std::optional<std::string> get(const std::string& flag) const;
  bool has(const std::string& flag) const;
  std::string str(const std::string& flag, const std::string& dflt) const;
  long long integer(const std::string& flag, long long dflt, long long min, long long max) const;
  double real(const std::string& flag, double dflt) const;
  std::optional<long long> opt_integer(const std::string& flag, long long min, long long max) const;
  std::optional<double> opt_real(const std::string& flag) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> switches_on_;
};

// The NetSpec of a checkpoint's network: the file of --spec when given, else the checkpoint's 'spec' metadata
// (eval, export --onnx, predict).
net::NetSpec checkpoint_spec(const train::Checkpoint& ck, const std::string& ck_path, const Args& a);

// The whole command line: argv[1] is the command. Prints a failure as "veridl <command>: error: <message>" on stderr and
// returns 2 (main.cpp; veridl._core.run_cli runs the same in Python).
int run(int argc, char** argv);

// `veridl train --device iree:...`: the engine that runs the exported modules on an IREE device. Set by the Python
// package (veridl._core.run_cli, python/veridl/iree.py), which hosts the IREE runtime. In the plain `veridl`
// program it is not set, and cmd_train hands the run over to Python (hand_over_to_python).
using ExternalEngineFactory = std::function<std::unique_ptr<train::StepEngine>(
    const net::Plan&, const train::TrainConfig&, const hlo::IreeTarget&, const std::string& cache_dir)>;
void set_external_engine(ExternalEngineFactory f);
const ExternalEngineFactory& external_engine();
// Replaces this process with `<python> -m veridl._iree_cli <argv[1:]>`: the package beside this program (the build
// tree's <build>/python-pkg, or the installed wheel's veridl/ this program is in), the interpreter $VERIDL_PYTHON, else
// the one the build found with IREE (VERIDL_DEFAULT_PYTHON), else python3. Returns only by throwing.
[[noreturn]] void hand_over_to_python(int argc, char** argv, const std::string& device);

int cmd_verify(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_report(int argc, char** argv);
int cmd_predict(int argc, char** argv);

// Reads the run folder, checks `out` (given by option `flag`), runs the contracts of the network's primitives and
// writes the report page atomically (veridl report; veridl train --report at the end of a run).
struct ReportWritten {
  std::string path;
  size_t bytes = 0, verified = 0, contracts = 0;
  double seconds = 0;
};
ReportWritten write_run_report(const std::string& run_dir, const std::string& out, const std::string& flag);

}  // namespace veridl::cli
