// veridl: the command-line program.
#include <fmt/core.h>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>

#include "veridl/cli.hpp"
#include "veridl/kernels/isa.hpp"

namespace {
const char* kHelp = R"(usage: veridl <command> [options]
commands:
  train    train a network described by a NetSpec (veridl train --help)
  eval     evaluate a saved checkpoint on a test set
  verify   check every VJP contract exactly (or a whole network with --spec)
  info     print a NetSpec's layers, shapes and parameter count (--cpu: the CPU and the kernel variant in use;
           --reference: the NetSpec reference of every layer type, field and recipe key, docs/netspec.md's tables)
  export   write the fused train step (or --eval forward) as StableHLO for IREE / XLA (docs/gpu.md), or
           --onnx a checkpoint's inference graph as ONNX (docs/onnx.md)
  predict  a checkpoint's top-k classes for an image file, a folder of images or an IDX file
  report   write a run folder's HTML report: curves, confusion matrix, spec, checked contracts
)";
}

// OpenMP's default "active" waiting spins at every join. On a machine whose cores are shared (CI,
// laptops, a second job), one descheduled thread then stalls every join of every step: we measured a
// 2-thread MNIST-linear epoch going from 0.13 s to 11 s. Purely passive waiting never stalls like that but
// pays a futex wake-up at every join of a small step (2 threads slower than 1 on the linear model). VeriDL's
// default is in between: passive waiting after a bounded spin of GOMP_SPINCOUNT=3000 iterations (a few
// microseconds), enough to catch the next parallel region of a train step on an idle machine, too short to
// matter on a busy one (bench/omp_wait_policy.sh measures both). libgomp reads the variables once at load
// time, hence the re-exec. Set OMP_WAIT_POLICY or GOMP_SPINCOUNT yourself to override.
static void default_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::setenv("GOMP_SPINCOUNT", "3000", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

int main(int argc, char** argv) {
  default_waiting(argv);
  // A write past the file-size limit (ulimit -f) fails with EFBIG and is reported as such, instead of killing the
  // process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    fmt::print("{}", kHelp);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    veridl::kernels::active_isa();  // a bad VERIDL_ISA fails here, before any work
    if (cmd == "verify") return veridl::cli::cmd_verify(argc, argv);
    if (cmd == "train") return veridl::cli::cmd_train(argc, argv);
    if (cmd == "eval") return veridl::cli::cmd_eval(argc, argv);
    if (cmd == "info") return veridl::cli::cmd_info(argc, argv);
    if (cmd == "export") return veridl::cli::cmd_export(argc, argv);
    if (cmd == "report") return veridl::cli::cmd_report(argc, argv);
    if (cmd == "predict") return veridl::cli::cmd_predict(argc, argv);
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
