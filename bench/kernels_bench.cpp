// Microbenchmark of the fast float32 kernels (src/veridl/prims/<name>/kernel.hpp) against the templated
// reference ops (src/veridl/prims/<name>/reference.hpp, T = float), plus the full MNIST linear-classifier train step.
//
// Build (CMake):  add_executable(bench_kernels bench/kernels_bench.cpp)
//                 target_link_libraries(bench_kernels PRIVATE veridl_core)
// Run:            OMP_NUM_THREADS=2 ./bench_kernels [--quick] [--step-only]
//                 OMP_NUM_THREADS=2 ./bench_kernels --net specs/mnist_mlp.json [--batch N] [--seconds S] [--profile | --nodes]
//                   [--regions] [--no-fusion]
//                   the whole fused train step of a NetSpec (gather excluded: forward, loss, backward and
//                   the recipe's optimizer, as train::TrainStep runs it) on random data: median time per
//                   step over many steps, which shrugs off the bursts of foreign load that make epoch
//                   timings noisy on a shared machine; then the optimizer's update alone; with --profile,
//                   each primitive's forward and backward time per step (net::NodeTimes) over --seconds more;
//                   with --regions, the thread teams the kernels fork (for_chunks) per kernel: forks and wall
//                   time per step, and the share of the team's time its threads spent waiting
//                 OMP_NUM_THREADS=2 ./bench_kernels --peak [--seconds S]
//                   the machine's FMA ceiling (independent FMA chains on every thread) for each of the AVX2
//                   and AVX-512 vector widths the CPU has, the numbers the GEMM GFLOP/s are fractions of
//                 OMP_NUM_THREADS=2 ./bench_kernels --gemm [--csv] [--only LABEL-SUBSTRING] [--cold]
//                   dense and conv2d forward / input- / weight-gradient at the chapter nets' shapes, for every
//                   kernel variant the CPU runs, 1 and 2 threads, with the fraction of that variant's peak
//                   (bench/gemm_vs_peers.py puts PyTorch 2.x's MKL / oneDNN beside it); --cold: the convolutions'
//                   activations from memory (each call takes the next of copies totalling 512 MiB), as in a step
//                 OMP_NUM_THREADS=2 ./bench_kernels --elementwise [--only NAME]
//                   the smooth activations' forward and backward (prims/activation/kernel_impl.hpp) on 4,816,896
//                   floats (ConvNeXt-T's stage-3 hidden width at 224 x 224, batch 16), every kernel variant the
//                   CPU runs: ns per element with subnormals kept and flushed (as `veridl train` runs)
//                 OMP_NUM_THREADS=2 ./bench_kernels --batchnorm
//                   BatchNorm with the fused ReLU, training forward and backward, at the BN CNN's shapes, every kernel
//                   variant: ms per call and GB/s of the traffic it cannot avoid, cache-warm and from memory
//                 ./bench_kernels --gather
//                   the batch gather of `veridl train` from a byte dataset (Dataset::copy_images, one row at a time,
//                   the bytes converted to floats p / 255): batch 128 of 28 x 28 images, one thread, the same rows every
//                   call (cache-warm: the conversion alone) and rows in a shuffled order through 60,000 images (47 MB,
//                   from memory, with the trainer's prefetch 4 rows ahead): us per batch
//                 (2-thread figures need both cores idle: a busy core stalls every OpenMP join)
//
// Every figure is the median over many timed samples of the time per call (a sample times enough
// back-to-back calls to last ~50 us, for timer resolution). GFLOP/s counts 2 B I O flops for the dense
// products (B O for the bias sum).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "veridl/calculus/decisions.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/kernels/fpenv.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/prims/batchNorm/kernel.hpp"
#include "veridl/prims/conv2d/kernel.hpp"
#include "veridl/prims/dense/kernel.hpp"
#include "veridl/prims/dense/reference.hpp"
#include "veridl/prims/gelu/primitive.hpp"
#include "veridl/prims/geluErf/primitive.hpp"
#include "veridl/prims/hardSwish/primitive.hpp"
#include "veridl/prims/sigmoid/primitive.hpp"
#include "veridl/prims/swish/primitive.hpp"
#include "veridl/prims/softmaxCE/kernel.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/aligned.hpp"

namespace {

using Clock = std::chrono::steady_clock;
bool g_quick = false;
double g_budget = 0.0;  // seconds per measurement when > 0 (--seconds)

// A value the optimiser must assume is read.
volatile float g_sink;

struct Timing {
  double median = 0.0, min = 0.0;  // seconds per call
};

template <class F>
Timing measure(F&& f) {
  f();  // warm up (first-touch, scratch allocation, thread team start)
  const auto t0 = Clock::now();
  f();
  const double once = std::chrono::duration<double>(Clock::now() - t0).count();
  const int inner = std::max(1, static_cast<int>(50e-6 / std::max(once, 1e-9)));
  const double budget = g_budget > 0 ? g_budget : g_quick ? 0.05 : 0.4;  // seconds per measurement
  const int samples = std::clamp(static_cast<int>(budget / (once * inner + 1e-9)), 5, 2001);
  std::vector<double> t(static_cast<size_t>(samples));
  for (auto& s : t) {
    const auto a = Clock::now();
    for (int r = 0; r < inner; ++r) f();
    s = std::chrono::duration<double>(Clock::now() - a).count() / inner;
  }
  std::sort(t.begin(), t.end());
  return {t[static_cast<size_t>(samples / 2)], t.front()};
}

// How many copies of a kernel's operands (set_bytes each) total at least 512 MiB: a bench that cycles through them
// finds every call's operands out of cache, as a train step does (--gemm --cold, --batchnorm).
size_t cold_copies(double set_bytes) { return static_cast<size_t>(std::ceil(512.0 * 1024 * 1024 / set_bytes)); }

// On cache lines, as the executor's buffers are (util/aligned.hpp).
veridl::AlignedVector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  veridl::AlignedVector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void row(const char* name, double flops, Timing fast, Timing ref = {}) {
  std::printf("  %-26s fast %9.2f us (min %8.2f) %7.2f GFLOP/s", name, fast.median * 1e6, fast.min * 1e6,
              flops / fast.median * 1e-9);
  if (ref.median > 0)
    std::printf(" | ref %10.2f us %6.2f GFLOP/s | speedup %6.1fx", ref.median * 1e6, flops / ref.median * 1e-9,
                ref.median / fast.median);
  std::printf("\n");
}

void bench_dense(size_t B, size_t I, size_t O) {
  using namespace veridl;
  const ops::DenseShape s{B, I, O};
  const auto x = random_floats(B * I, 1), W = random_floats(I * O, 2), b = random_floats(O, 3),
             dy = random_floats(B * O, 4);
  std::vector<float> y(B * O), dx(B * I), dW(I * O), db(O);
  const double mm = 2.0 * static_cast<double>(B * I * O);
  std::printf("dense B=%zu I=%zu O=%zu (threads %d)\n", B, I, O, omp_get_max_threads());

  auto fwd = [&] { kernels::dense_forward(s, x.data(), W.data(), b.data(), y.data()); g_sink = y[0]; };
  auto fwd_ref = [&] { ops::dense_forward(s, x.data(), W.data(), b.data(), y.data()); g_sink = y[0]; };
  auto bin = [&] { kernels::dense_backward_input(s, W.data(), dy.data(), dx.data()); g_sink = dx[0]; };
  auto bin_ref = [&] { ops::dense_backward_input(s, W.data(), dy.data(), dx.data()); g_sink = dx[0]; };
  auto bw = [&] { kernels::dense_backward_weight(s, x.data(), dy.data(), dW.data()); g_sink = dW[0]; };
  auto bw_ref = [&] { ops::dense_backward_weight(s, x.data(), dy.data(), dW.data()); g_sink = dW[0]; };
  auto bb = [&] { kernels::dense_backward_bias(s, dy.data(), db.data()); g_sink = db[0]; };
  auto bb_ref = [&] { ops::dense_backward_bias(s, dy.data(), db.data()); g_sink = db[0]; };
  Timing t1 = measure(fwd), r1 = measure(fwd_ref);
  row("dense_forward", mm, t1, r1);
  Timing t2 = measure(bin), r2 = measure(bin_ref);
  row("dense_backward_input", mm, t2, r2);
  Timing t3 = measure(bw), r3 = measure(bw_ref);
  row("dense_backward_weight", mm, t3, r3);
  Timing t4 = measure(bb), r4 = measure(bb_ref);
  row("dense_backward_bias", static_cast<double>(B * O), t4, r4);

  // The two loop nests of each product, forced (Auto picks one of them by shape).
  using Variant = kernels::DenseVariant;
  for (Variant v : {Variant::WideO, Variant::NarrowO}) {
    const char* tag = v == Variant::WideO ? "wideO" : "narrowO";
    std::string n1 = std::string("  forward/") + tag, n2 = std::string("  backward_input/") + tag,
                n3 = std::string("  backward_weight/") + tag;
    row(n1.c_str(), mm, measure([&] {
          kernels::dense_forward_variant(s, x.data(), W.data(), b.data(), y.data(), v);
          g_sink = y[0];
        }));
    row(n2.c_str(), mm, measure([&] {
          kernels::dense_backward_input_variant(s, W.data(), dy.data(), dx.data(), v);
          g_sink = dx[0];
        }));
    row(n3.c_str(), mm, measure([&] {
          kernels::dense_backward_weight_variant(s, x.data(), dy.data(), dW.data(), v);
          g_sink = dW[0];
        }));
  }
}

void bench_softmax(size_t B, size_t K) {
  using namespace veridl;
  const ops::SoftmaxShape s{B, K};
  const auto z = random_floats(B * K, 5, -5.0f, 5.0f);
  std::vector<int32_t> labels(B);
  for (size_t r = 0; r < B; ++r) labels[r] = static_cast<int32_t>((r * 7) % K);
  std::vector<float> p(B * K), dz(B * K);
  std::printf("softmax_ce B=%zu K=%zu eps=0.1 (threads %d)\n", B, K, omp_get_max_threads());
  auto f = [&] { g_sink = kernels::softmax_ce_forward(s, 0.1f, labels.data(), z.data(), p.data()); };
  auto f_ref = [&] {
    Decisions D;
    g_sink = ops::softmax_ce_forward(s, 0.1, labels.data(), z.data(), p.data(), D);
  };
  auto g = [&] { kernels::softmax_ce_backward(s, 0.1f, labels.data(), p.data(), 1.0f, dz.data()); g_sink = dz[0]; };
  auto g_ref = [&] { ops::softmax_ce_backward(s, 0.1, labels.data(), p.data(), 1.0f, dz.data()); g_sink = dz[0]; };
  const double n = static_cast<double>(B * K);
  std::printf("  (GFLOP/s column: G elements/s)\n");
  const Timing t1 = measure(f), r1 = measure(f_ref);
  row("softmax_ce_forward", n, t1, r1);
  const Timing t2 = measure(g), r2 = measure(g_ref);
  row("softmax_ce_backward", n, t2, r2);
}

// One SGD step of the MNIST linear classifier: y = xW + b, loss, dz, dW, db, W -= lr dW, b -= lr db.
void bench_train_step() {
  using namespace veridl;
  const size_t B = 128, I = 784, O = 10;
  const ops::DenseShape s{B, I, O};
  const ops::SoftmaxShape ss{B, O};
  auto x = random_floats(B * I, 11, 0.0f, 1.0f);
  auto W = random_floats(I * O, 12, -0.05f, 0.05f), b = random_floats(O, 13, -0.05f, 0.05f);
  std::vector<int32_t> labels(B);
  for (size_t r = 0; r < B; ++r) labels[r] = static_cast<int32_t>((r * 3) % O);
  std::vector<float> y(B * O), p(B * O), dz(B * O), dW(I * O), db(O);
  const float lr = 1e-3f;
  auto sgd = [&] {
    for (size_t j = 0; j < I * O; ++j) W[j] -= lr * dW[j];
    for (size_t j = 0; j < O; ++j) b[j] -= lr * db[j];
  };
  auto step = [&] {
    kernels::dense_forward(s, x.data(), W.data(), b.data(), y.data());
    g_sink = kernels::softmax_ce_forward(ss, 0.1f, labels.data(), y.data(), p.data());
    kernels::softmax_ce_backward(ss, 0.1f, labels.data(), p.data(), 1.0f, dz.data());
    kernels::dense_backward_weight(s, x.data(), dz.data(), dW.data());
    kernels::dense_backward_bias(s, dz.data(), db.data());
    sgd();
  };
  auto step_ref = [&] {
    Decisions D;
    ops::dense_forward(s, x.data(), W.data(), b.data(), y.data());
    g_sink = ops::softmax_ce_forward(ss, 0.1, labels.data(), y.data(), p.data(), D);
    ops::softmax_ce_backward(ss, 0.1, labels.data(), p.data(), 1.0f, dz.data());
    ops::dense_backward_weight(s, x.data(), dz.data(), dW.data());
    ops::dense_backward_bias(s, dz.data(), db.data());
    sgd();
  };
  std::printf("MNIST linear train step B=128 I=784 O=10 (forward, softmax-CE fwd+bwd, dW, db, SGD)\n");
  const double flops = 4.0 * static_cast<double>(B * I * O);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    char name[64];
    std::snprintf(name, sizeof name, "train_step threads=%d", threads);
    const Timing t = measure(step), r = measure(step_ref);
    row(name, flops, t, r);
  }
  std::printf("  (parts, threads=2:)\n");
  omp_set_num_threads(2);
  row("  dense_forward", 2.0 * B * I * O, measure([&] {
        kernels::dense_forward(s, x.data(), W.data(), b.data(), y.data());
      }));
  row("  softmax_ce fwd+bwd", static_cast<double>(B * O), measure([&] {
        g_sink = kernels::softmax_ce_forward(ss, 0.1f, labels.data(), y.data(), p.data());
        kernels::softmax_ce_backward(ss, 0.1f, labels.data(), p.data(), 1.0f, dz.data());
      }));
  row("  dense_backward_weight", 2.0 * B * I * O, measure([&] {
        kernels::dense_backward_weight(s, x.data(), dz.data(), dW.data());
      }));
  row("  dense_backward_bias", static_cast<double>(B * O), measure([&] {
        kernels::dense_backward_bias(s, dz.data(), db.data());
      }));
  row("  sgd update", 2.0 * (I * O + O), measure(sgd));
}

// The fused train step of a NetSpec, as the trainer runs it (TrainStep: forward, softmax-CE, backward,
// optimizer), with the spec's recipe optimizer, on a fixed random batch.
bool g_profile_nodes = false;  // --nodes: --profile, and a row per node too
bool g_no_fusion = false;      // --no-fusion: the plan as lowered (net/fuse.hpp off), for A/B runs

// Train steps on the fixed batch for `budget` seconds (at least 3): how many, and their wall seconds.
struct StepRun {
  size_t steps = 0;
  double wall = 0;
};
StepRun run_steps(veridl::train::TrainStep& ts, const veridl::AlignedVector<float>& x,
                  const std::vector<int32_t>& labels, float lr, size_t& t, double budget) {
  StepRun r;
  const auto t0 = Clock::now();
  while (r.steps < 3 || r.wall < budget) {
    std::copy(x.begin(), x.end(), ts.input());
    g_sink = ts.step(ts.input(), labels.data(), lr, ++t);
    ++r.steps;
    r.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return r;
}

// --profile: where the step's time goes, per primitive (net::NodeTimes over further steps: each node's forward and
// backward wall time, summed over the nodes of a primitive; the optimizer's update; the rest of the step).
void print_profile(const veridl::net::Plan& plan, veridl::train::TrainStep& ts, const veridl::AlignedVector<float>& x,
                   const std::vector<int32_t>& labels, float lr, size_t& t, double budget) {
  using namespace veridl;
  net::NodeTimes nt;
  ts.executor().set_profile(&nt);
  const auto [steps, wall] = run_steps(ts, x, labels, lr, t, budget);
  ts.executor().set_profile(nullptr);
  struct Row {
    std::string name;
    size_t nodes = 0;
    double fwd = 0, bwd = 0;
  };
  std::vector<Row> rows;
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    const std::string& name = prims::table()[plan.nodes[k].op].name;
    auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.name == name; });
    if (it == rows.end()) it = rows.insert(rows.end(), Row{name});
    ++it->nodes;
    it->fwd += nt.forward[k] / static_cast<double>(steps);
    it->bwd += nt.backward[k] / static_cast<double>(steps);
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.fwd + a.bwd > b.fwd + b.bwd; });
  const double step = wall / static_cast<double>(steps);
  double nodes_total = 0;
  for (const Row& r : rows) nodes_total += r.fwd + r.bwd;
  std::printf("  per primitive, mean over %zu profiled steps of %.3f ms (each node timed: forward, backward with its "
              "fan-in sums):\n", steps, step * 1e3);
  std::printf("    %-16s %5s %12s %12s %8s\n", "primitive", "nodes", "forward ms", "backward ms", "% step");
  for (const Row& r : rows)
    std::printf("    %-16s %5zu %12.3f %12.3f %7.1f%%\n", r.name.c_str(), r.nodes, r.fwd * 1e3, r.bwd * 1e3,
                100.0 * (r.fwd + r.bwd) / step);
  std::printf("    %-16s %5s %25.3f %7.1f%%\n", "(rest of step)", "", (step - nodes_total) * 1e3,
              100.0 * (step - nodes_total) / step);
  if (!g_profile_nodes) return;
  std::printf("  per node (plan order):\n    %4s %-16s %12s %12s  %s\n", "node", "primitive", "forward ms",
              "backward ms", "name");
  for (size_t k = 0; k < plan.nodes.size(); ++k)
    std::printf("    %4zu %-16s %12.3f %12.3f  %s\n", k, prims::table()[plan.nodes[k].op].name.c_str(),
                nt.forward[k] / static_cast<double>(steps) * 1e3, nt.backward[k] / static_cast<double>(steps) * 1e3,
                plan.nodes[k].name.c_str());
}

// --regions: the teams for_chunks forks in a step (kernels/parallel.hpp's RegionProfiler), over --seconds more steps:
// per site (the kernel function whose loop body forked), forks per step, wall ms per step, and the team's idle share
// (threads x wall less the threads' time in the body: a slower thread waited for, the fork and the join). BatchNorm's
// and softmax-CE's own OpenMP loops are not among them.
struct RegionTable : veridl::kernels::RegionProfiler {
  struct Site {
    size_t calls = 0;
    double wall = 0, thread_wall = 0, busy = 0;
  };
  std::map<const char*, Site> sites;
  void add(const char* site, double wall, const std::vector<double>& busy) override {
    Site& s = sites[site];
    ++s.calls;
    s.wall += wall;
    s.thread_wall += wall * static_cast<double>(busy.size());
    for (double b : busy) s.busy += b;
  }
  // GCC: "const char* veridl::kernels::region_site() [with F = isa_avx512::dense_backward_bias(...)::<lambda(...)>]"
  // -> "isa_avx512::dense_backward_bias(...)"; clang: "... [F = (lambda at /path/src/veridl/prims/dense/kernel.cpp:73:14)]"
  // -> "lambda at src/veridl/prims/dense/kernel.cpp:73:14".
  static std::string name(const char* pretty) {
    std::string n(pretty);
    for (const char* head : {"[with F = ", "[F = "}) {
      const size_t at = n.find(head);
      if (at != std::string::npos) {
        n = n.substr(at + std::strlen(head));
        break;
      }
    }
    if (n.rfind("(lambda at ", 0) == 0) {  // clang
      std::string where = n.substr(11);    // "/path/src/veridl/...:73:14)]"
      const size_t end = where.find(')');
      if (end != std::string::npos) where.resize(end);
      const size_t src = where.find("src/");
      return "lambda at " + (src == std::string::npos ? where : where.substr(src));
    }
    for (const char* suffix :
         {"::<lambda(size_t, size_t)>]", "::<lambda(long unsigned int, long unsigned int)>]", "]"}) {
      const size_t at = n.rfind(suffix);
      if (at != std::string::npos && at + std::strlen(suffix) == n.size()) {
        n.resize(at);
        break;
      }
    }
    const size_t paren = n.find('(');  // the enclosing function's parameters: long and the same for every variant
    if (paren != std::string::npos) {
      const size_t close = n.find(')', paren);
      if (close != std::string::npos) n = n.substr(0, paren) + "(...)" + n.substr(close + 1);
    }
    return n.size() > 90 ? n.substr(0, 87) + "..." : n;
  }
};

void print_regions(veridl::train::TrainStep& ts, const veridl::AlignedVector<float>& x,
                   const std::vector<int32_t>& labels, float lr, size_t& t, double budget) {
  RegionTable table;
  veridl::kernels::g_region_profiler.store(&table);
  const auto [steps, wall] = run_steps(ts, x, labels, lr, t, budget);
  veridl::kernels::g_region_profiler.store(nullptr);
  std::map<std::string, RegionTable::Site> by_name;  // (one row per name, however many copies of the string there are)
  double forks = 0, team_wall = 0, idle = 0;
  for (const auto& [site, s] : table.sites) {
    RegionTable::Site& r = by_name[RegionTable::name(site)];
    r.calls += s.calls;
    r.wall += s.wall;
    r.thread_wall += s.thread_wall;
    r.busy += s.busy;
    forks += static_cast<double>(s.calls);
    team_wall += s.wall;
    idle += s.thread_wall - s.busy;
  }
  std::vector<std::pair<std::string, RegionTable::Site>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.thread_wall - a.second.busy > b.second.thread_wall - b.second.busy;
  });
  const double n = static_cast<double>(steps);
  std::printf("  teams forked by for_chunks, per step over %zu steps of %.3f ms on average: %.1f forks, %.3f ms inside "
              "them (%.0f%%), %.3f ms of their threads' time idle\n",
              steps, wall / n * 1e3, forks / n, team_wall / n * 1e3, 100.0 * team_wall / wall, idle / n * 1e3);
  std::printf("    %8s %10s %10s %12s  %s\n", "forks", "wall ms", "idle %", "idle thr-ms", "kernel");
  for (const auto& [name, s] : rows)
    std::printf("    %8.1f %10.3f %9.1f%% %12.3f  %s\n", static_cast<double>(s.calls) / n, s.wall / n * 1e3,
                100.0 * (s.thread_wall - s.busy) / s.thread_wall, (s.thread_wall - s.busy) / n * 1e3, name.c_str());
}

void bench_net_step(const std::string& path, size_t batch, bool profile, bool regions) {
  using namespace veridl;
  const net::NetSpec spec = net::load_netspec(path);
  const net::Recipe r = spec.recipe.value_or(net::Recipe{});
  if (batch == 0) batch = r.batch;
  const net::Plan plan = net::compile(spec, batch, r.label_smoothing, g_no_fusion ? net::Fusion::Off : net::Fusion::On);
  const train::OptimConfig oc = train::optim_config(r);
  train::TrainStep ts(plan, oc);
  train::he_init(plan, 42, ts.params().data());
  const size_t D = plan.input_width();
  auto x = random_floats(batch * D, 21, 0.0f, 1.0f);
  std::vector<int32_t> labels(batch);
  for (size_t b = 0; b < batch; ++b) labels[b] = static_cast<int32_t>((b * 7) % plan.num_classes);
  size_t t = 0;
  // Tiny: the parameters barely move over many steps on one batch. With 1% of the recipe's rate the batch was learnt
  // after some hundred steps and its gradients fell to subnormal floats, which the CPU multiplies many times slower:
  // the BN CNN's 3136 -> 512 dense backward went 3.7 -> 63 ms a step in the profile that runs after the timing.
  const float lr = static_cast<float>(r.lr) * 1e-6f;
  const Timing tm = measure([&] {
    std::copy(x.begin(), x.end(), ts.input());
    g_sink = ts.step(ts.input(), labels.data(), lr, ++t);
  });
  std::printf("%s, batch %zu, %s, %zu parameters, %d threads: train step median %.3f ms (min %.3f), %.0f images/s\n",
              spec.name.c_str(), batch, oc.kind.c_str(), plan.n_params, omp_get_max_threads(), tm.median * 1e3,
              tm.min * 1e3, static_cast<double>(batch) / tm.median);
  // The optimizer's share: its update alone, on the step's last gradients.
  std::vector<float> g = ts.executor().grads();
  const Timing to = measure([&] {
    ts.optimizer().step(ts.params().data(), g.data(), lr, ++t);
    g_sink = ts.params()[0];
  });
  std::printf("  of which the %s update: median %.3f ms (%.0f%% of the step)\n", oc.kind.c_str(), to.median * 1e3,
              100.0 * to.median / tm.median);
  if (profile) print_profile(plan, ts, x, labels, lr, t, g_budget > 0 ? g_budget : 2.0);
  if (regions) print_regions(ts, x, labels, lr, t, g_budget > 0 ? g_budget : 2.0);
}

// The machine's FMA ceiling for one vector width: every thread runs 12 independent FMA chains (enough to cover
// the FMA latency on two pipes) for `seconds`; the flops of all threads over the wall time. Compiled for AVX2 and
// AVX-512 by function attributes (the bench is built for the portable base like everything else); run only when
// the CPU has them.
template <class Chains>
double fma_peak(double seconds, int threads, Chains chains) {
  const long iters = 5000000;
  double flops = 0, wall = 0;
  const auto t0 = Clock::now();
  while (wall < seconds) {
#pragma omp parallel num_threads(threads)
    g_sink = chains(iters, 1.0f + 1e-3f * static_cast<float>(omp_get_thread_num()));
    flops += 2.0 * 12 * static_cast<double>(iters) * threads;  // times the lanes, by the caller
    wall = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return flops / wall * 1e-9;
}
__attribute__((target("avx2,fma"))) float chains8(long iters, float s) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(s + 0.01f * static_cast<float>(i));
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-8f);
  for (long k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);  // distinct chains: nothing to merge
  float sum = 0;
  for (int i = 0; i < 12; ++i) sum += _mm256_cvtss_f32(a[i]);
  return sum;
}
__attribute__((target("avx512f"))) float chains16(long iters, float s) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(s + 0.01f * static_cast<float>(i));
  const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-8f);
  for (long k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
  float sum = 0;
  for (int i = 0; i < 12; ++i) sum += _mm512_cvtss_f32(a[i]);
  return sum;
}
// GFLOP/s of `threads` threads at the FMA peak of a variant (0 for the portable one: no FMA).
double peak_gflops(veridl::kernels::Isa isa, int threads, double seconds) {
  using veridl::kernels::Isa;
  if (isa == Isa::Avx2) return 8 * fma_peak(seconds, threads, chains8);
  if (isa == Isa::Avx512) return 16 * fma_peak(seconds, threads, chains16);
  return 0.0;
}

void bench_fma_peak(double seconds) {
  const int threads = omp_get_max_threads();
  for (veridl::kernels::Isa isa : veridl::kernels::supported_isas()) {
    if (isa == veridl::kernels::Isa::Portable) continue;
    for (int th : {1, threads}) {
      const double g = peak_gflops(isa, th, seconds);
      std::printf("FMA peak %s, %d thread(s): %.1f GFLOP/s (%.1f per thread)\n", veridl::kernels::isa_name(isa), th, g,
                  g / th);
    }
  }
}

// The GEMM-shaped kernels at the chapter nets' shapes, every kernel variant the CPU runs, at 1 and `threads`
// threads: GFLOP/s (2 flops per multiply-add of the product) and the fraction of that variant's FMA peak.
// --csv: one line per measurement, "op,shape,isa,threads,gflops,peak" (bench/gemm_vs_peers.py reads it).
struct ConvCase {
  const char* label;
  veridl::ops::Conv2dShape s;
};
std::vector<ConvCase> conv_cases() {
  using veridl::ops::Conv2dShape;
  auto c3 = [](size_t B, size_t C, size_t HW, size_t O) { return Conv2dShape{B, C, HW, HW, O, 3, 3, 1, 1, 1, 1, 1}; };
  auto c1 = [](size_t B, size_t C, size_t HW, size_t O) { return Conv2dShape{B, C, HW, HW, O, 1, 1, 1, 0, 0, 0, 0}; };
  return {{"3x3 1->32 28x28 b128 (BN CNN stem)", c3(128, 1, 28, 32)},
          {"3x3 32->32 28x28 b128 (BN CNN)", c3(128, 32, 28, 32)},
          {"3x3 32->64 14x14 b128 (BN CNN)", c3(128, 32, 14, 64)},
          {"3x3 64->64 14x14 b128 (BN CNN)", c3(128, 64, 14, 64)},
          {"3x3 32->32 28x28 b32", c3(32, 32, 28, 32)},   {"3x3 64->64 56x56 b8", c3(8, 64, 56, 64)},
          {"3x3 128->128 28x28 b8", c3(8, 128, 28, 128)}, {"3x3 256->256 14x14 b8", c3(8, 256, 14, 256)},
          {"3x3 512->512 7x7 b8", c3(8, 512, 7, 512)},    {"1x1 64->256 56x56 b8", c1(8, 64, 56, 256)},
          {"1x1 192->32 28x28 b8", c1(8, 192, 28, 32)},   {"1x1 384->64 14x14 b8", c1(8, 384, 14, 64)},
          {"1x1 960->160 7x7 b8", c1(8, 960, 7, 160)},
          // ConvNeXt-T at a 32x32 input, batch 128: each stage's two pointwise convolutions (8x8 down to 1x1)
          {"1x1 96->384 8x8 b128 (CNX32)", c1(128, 96, 8, 384)},    {"1x1 384->96 8x8 b128 (CNX32)", c1(128, 384, 8, 96)},
          {"1x1 192->768 4x4 b128 (CNX32)", c1(128, 192, 4, 768)},  {"1x1 768->192 4x4 b128 (CNX32)", c1(128, 768, 4, 192)},
          {"1x1 384->1536 2x2 b128 (CNX32)", c1(128, 384, 2, 1536)}, {"1x1 1536->384 2x2 b128 (CNX32)", c1(128, 1536, 2, 384)},
          {"1x1 768->3072 1x1 b128 (CNX32)", c1(128, 768, 1, 3072)}, {"1x1 3072->768 1x1 b128 (CNX32)", c1(128, 3072, 1, 768)},
          // ConvNeXt-T at 224x224, batch 16: each stage's two pointwise convolutions (56x56 down to 7x7)
          {"1x1 96->384 56x56 b16 (CNX224)", c1(16, 96, 56, 384)},   {"1x1 384->96 56x56 b16 (CNX224)", c1(16, 384, 56, 96)},
          {"1x1 192->768 28x28 b16 (CNX224)", c1(16, 192, 28, 768)}, {"1x1 768->192 28x28 b16 (CNX224)", c1(16, 768, 28, 192)},
          {"1x1 384->1536 14x14 b16 (CNX224)", c1(16, 384, 14, 1536)}, {"1x1 1536->384 14x14 b16 (CNX224)", c1(16, 1536, 14, 384)},
          {"1x1 768->3072 7x7 b16 (CNX224)", c1(16, 768, 7, 3072)},  {"1x1 3072->768 7x7 b16 (CNX224)", c1(16, 3072, 7, 768)}};
}
struct DenseCase {
  const char* label;
  veridl::ops::DenseShape s;
};
std::vector<DenseCase> dense_cases() {
  return {{"128x784->512 (MLP)", {128, 784, 512}},
          {"128x512->512 (MLP)", {128, 512, 512}},
          {"128x3136->512 (BN CNN)", {128, 3136, 512}},
          {"3152x192->192 (ViT-Tiny b16 q/k/v/proj)", {3152, 192, 192}},
          {"3152x192->768 (ViT-Tiny b16 fc1)", {3152, 192, 768}},
          {"3152x768->192 (ViT-Tiny b16 fc2)", {3152, 768, 192}}};
}

void bench_gemm(bool csv, const std::string& only, bool cold) {
  using namespace veridl;
  namespace k = veridl::kernels;
  const int threads = omp_get_max_threads();
  std::vector<int> team = {1};
  if (threads > 1) team.push_back(threads);
  if (!csv) std::printf("GEMM-shaped kernels, cpu: %s\n", k::cpu_model().c_str());
  for (k::Isa isa : k::supported_isas()) {
    double peak[2] = {0, 0};
    for (size_t ti = 0; ti < team.size(); ++ti) peak[ti] = peak_gflops(isa, team[ti], 0.3);
    if (!csv) std::printf("variant %s: FMA peak %.1f GFLOP/s (1 thread), %.1f (%d)\n", k::isa_name(isa), peak[0],
                          team.size() > 1 ? peak[1] : peak[0], team.back());
    auto report = [&](const char* op, const char* shape, size_t ti, double flops, Timing tm) {
      const double g = flops / tm.median * 1e-9;
      if (csv)
        std::printf("%s,%s,%s,%d,%.2f,%.2f\n", op, shape, k::isa_name(isa), team[ti], g, peak[ti]);
      else
        std::printf("  %-22s %-34s %d thr %8.1f GFLOP/s%s\n", op, shape, team[ti], g,
                    peak[ti] > 0 ? (" " + std::to_string(static_cast<int>(100 * g / peak[ti] + 0.5)) + "% of peak").c_str() : "");
    };
    for (size_t ti = 0; ti < team.size(); ++ti) {
      omp_set_num_threads(team[ti]);
      for (const DenseCase& c : dense_cases()) {
        if (std::string(c.label).find(only) == std::string::npos) continue;
        const ops::DenseShape s = c.s;
        const auto x = random_floats(s.B * s.I, 1), W = random_floats(s.I * s.O, 2), b = random_floats(s.O, 3),
                   dy = random_floats(s.B * s.O, 4);
        veridl::AlignedVector<float> y(s.B * s.O), dx(s.B * s.I), dW(s.I * s.O);
        const double f = 2.0 * static_cast<double>(s.B * s.I * s.O);
        report("dense_forward", c.label, ti, f, measure([&] { k::dense_forward.at(isa)(s, x.data(), W.data(), b.data(), y.data()); }));
        report("dense_backward_input", c.label, ti, f, measure([&] { k::dense_backward_input.at(isa)(s, W.data(), dy.data(), dx.data()); }));
        report("dense_backward_weight", c.label, ti, f, measure([&] { k::dense_backward_weight.at(isa)(s, x.data(), dy.data(), dW.data()); }));
      }
      for (const ConvCase& c : conv_cases()) {
        if (std::string(c.label).find(only) == std::string::npos) continue;
        const ops::Conv2dShape& s = c.s;
        const auto W = random_floats(s.w_size(), 2), b = random_floats(s.O, 3);
        veridl::AlignedVector<float> dW(s.w_size());
        // --cold: copies of the activations totalling at least 512 MiB, a call's operands the next copy's.
        struct Set {
          veridl::AlignedVector<float> x, dy, y, dx;
        };
        const double set_bytes = 8.0 * static_cast<double>(s.x_size() + s.y_size());
        const size_t count = cold ? cold_copies(set_bytes) : 1;
        std::vector<Set> sets(count, Set{random_floats(s.x_size(), 1), random_floats(s.y_size(), 4),
                                         veridl::AlignedVector<float>(s.y_size()),
                                         veridl::AlignedVector<float>(s.x_size())});
        size_t it = 0;
        auto next = [&]() -> Set& { return sets[it++ % count]; };
        const double f = 2.0 * static_cast<double>(s.B * s.O * s.OH() * s.OW() * s.CG() * s.KH * s.KW);
        report("conv2d_forward", c.label, ti, f, measure([&] {
                 Set& d = next();
                 k::conv2d_forward.at(isa)(s, d.x.data(), W.data(), b.data(), d.y.data());
               }));
        report("conv2d_backward_input", c.label, ti, f, measure([&] {
                 Set& d = next();
                 k::conv2d_backward_input.at(isa)(s, W.data(), d.dy.data(), d.dx.data());
               }));
        report("conv2d_backward_weight", c.label, ti, f, measure([&] {
                 const Set& d = next();
                 k::conv2d_backward_weight.at(isa)(s, d.x.data(), d.dy.data(), dW.data());
               }));
      }
    }
    omp_set_num_threads(threads);
  }
}

// One smooth activation's float kernels (kernels::elementwise_forward / _backward<F>) in every variant the CPU runs:
// ns per element, forward and backward, with subnormals kept and flushed. Inputs N(0, 2) clipped to [-8, 8]: the
// activations' working range, no subnormal among them (a variant that makes its own, e.g. in lanes it computes and
// then discards, shows as a kept / flushed gap).
template <class F>
void bench_activation(size_t n) {
  namespace k = veridl::kernels;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> d(0.0f, 2.0f);
  veridl::AlignedVector<float> x(n), y(n), dy(n), dx(n);
  for (auto& v : x) v = std::clamp(d(rng), -8.0f, 8.0f);
  for (auto& v : dy) v = std::clamp(d(rng), -8.0f, 8.0f);
  std::vector<uint8_t> r8(n);
  for (k::Isa isa : k::supported_isas()) {
    double t[2][2];  // [flushed][forward, backward]
    for (int flush = 0; flush < 2; ++flush) {
      const k::FlushSubnormals fz(flush == 1);
      t[flush][0] = measure([&] { k::elementwise_forward<F>.at(isa)(n, x.data(), y.data(), r8.data()); g_sink = y[0]; }).median;
      t[flush][1] = measure([&] { k::elementwise_backward<F>.at(isa)(n, x.data(), r8.data(), dy.data(), dx.data()); g_sink = dx[0]; }).median;
    }
    const double e = 1e9 / static_cast<double>(n);
    std::printf("  %-10s %-8s forward %6.3f ns/elem (flushed %6.3f)   backward %6.3f ns/elem (flushed %6.3f)\n", F::kName,
                k::isa_name(isa), t[0][0] * e, t[1][0] * e, t[0][1] * e, t[1][1] * e);
  }
}

void bench_activations(const std::string& only) {
  constexpr size_t n = 16 * 1536 * 14 * 14;
  std::printf("smooth activations, %zu floats, %d threads, cpu: %s\n", n, omp_get_max_threads(),
              veridl::kernels::cpu_model().c_str());
  auto one = [&]<class F>(F) {
    if (std::string(F::kName).find(only) != std::string::npos) bench_activation<F>(n);
  };
  one(veridl::prims::SigmoidFn{});
  one(veridl::prims::SwishFn{});
  one(veridl::prims::HardSwishFn{});
  one(veridl::prims::GeluFn{});
  one(veridl::prims::GeluErfFn{});
}

// The BatchNorm kernels (prims/batchNorm/kernel.hpp) with the fused ReLU, training mode, at the BN CNN's two shapes
// (specs/mnist_cnn_bn.json, batch 128) and a ResNet-18 stage's, every kernel variant the CPU runs: ms per call, and
// GB/s of the traffic the call cannot avoid (forward: x read, y and the mask written; backward: dy, the mask and x
// read, dx written). Twice: cache-warm (the same buffers every call, as a microbenchmark usually runs) and
// from memory (the calls cycle through copies of the buffers totalling at least 512 MiB, so that every call finds its
// operands out of cache, as in a training step, where the activations of the other layers pass through the caches
// between a layer's forward and its backward).
void bench_batchnorm() {
  namespace k = veridl::kernels;
  std::printf("batchNorm + fused ReLU, training, %d threads, cpu: %s\n", omp_get_max_threads(), k::cpu_model().c_str());
  struct Case {
    const char* label;
    veridl::ops::BatchNormShape s;
  };
  const Case cases[] = {{"128x32x28x28 (BN CNN)", {128, 32, 28, 28}},
                        {"128x64x14x14 (BN CNN)", {128, 64, 14, 14}},
                        {"16x128x28x28 (ResNet-18)", {16, 128, 28, 28}}};
  struct Set {
    veridl::AlignedVector<float> x, dy, y, dx;
    std::vector<uint8_t> mask;
  };
  for (const Case& c : cases) {
    const size_t n = c.s.count(), C = c.s.C;
    const double set_bytes = 17.0 * static_cast<double>(n);  // four float arrays and the mask
    const size_t cold_sets = cold_copies(set_bytes);
    const auto x = random_floats(n, 3, -2.0f, 2.0f), dy = random_floats(n, 4, -1.0f, 1.0f);
    const auto gamma = random_floats(C, 5, 0.5f, 1.5f), beta = random_floats(C, 6, -0.5f, 0.5f);
    veridl::AlignedVector<float> mean(C), var(C), r(C), dg(C), db(C);
    std::vector<double> stats(2 * C);
    std::vector<Set> sets(cold_sets, Set{x, dy, veridl::AlignedVector<float>(n), veridl::AlignedVector<float>(n),
                                         std::vector<uint8_t>(n)});
    const double fwd_bytes = 9.0 * static_cast<double>(n), bwd_bytes = 13.0 * static_cast<double>(n);
    for (k::Isa isa : k::supported_isas()) {
      double t[2][2];  // [cold][forward, backward]
      for (int cold = 0; cold < 2; ++cold) {
        const size_t count = cold ? cold_sets : 1;
        size_t it = 0;
        t[cold][0] = measure([&] {
          Set& b = sets[it++ % count];
          k::batchnorm_train_forward.at(isa)(c.s, 1e-5, b.x.data(), gamma.data(), beta.data(), b.y.data(), mean.data(),
                                             var.data(), r.data(), stats.data(), b.mask.data());
          g_sink = b.y[0];
        }).median;
        it = 0;
        t[cold][1] = measure([&] {
          Set& b = sets[it++ % count];
          k::batchnorm_backward.at(isa)(c.s, gamma.data(), r.data(), stats.data(), b.x.data(), b.dy.data(), b.dx.data(),
                                        dg.data(), db.data(), b.mask.data());
          g_sink = b.dx[0];
        }).median;
      }
      std::printf("  %-26s %-8s forward %6.3f ms (%5.1f GB/s), from memory %6.3f ms (%5.1f GB/s)   backward %6.3f ms "
                  "(%5.1f GB/s), from memory %6.3f ms (%5.1f GB/s)\n",
                  c.label, k::isa_name(isa), t[0][0] * 1e3, fwd_bytes / t[0][0] * 1e-9, t[1][0] * 1e3,
                  fwd_bytes / t[1][0] * 1e-9, t[0][1] * 1e3, bwd_bytes / t[0][1] * 1e-9, t[1][1] * 1e3,
                  bwd_bytes / t[1][1] * 1e-9);
    }
  }
}

void bench_gather() {
  constexpr size_t kN = 60000, kBatch = 128;
  veridl::data::Dataset ds;
  ds.n = kN;
  ds.H = ds.W = 28;
  ds.source = "bench";
  ds.pixels.resize(kN * ds.image_size());
  std::mt19937_64 rng(7);
  for (uint8_t& p : ds.pixels) p = static_cast<uint8_t>(rng());
  ds.labels.assign(kN, 0);
  std::vector<uint32_t> order(kN);
  for (size_t i = 0; i < kN; ++i) order[i] = static_cast<uint32_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t D = ds.image_size();
  std::vector<float> out(kBatch * D);
  const Timing warm = measure([&] {
    for (size_t b = 0; b < kBatch; ++b) ds.copy_images(b, 1, out.data() + b * D);
    g_sink = out[0];
  });
  size_t next = 0;  // the shuffled walk continues over calls, wrapping at the end
  const Timing cold = measure([&] {
    if (next + kBatch > kN) next = 0;
    const uint32_t* rows = order.data() + next;
    constexpr size_t kAhead = 4;  // as train::train gathers
    for (size_t b = 0; b < kAhead; ++b) ds.prefetch(rows[b]);
    for (size_t b = 0; b < kBatch; ++b) {
      if (b + kAhead < kBatch) ds.prefetch(rows[b + kAhead]);
      ds.copy_images(rows[b], 1, out.data() + b * D);
    }
    next += kBatch;
    g_sink = out[0];
  });
  std::printf("batch gather, %zu images of %zu bytes -> floats, 1 thread: cache-warm %.2f us (min %.2f), shuffled "
              "rows from memory %.2f us (min %.2f) per batch\n",
              kBatch, D, warm.median * 1e6, warm.min * 1e6, cold.median * 1e6, cold.min * 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  bool step_only = false, peak = false, gemm = false, csv = false, elementwise = false, batchnorm = false, cold = false,
       gather = false;
  std::string only;  // --gemm: only the shapes whose label contains it; --elementwise: the activations whose name does
  std::string net_spec;
  size_t net_batch = 0;
  bool profile = false, regions = false;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--quick") == 0) g_quick = true;
    if (std::strcmp(argv[a], "--step-only") == 0) step_only = true;
    if (std::strcmp(argv[a], "--net") == 0 && a + 1 < argc) net_spec = argv[++a];
    if (std::strcmp(argv[a], "--batch") == 0 && a + 1 < argc) net_batch = std::strtoul(argv[++a], nullptr, 10);
    if (std::strcmp(argv[a], "--seconds") == 0 && a + 1 < argc) g_budget = std::strtod(argv[++a], nullptr);
    if (std::strcmp(argv[a], "--peak") == 0) peak = true;
    if (std::strcmp(argv[a], "--profile") == 0) profile = true;
    if (std::strcmp(argv[a], "--nodes") == 0) profile = g_profile_nodes = true;
    if (std::strcmp(argv[a], "--no-fusion") == 0) g_no_fusion = true;
    if (std::strcmp(argv[a], "--regions") == 0) regions = true;
    if (std::strcmp(argv[a], "--gemm") == 0) gemm = true;
    if (std::strcmp(argv[a], "--cold") == 0) cold = true;
    if (std::strcmp(argv[a], "--elementwise") == 0) elementwise = true;
    if (std::strcmp(argv[a], "--batchnorm") == 0) batchnorm = true;
    if (std::strcmp(argv[a], "--gather") == 0) gather = true;
    if (std::strcmp(argv[a], "--csv") == 0) csv = true;
    if (std::strcmp(argv[a], "--only") == 0 && a + 1 < argc) only = argv[++a];
  }
  if (peak) {
    bench_fma_peak(g_budget > 0 ? g_budget : 2.0);
    return 0;
  }
  if (gemm) {
    bench_gemm(csv, only, cold);
    return 0;
  }
  if (elementwise) {
    bench_activations(only);
    return 0;
  }
  if (batchnorm) {
    bench_batchnorm();
    return 0;
  }
  if (gather) {
    bench_gather();
    return 0;
  }
  if (!net_spec.empty()) {
    try {
      bench_net_step(net_spec, net_batch, profile, regions);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_kernels: %s\n", e.what());
      return 1;
    }
    return 0;
  }
  std::printf("veridl kernels bench: OpenMP max threads %d, cpu %s, kernel variant %s\n", omp_get_max_threads(),
              veridl::kernels::cpu_model().c_str(), veridl::kernels::isa_name(veridl::kernels::active_isa()));
  const int threads = omp_get_max_threads();
  bench_train_step();
  if (step_only) return 0;
  omp_set_num_threads(threads);
  bench_dense(128, 784, 10);
  bench_dense(128, 784, 512);
  bench_dense(128, 512, 512);
  bench_softmax(128, 10);
  return 0;
}
