// Plumbing mutants (issue 20 item 6): bugs between the recipe and the step that every contract passes, because both
// sides of a contract come from the same plan and config. Each is re-injected at its code point through a test-only
// switch (util/plumbing_fault.hpp) and must be caught by a named check here, which passes without it:
//   PlumbingFault::LrAtZeroBasedStep          Plumbing.TheScheduleIsEvaluatedAtTheOneBasedStep
//   PlumbingFault::PlanWithoutLabelSmoothing  Plumbing.TheRunsLabelSmoothingReachesTheTrainingLoss
//   PlumbingFault::RecipeDropsWeightDecay     Plumbing.TheRecipesWeightDecayReachesTheUpdate
//   PlumbingFault::PadStyleSwapped            PlanPads.APlanThatSwapsThePadStyleFailsTheChecks (test_plan_pads.cpp)
// The expected values are the test's own: the schedule from its formula in optimizer.hpp, the smoothed loss from
// the logits in double, the decay as lr wd w on the weights only.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "test_util.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/plumbing_fault.hpp"

namespace plumbing_test {  // named: the unity build puts other test files' helpers beside these

using veridl::testutil::mnist;
using veridl::testutil::repo;
namespace train = veridl::train;
namespace net = veridl::net;

// The first n digits of the bundled training set (the test set too: train() evaluates at the end).
veridl::data::Split first_digits(size_t n) {
  const veridl::data::Dataset& all = mnist().train;
  veridl::data::Dataset d;
  d.n = n;
  d.C = all.C;
  d.H = all.H;
  d.W = all.W;
  d.images.resize(n * all.image_size());
  all.copy_images(0, n, d.images.data());
  d.labels.assign(all.labels.begin(), all.labels.begin() + static_cast<std::ptrdiff_t>(n));
  d.num_classes = 10;
  d.source = "first digits";
  return {d, d, "first-digits", {}};
}

train::TrainConfig quiet_config(size_t epochs, size_t batch) {
  train::TrainConfig c;
  c.epochs = epochs;
  c.batch = batch;
  c.seed = 5;
  c.eval_every = 0;
  c.checkpoint_every = 0;
  c.threads = 2;
  static FILE* null = std::fopen("/dev/null", "w");
  c.log = null;
  return c;
}

// (a) The lr of step s (1-based) is the schedule at s: 8 steps of warmup (4) + cosine, lr 0.1; the first step
// also moves the parameters (an lr of 0 would leave them at their He initialisation).
std::vector<std::string> schedule_failures() {
  std::vector<std::string> bad;
  const net::NetSpec spec = net::load_netspec(repo("specs/mnist_linear.json"));
  train::TrainConfig cfg = quiet_config(2, 64);
  cfg.optim.kind = "sgd";
  cfg.optim.lr = 0.1;
  cfg.optim.cosine = true;
  cfg.optim.warmup_epochs = 1.0;
  const train::TrainResult r = train::train(spec, cfg, first_digits(256));
  const double W = 4, T = 8;
  if (r.step_lr.size() != 8) return {fmt::format("{} step lrs recorded, not 8", r.step_lr.size())};
  for (size_t i = 0; i < 8; ++i) {
    const double s = static_cast<double>(i + 1);
    const double want = s <= W ? 0.1 * s / W : 0.1 * 0.5 * (1.0 + std::cos(std::numbers::pi * (s - W) / (T - W)));
    if (!(std::fabs(r.step_lr[i] - want) <= 1e-15))
      bad.push_back(fmt::format("step {}: lr {} but the schedule at step {} is {}", i + 1, r.step_lr[i], i + 1, want));
  }
  // One step (one batch, one epoch, warmup of one step: lr 0.1): the weights must have moved.
  train::TrainConfig one = quiet_config(1, 64);
  one.optim = cfg.optim;
  const train::TrainResult r1 = train::train(spec, one, first_digits(64));
  const net::Plan plan = net::compile(spec, 64);
  std::vector<float> init(plan.n_params);
  train::he_init(plan, one.seed, init.data());
  if (r1.model.params == init) bad.push_back("the first step left every parameter at its initial value");
  return bad;
}

// (b) With label smoothing 0.1 the loss of step 1 is the smoothed cross-entropy of the initial model's logits,
// computed here in double: mean over the batch of -sum_k t_k log softmax(z)_k, t = 0.9 onehot + 0.01.
std::vector<std::string> smoothing_failures() {
  const net::NetSpec spec = net::load_netspec(repo("specs/mnist_linear.json"));
  train::TrainConfig cfg = quiet_config(1, 64);
  cfg.label_smoothing = 0.1;
  cfg.optim.kind = "sgd";
  cfg.optim.lr = 0.1;
  const veridl::data::Split data = first_digits(64);
  const train::TrainResult r = train::train(spec, cfg, data);  // one batch: every example, in some order
  const net::Plan plan = net::compile(spec, 64);
  net::Executor<float, net::FastKernels> ex(plan, net::Purpose::Inference);
  train::he_init(plan, cfg.seed, ex.params().data());
  veridl::Decisions D;
  const float* z = ex.forward(data.train.images.data(), 64, D, net::Mode::Eval);
  double total = 0.0;
  for (size_t b = 0; b < 64; ++b) {
    double m = z[b * 10];
    for (size_t k = 0; k < 10; ++k) m = std::max(m, static_cast<double>(z[b * 10 + k]));
    double sum = 0.0;
    for (size_t k = 0; k < 10; ++k) sum += std::exp(z[b * 10 + k] - m);
    for (size_t k = 0; k < 10; ++k) {
      const double t = (static_cast<int32_t>(k) == data.train.labels[b] ? 0.9 : 0.0) + 0.01;
      total -= t * (z[b * 10 + k] - m - std::log(sum));
    }
  }
  const double want = total / 64.0;
  if (r.step_loss.size() != 1) return {fmt::format("{} step losses, not 1", r.step_loss.size())};
  if (!(std::fabs(r.step_loss[0] - want) <= 1e-5 * (1.0 + want)))
    return {fmt::format("step 1 loss {} but the smoothed cross-entropy of the initial logits is {}", r.step_loss[0],
                        want)};
  return {};
}

// (c) The recipe's weight decay reaches the update: one SGD step with the recipe's configuration (weightDecay 0.05,
// lr 0.1) minus one without decay is -lr wd w on every weight, and 0 on the biases.
std::vector<std::string> weight_decay_failures() {
  net::NetSpec spec = net::load_netspec(repo("specs/mnist_linear.json"));
  spec.recipe->optimizer = "sgd";
  spec.recipe->lr = 0.1;
  spec.recipe->weight_decay = 0.05;
  const train::OptimConfig with = train::optim_config(*spec.recipe);
  train::OptimConfig without = with;
  without.weight_decay = 0.0;
  const net::Plan plan = net::compile(spec, 64);
  const veridl::data::Split data = first_digits(64);
  std::vector<std::vector<float>> after;
  for (const train::OptimConfig* o : std::vector<const train::OptimConfig*>{&with, &without}) {
    train::TrainStep ts(plan, *o);
    train::he_init(plan, 5, ts.params().data());
    ts.step(data.train.images.data(), data.train.labels.data(), 0.1f, 1);
    after.push_back(ts.params());
  }
  std::vector<float> init(plan.n_params);
  train::he_init(plan, 5, init.data());
  std::vector<std::string> bad;
  for (const auto& t : plan.params) {
    const bool weight = t.shape.size() >= 2;
    double worst = 0.0;
    for (size_t i = t.offset; i < t.offset + t.size; ++i) {
      const double want = weight ? -0.1 * 0.05 * init[i] : 0.0;
      worst = std::max(worst, std::fabs((static_cast<double>(after[0][i]) - after[1][i]) - want));
    }
    if (!(worst <= 1e-6))
      bad.push_back(fmt::format("{}: the step with the recipe's decay minus the step without is off from {} by {}",
                                t.name, weight ? "-lr wd w" : "0", worst));
  }
  return bad;
}

void expect_clean_then_caught(std::vector<std::string> (*check)(), veridl::PlumbingFault fault, const char* what) {
  for (const std::string& m : check()) ADD_FAILURE() << what << " without the mutant: " << m;
  veridl::ScopedPlumbingFault on(fault);
  const std::vector<std::string> caught = check();
  EXPECT_FALSE(caught.empty()) << what << ": the mutant is not caught";
  for (const std::string& m : caught) std::printf("  caught (%s): %s\n", what, m.c_str());
}

TEST(Plumbing, TheScheduleIsEvaluatedAtTheOneBasedStep) {
  expect_clean_then_caught(schedule_failures, veridl::PlumbingFault::LrAtZeroBasedStep, "lr at the 0-based step");
}

TEST(Plumbing, TheRunsLabelSmoothingReachesTheTrainingLoss) {
  expect_clean_then_caught(smoothing_failures, veridl::PlumbingFault::PlanWithoutLabelSmoothing,
                           "plan without the run's label smoothing");
}

TEST(Plumbing, TheRecipesWeightDecayReachesTheUpdate) {
  expect_clean_then_caught(weight_decay_failures, veridl::PlumbingFault::RecipeDropsWeightDecay,
                           "recipe's weight decay not copied");
}

}  // namespace plumbing_test
