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
  return veridl::cli::run(argc, argv);
}
