// "No per-step allocation" (docs/architecture.md): after its first steps have grown the kernels'
// reusable scratch buffers, a fused train step (TrainStep::step: forward, loss, backward, optimizer)
// must not call operator new at all, on any thread. This file replaces the global operator new of the
// test binary with a counting one (not in sanitizer builds, whose own operator new reports more).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "net_testutil.hpp"
#include "test_util.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/trainer.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define VERIDL_COUNT_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VERIDL_COUNT_NEW 0
#endif
#endif
#ifndef VERIDL_COUNT_NEW
#define VERIDL_COUNT_NEW 1
#endif

#if VERIDL_COUNT_NEW
namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_news{0};
}  // namespace

// noinline: inlined into gtest's factories, GCC 12 at -O1 takes the std::free of these replacements for a free
// of memory from a different allocator (a bogus -Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

using namespace veridl;

TEST(NoAllocation, TrainStepsAllocateNothingAfterWarmUp) {
#if !VERIDL_COUNT_NEW
  GTEST_SKIP() << "sanitizer build: operator new is the sanitizer's";
#else
  struct Case {
    std::string spec;
    size_t batch;
    std::string optimizer;
    double clip;
  };
  // Every primitive of chapters 2-5 (dense, ReLU, conv2d, max-pool, BatchNorm, softmax-CE) and every
  // optimizer path (SGD with momentum, Adam, AdamW, global-norm clipping); conv2d's grouped and depthwise
  // kernels (chapter 7) in a small net of its own ("grouped").
  const net::NetSpec grouped = net::parse_netspec(R"({"name": "grouped", "imageH": 16, "imageW": 16, "layers": [
      {"type": "conv2d", "ic": 1, "oc": 8, "k": 3},
      {"type": "conv2d", "ic": 8, "oc": 8, "k": 3, "stride": 2, "groups": 8},
      {"type": "conv2d", "ic": 8, "oc": 12, "k": 3, "groups": 4},
      {"type": "flatten"}, {"type": "dense", "fanIn": 768, "fanOut": 10}]})");
  // Chapter 10: the 28x28 ViT (patch tokens, LayerNorm on tokens, attention, erf GELU, drop-path, the CLS row) and
  // attention written with the matrix kit ("kit": matmul, splitHeads, mergeHeads, scale, softmax).
  for (const Case& c : {Case{"specs/mnist_linear.json", 128, "sgd", 0.0}, Case{"specs/mnist_mlp.json", 64, "adamw", 1.0},
                        Case{"specs/mnist_cnn_bn.json", 4, "adam", 0.5}, Case{"grouped", 8, "sgd", 0.0},
                        Case{"specs/vit_small28.json", 8, "adamw", 1.0}, Case{"kit", 4, "adam", 0.0}}) {
    const net::NetSpec spec = c.spec == "grouped" ? grouped
                              : c.spec == "kit"   ? testutil::attention_kit_net(false)
                                                  : net::load_netspec(testutil::repo(c.spec));
    const net::Plan plan = net::compile(spec, c.batch, 0.1);
    train::OptimConfig oc;
    oc.kind = c.optimizer;
    oc.lr = 1e-3;
    oc.momentum = c.optimizer == "sgd" ? 0.9 : 0.0;
    oc.weight_decay = 1e-4;
    oc.clip_norm = c.clip;
    train::TrainStep ts(plan, oc);
    train::he_init(plan, 1, ts.params().data());
    std::vector<float> x(c.batch * plan.input_width());
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 251) / 251.0f;
    std::vector<int32_t> labels(c.batch);
    for (size_t b = 0; b < c.batch; ++b) labels[b] = static_cast<int32_t>(b % plan.num_classes);
    size_t t = 0;
    for (int warm = 0; warm < 2; ++warm) ts.step(x.data(), labels.data(), 1e-3f, ++t);
    g_news = 0;
    g_counting = true;
    for (int s = 0; s < 3; ++s) ts.step(x.data(), labels.data(), 1e-3f, ++t);
    g_counting = false;
    EXPECT_EQ(g_news.load(), 0u) << c.spec << ": operator new calls in 3 train steps after warm-up";
  }
#endif
}

// The counter itself works (else the test above could not fail).
TEST(NoAllocation, TheCounterSeesAnAllocation) {
#if !VERIDL_COUNT_NEW
  GTEST_SKIP() << "sanitizer build";
#else
  g_news = 0;
  g_counting = true;
  auto* v = new std::vector<float>(1000);
  g_counting = false;
  delete v;
  EXPECT_GE(g_news.load(), 2u);
#endif
}
