// The command dispatch of `veridl` (main.cpp) and of veridl._core.run_cli, and the hand-over of
// `veridl train --device iree:...` to the Python package.
#include <fmt/core.h>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "veridl/cli.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/util/error.hpp"

#ifndef VERIDL_DEFAULT_PYTHON
#define VERIDL_DEFAULT_PYTHON "python3"
#endif

namespace veridl::cli {

namespace {
const char* kHelp = R"(usage: veridl <command> [options]
commands:
  train    train a network described by a NetSpec (veridl train --help; --device iree:... runs the steps on
           an IREE device, a CPU or a GPU: docs/gpu.md)
  eval     evaluate a saved checkpoint on a test set
  verify   check every VJP contract exactly (or a whole network with --spec)
  info     print a NetSpec's layers, shapes and parameter count (--cpu: the CPU and the kernel variant in use;
           --reference: the NetSpec reference of every layer type, field and recipe key, docs/netspec.md's tables)
  export   write the fused train step (or --eval forward) as StableHLO for IREE / XLA (docs/gpu.md), or
           --onnx a checkpoint's inference graph as ONNX (docs/onnx.md)
  predict  a checkpoint's top-k classes for an image file, a folder of images or an IDX file
  report   write a run folder's HTML report: curves, confusion matrix, spec, checked contracts
)";

ExternalEngineFactory& engine_slot() {
  static ExternalEngineFactory f;
  return f;
}
}  // namespace

void set_external_engine(ExternalEngineFactory f) { engine_slot() = std::move(f); }
const ExternalEngineFactory& external_engine() { return engine_slot(); }

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    fmt::print("{}", kHelp);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    kernels::active_isa();     // a bad VERIDL_ISA fails here, before any work
    kernels::conv_winograd();  // and a bad VERIDL_WINOGRAD
    if (cmd == "verify") return cmd_verify(argc, argv);
    if (cmd == "train") return cmd_train(argc, argv);
    if (cmd == "eval") return cmd_eval(argc, argv);
    if (cmd == "info") return cmd_info(argc, argv);
    if (cmd == "export") return cmd_export(argc, argv);
    if (cmd == "report") return cmd_report(argc, argv);
    if (cmd == "predict") return cmd_predict(argc, argv);
    fmt::print(stderr, "veridl: unknown command '{}'\n{}", cmd, kHelp);
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "veridl {}: error: out of memory (a smaller --batch or a smaller network may fit)\n", cmd);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "veridl {}: error: {}\n", cmd, e.what());
    return 2;
  }
}

void hand_over_to_python(int argc, char** argv, const std::string& device) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error(fmt::format("--device {}: cannot find this program's path: {}", device, ec.message()));
  const fs::path dir = exe.parent_path();
  // The build tree: <build>/python-pkg/veridl (CMakeLists.txt links the sources and the module there). An installed
  // wheel: this program is <site-packages>/veridl/bin/veridl.
  std::string root;
  for (const fs::path& cand : {dir / "python-pkg", dir.parent_path().parent_path()})
    if (fs::exists(cand / "veridl" / "__init__.py", ec) && fs::exists(cand / "veridl" / "_iree_cli.py", ec)) {
      root = cand.string();
      break;
    }
  if (root.empty())
    throw Error(fmt::format("--device {}: the veridl Python package, which runs IREE devices, is not beside {} (build "
                            "the Python module: nanobind in .venv, scripts/install-deps.sh; or pip install . and run "
                            "its veridl command)",
                            device, exe.string()));
  const char* env_py = std::getenv("VERIDL_PYTHON");
  const std::string python = env_py && *env_py ? env_py : VERIDL_DEFAULT_PYTHON;
  const char* old = std::getenv("PYTHONPATH");
  std::string path = root;
  if (old && *old) {
    path += ':';
    path += old;
  }
  ::setenv("PYTHONPATH", path.c_str(), 1);
  std::vector<std::string> args = {python, "-m", "veridl._iree_cli"};
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> cargs;
  for (std::string& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);
  std::fflush(stdout);
  ::execvp(python.c_str(), cargs.data());
  throw Error(fmt::format("--device {}: cannot run the Python interpreter '{}' ({}); set VERIDL_PYTHON to a Python with "
                          "numpy and iree-base-runtime",
                          device, python, std::strerror(errno)));
}

}  // namespace veridl::cli
