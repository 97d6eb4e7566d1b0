// Kernels called again after their scratch is dirtied (issue 20 item 4). Each test process runs one test, so a
// kernel that relies on a scratch buffer being zero (as a fresh allocation is) would pass every differential test
// on its first call. kernels::poison_scratch() fills every kernel's per-thread scratch with NaN before its next
// use; PrimitiveTable.EveryFastKernelGivesTheSameBitsAfterItsOutputsAndScratchAreDirtied (tests/test_prims.cpp)
// reruns every primitive's examples that way, and the train step of the small shipped specs is rerun here at
// their real image sizes (the kernels' larger loop nests and the team threads). The first test shows that such a
// kernel is caught, on the calling thread and on OpenMP's team threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "veridl/kernels/scratch.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/trainer.hpp"

namespace dirty_scratch_test {  // named: the unity build puts other test files' helpers beside these

using veridl::testutil::repo;

// A 3-tap row sum through a zero-bordered copy of the row in scratch, written the wrong way: the borders are
// never written, so the result is right only while the scratch holds zeros there (as after its allocation).
// `write_borders` is the correct kernel.
std::vector<float> row_sums_through_scratch(const std::vector<float>& x, size_t rows, size_t W, bool write_borders) {
  std::vector<float> y(rows * W);
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; ++r) {
    thread_local veridl::kernels::Scratch<float> scratch;
    float* p = scratch.get(W + 2);
    if (write_borders) p[0] = p[W + 1] = 0.0f;
    std::memcpy(p + 1, x.data() + r * W, W * sizeof(float));
    for (size_t j = 0; j < W; ++j) y[r * W + j] = p[j] + p[j + 1] + p[j + 2];
  }
  return y;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(DirtyScratch, AKernelThatReadsScratchItDidNotWriteIsCaughtOnEveryThread) {
  const size_t rows = 64, W = 13;
  std::vector<float> x(rows * W);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
  for (int threads : {1, 2}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    for (bool correct : {true, false}) {
      const std::vector<float> first = row_sums_through_scratch(x, rows, W, correct);
      const std::vector<float> again = row_sums_through_scratch(x, rows, W, correct);
      EXPECT_TRUE(same_floats(first, again)) << "a second call without poisoning gives the same bits";
      veridl::kernels::poison_scratch();
      const std::vector<float> dirtied = row_sums_through_scratch(x, rows, W, correct);
      if (correct) {
        EXPECT_TRUE(same_floats(first, dirtied)) << threads << " threads: the correct kernel";
      } else {  // the buggy kernel reads NaN borders on every row, whichever thread runs it
        size_t nan_rows = 0;
        for (size_t r = 0; r < rows; ++r) nan_rows += std::isnan(dirtied[r * W]) && std::isnan(dirtied[r * W + W - 1]);
        EXPECT_EQ(nan_rows, rows) << threads << " threads";
        EXPECT_FALSE(same_floats(first, dirtied)) << threads << " threads: the buggy kernel must be caught";
      }
    }
    omp_set_num_threads(saved);
  }
}

// One fast forward + backward of a spec's plan at batch 4 from He-initialised parameters: the loss, the logits
// and every parameter gradient.
struct StepBits {
  float loss = 0.0f;
  std::vector<float> logits, grads;
};

StepBits step_once(veridl::net::Executor<float, veridl::net::FastKernels>& ex, const std::vector<float>& x,
                   const std::vector<int32_t>& labels) {
  veridl::Decisions D;
  StepBits s;
  s.loss = ex.forward_loss(x.data(), labels.data(), labels.size(), D, veridl::net::Mode::Train);
  s.logits = ex.logits();
  ex.backward(1.0f);
  s.grads = ex.grads();
  return s;
}

// The train step of every small shipped spec (each family of kernels at real image sizes, on 2 threads under
// ctest) gives the same bits when every scratch buffer is poisoned before it runs again.
TEST(DirtyScratch, TheSmallShippedSpecsTrainStepsGiveTheSameBitsAfterTheScratchIsPoisoned) {
  const char* specs[] = {"mnist_linear", "mnist_mlp", "mnist_cnn_bn", "fashion_convnet", "cifar_cnn_bn",
                         "mnist_resnet_tiny", "mnist_strided_same", "resnet18_small", "mobilenetv2_small",
                         "efficientnet_b0_small", "convnext_small28", "vit_small28"};
  const size_t B = 4;
  for (const char* name : specs) {
    const veridl::net::NetSpec spec = veridl::net::load_netspec(repo("specs/" + std::string(name) + ".json"));
    const veridl::net::Plan plan = veridl::net::compile(spec, B, 0.1);
    veridl::net::Executor<float, veridl::net::FastKernels> ex(plan);
    veridl::train::he_init(plan, 7, ex.params().data());
    ex.set_noise(3, 1);
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> x(B * spec.input_size());
    for (float& v : x) v = u(rng);
    std::vector<int32_t> labels(B);
    for (size_t b = 0; b < B; ++b) labels[b] = static_cast<int32_t>((3 * b + 1) % spec.num_classes());
    const StepBits clean = step_once(ex, x, labels);
    veridl::kernels::poison_scratch();
    const StepBits dirtied = step_once(ex, x, labels);
    EXPECT_TRUE(std::isfinite(clean.loss)) << name;
    EXPECT_EQ(std::memcmp(&clean.loss, &dirtied.loss, sizeof(float)), 0) << name << ": loss " << clean.loss << " vs "
                                                                           << dirtied.loss;
    EXPECT_TRUE(same_floats(clean.logits, dirtied.logits)) << name << ": logits";
    EXPECT_TRUE(same_floats(clean.grads, dirtied.grads)) << name << ": parameter gradients";
  }
}

}  // namespace dirty_scratch_test
