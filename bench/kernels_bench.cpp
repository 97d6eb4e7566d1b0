// Microbenchmark of the fast float32 kernels (src/veridl/prims/<name>/kernel.hpp) against the templated
// reference ops (src/veridl/prims/<name>/reference.hpp, T = float), plus the full MNIST linear-classifier train step.
//
// Build (CMake):  add_executable(bench_kernels bench/kernels_bench.cpp)
//                 target_link_libraries(bench_kernels PRIVATE veridl_core)
// Build (by hand): g++ -std=c++20 -O3 -march=native -fopenmp -Isrc bench/kernels_bench.cpp
//                      src/veridl/prims/dense/kernel.cpp src/veridl/prims/softmaxCE/kernel.cpp -o bench_kernels  (one line)
// Run:            OMP_NUM_THREADS=2 ./bench_kernels [--quick] [--step-only]
//                 OMP_NUM_THREADS=2 ./bench_kernels --net specs/mnist_mlp.json [--batch N] [--seconds S]
//                   the whole fused train step of a NetSpec (gather excluded: forward, loss, backward and
//                   the recipe's optimizer, as train::TrainStep runs it) on random data: median time per
//                   step over many steps, which shrugs off the bursts of foreign load that make epoch
//                   timings noisy on a shared machine; then the optimizer's update alone
//                 OMP_NUM_THREADS=2 ./bench_kernels --peak [--seconds S]
//                   the machine's FMA ceiling (independent FMA chains on every thread), the number the
//                   GEMM and train-step GFLOP/s are fractions of
//                 (2-thread figures need both cores idle: a busy core stalls every OpenMP join)
//
// Every figure is the median over many timed samples of the time per call (a sample times enough
// back-to-back calls to last ~50 us, for timer resolution). GFLOP/s counts 2 B I O flops for the dense
// products (B O for the bias sum).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "veridl/calculus/decisions.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/prims/dense/kernel.hpp"
#include "veridl/prims/dense/reference.hpp"
#include "veridl/prims/softmaxCE/kernel.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"
#include "veridl/train/trainer.hpp"

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

std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
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
  using kernels::detail::Variant;
  for (Variant v : {Variant::WideO, Variant::NarrowO}) {
    const char* tag = v == Variant::WideO ? "wideO" : "narrowO";
    std::string n1 = std::string("  forward/") + tag, n2 = std::string("  backward_input/") + tag,
                n3 = std::string("  backward_weight/") + tag;
    row(n1.c_str(), mm, measure([&] {
          kernels::detail::dense_forward(s, x.data(), W.data(), b.data(), y.data(), v);
          g_sink = y[0];
        }));
    row(n2.c_str(), mm, measure([&] {
          kernels::detail::dense_backward_input(s, W.data(), dy.data(), dx.data(), v);
          g_sink = dx[0];
        }));
    row(n3.c_str(), mm, measure([&] {
          kernels::detail::dense_backward_weight(s, x.data(), dy.data(), dW.data(), v);
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
void bench_net_step(const std::string& path, size_t batch) {
  using namespace veridl;
  const net::NetSpec spec = net::load_netspec(path);
  const net::Recipe r = spec.recipe.value_or(net::Recipe{});
  if (batch == 0) batch = r.batch;
  const net::Plan plan = net::compile(spec, batch, r.label_smoothing);
  const train::OptimConfig oc = train::optim_config(r);
  train::TrainStep ts(plan, oc);
  train::he_init(plan, 42, ts.params().data());
  const size_t D = plan.input_width();
  auto x = random_floats(batch * D, 21, 0.0f, 1.0f);
  std::vector<int32_t> labels(batch);
  for (size_t b = 0; b < batch; ++b) labels[b] = static_cast<int32_t>((b * 7) % plan.num_classes);
  size_t t = 0;
  const float lr = static_cast<float>(r.lr) * 0.01f;  // small: many steps on one batch stay finite
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
}

#ifdef __AVX2__
// The machine's FMA ceiling: every thread runs 12 independent 8-lane FMA chains (enough to cover the FMA
// latency on two pipes) for `seconds`; the flops of all threads over the wall time.
void bench_fma_peak(double seconds) {
  const int threads = omp_get_max_threads();
  const long iters = 20000000;
  double flops = 0, wall = 0;
  const auto t0 = Clock::now();
  while (wall < seconds) {
#pragma omp parallel num_threads(threads)
    {
      const float s = 1.0f + 1e-3f * static_cast<float>(omp_get_thread_num());
      __m256 a[12];
      for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(s + 0.01f * static_cast<float>(i));
      const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-8f);
      for (long k = 0; k < iters; ++k) {
        for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);  // distinct chains: nothing to merge
      }
      float sum = 0;
      for (int i = 0; i < 12; ++i) sum += _mm256_cvtss_f32(a[i]);
      g_sink = sum;
    }
    flops += 2.0 * 8 * 12 * static_cast<double>(iters) * threads;
    wall = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::printf("FMA peak, %d threads: %.1f GFLOP/s (%.1f per thread)\n", threads, flops / wall * 1e-9,
              flops / wall * 1e-9 / threads);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool step_only = false, peak = false;
  std::string net_spec;
  size_t net_batch = 0;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--quick") == 0) g_quick = true;
    if (std::strcmp(argv[a], "--step-only") == 0) step_only = true;
    if (std::strcmp(argv[a], "--net") == 0 && a + 1 < argc) net_spec = argv[++a];
    if (std::strcmp(argv[a], "--batch") == 0 && a + 1 < argc) net_batch = std::strtoul(argv[++a], nullptr, 10);
    if (std::strcmp(argv[a], "--seconds") == 0 && a + 1 < argc) g_budget = std::strtod(argv[++a], nullptr);
    if (std::strcmp(argv[a], "--peak") == 0) peak = true;
  }
  if (peak) {
#ifdef __AVX2__
    bench_fma_peak(g_budget > 0 ? g_budget : 2.0);
    return 0;
#else
    std::fprintf(stderr, "bench_kernels: --peak needs an AVX2+FMA build\n");
    return 1;
#endif
  }
  if (!net_spec.empty()) {
    try {
      bench_net_step(net_spec, net_batch);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_kernels: %s\n", e.what());
      return 1;
    }
    return 0;
  }
  std::printf("veridl kernels bench: OpenMP max threads %d%s\n", omp_get_max_threads(),
#ifdef __AVX2__
              ", AVX2+FMA build"
#else
              ", portable build"
#endif
  );
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
