// Every recipe field proven to reach the training step (issue 20 item 2).
//
// kFields is a table keyed by the recipe's JSON keys (net/netspec.cpp parse_recipe), one check per key. Each check
// writes a NetSpec JSON with a "recipe" object, builds the TrainConfig from it as `veridl train` does with no flags
// (train::optim_config for the optimizer fields, the recipe's other fields copied as tools/veridl/train_cmd.cpp
// copies them; RecipeFieldsCli.TheCommandLineBuildsTheConfigTheseChecksUse runs the command line itself and
// requires the same config, key by key), runs train::train on a few dozen digits of the linear net, and compares
// what the step did with math written here:
//   - the batch the step sees is gathered by the test's own copy of the documented data order (the cumulative
//     Fisher-Yates shuffle of epoch e seeded with e + seed), and augmented / normalised by the test's own code;
//   - losses are the (smoothed) cross-entropy of the linear net's logits, computed here in double;
//   - updates are the optimizer's formulas (optimizer.hpp) evaluated here in double, applied to the gradient the
//     executor's backward gives on that batch (the contracts prove that gradient; the optimizer, the schedule and
//     the plumbing are what is checked here).
// RecipeFields.EveryRecipeKeyHasAStepCheck reads the accepted keys from the parser's own error message, so a new
// recipe field without a row here fails the suite. RecipeFields/StepCheck.PassesAndBites/<key> runs each check
// as is (it must pass), then with the key dropped from the recipe the run gets and with the key set to a wrong
// value (the check still expects the asked value): both must fail, or the check would pass broken plumbing.
// The table is in docs/verification.md ("Every recipe field reaches the step").
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numbers>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "veridl/data/augment.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/file.hpp"

namespace recipe_fields_test {  // named: the unity build puts other test files' helpers beside these

using json = nlohmann::json;
using veridl::testutil::mnist;
using veridl::testutil::sh;
namespace train = veridl::train;
namespace net = veridl::net;
namespace data = veridl::data;
using Failures = std::vector<std::string>;

constexpr uint64_t kSeed = 5;

// ---- data and specs --------------------------------------------------------------------------------------------

// The first n bundled training digits as floats; with rgb, as 3 x 28 x 28 images whose channel c is the digit
// scaled by 1 - 0.3 c (so that per-channel normalisation matters).
data::Split digits(size_t n, bool rgb = false) {
  const data::Dataset& all = mnist().train;
  data::Dataset d;
  d.n = n;
  d.C = rgb ? 3 : 1;
  d.H = all.H;
  d.W = all.W;
  std::vector<float> grey(n * all.image_size());
  all.copy_images(0, n, grey.data());
  const size_t hw = all.H * all.W;
  d.images.resize(n * d.C * hw);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < d.C; ++c)
      for (size_t p = 0; p < hw; ++p)
        d.images[(i * d.C + c) * hw + p] = grey[i * hw + p] * static_cast<float>(1.0 - 0.3 * static_cast<double>(c));
  d.labels.assign(all.labels.begin(), all.labels.begin() + static_cast<std::ptrdiff_t>(n));
  d.num_classes = 10;
  d.source = "first digits";
  return {d, d, "first-digits", {}};
}

// The linear net (flatten, dense C*28*28 -> 10) with a recipe.
json linear_spec(const json& recipe, size_t channels = 1) {
  return {{"name", "recipe-fields-linear"},
          {"imageH", 28},
          {"imageW", 28},
          {"channels", channels},
          {"layers", json::array({{{"type", "flatten"}},
                                  {{"type", "dense"},
                                   {"fanIn", 784 * channels},
                                   {"fanOut", 10},
                                   {"activation", "identity"}}})},
          {"recipe", recipe}};
}

// ---- the run, through the recipe -------------------------------------------------------------------------------

// The plumbing mutant of the bite tests: applied to every recipe before the run gets it (the check's expectation
// still comes from the recipe it asked for). Empty: the run gets the recipe as asked.
std::function<void(json&)>& recipe_mutant() {
  static std::function<void(json&)> m;
  return m;
}

// The TrainConfig of `veridl train --spec` with no flags (tools/veridl/train_cmd.cpp), made quiet and
// deterministic: the recipe's fields, the optimizer's through train::optim_config.
train::TrainConfig config_from_recipe(const net::Recipe& r) {
  train::TrainConfig c;
  c.epochs = r.epochs;
  c.batch = r.batch;
  c.optim = train::optim_config(r);
  c.augment.pad = r.augment_crop_pad;
  c.augment.flip = r.augment_flip;
  c.augment.resized_crop = r.augment_resized_crop;
  c.normalize = train::recipe_normalize(r);
  train::recipe_jitter(r, c.augment);
  c.dataset = r.dataset;
  c.label_smoothing = r.label_smoothing;
  c.seed = kSeed;
  c.eval_every = 0;
  c.checkpoint_every = 0;
  c.threads = 2;
  c.diverge_factor = 0;
  static FILE* null = std::fopen("/dev/null", "w");
  c.log = null;
  return c;
}

struct Run {
  net::NetSpec spec;  // as asked (the expectation's)
  train::TrainConfig cfg;  // as run (the mutant's, if any)
  train::TrainResult res;
  std::vector<float> init;  // the parameters before step 1
};

// Trains the linear net with `recipe` on `d`; stop_after > 0 stops after that step (it must not be the last).
Run run(const json& recipe, const data::Split& d, size_t stop_after = 0) {
  const size_t channels = d.train.C;
  json delivered = recipe;
  if (recipe_mutant()) recipe_mutant()(delivered);
  Run r;
  r.spec = net::parse_netspec(linear_spec(recipe, channels).dump(), "<recipe fields: asked>");
  const net::NetSpec run_spec = net::parse_netspec(linear_spec(delivered, channels).dump(), "<recipe fields: run>");
  r.cfg = config_from_recipe(*run_spec.recipe);
  if (stop_after > 0) {
    if (stop_after >= r.cfg.epochs * (d.train.n / r.cfg.batch)) throw std::logic_error("stop_after is the last step");
    r.cfg.on_step = [stop_after](size_t s) {
      if (s == stop_after) train::request_stop();
    };
  }
  r.res = train::train(run_spec, r.cfg, d);
  const net::Plan plan = net::compile(r.spec, 1);
  r.init.resize(plan.n_params);
  train::he_init(plan, kSeed, r.init.data());
  return r;
}

// ---- the test's own references ---------------------------------------------------------------------------------

// The data order of epoch `epoch` (0-based): the identity shuffled by the documented Fisher-Yates of every epoch
// e <= epoch, seeded with e + seed (trainer.hpp; the original's lean_f32_shuffle), written out here.
std::vector<uint32_t> data_order(size_t n, size_t epoch) {
  std::vector<uint32_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<uint32_t>(i);
  for (size_t e = 0; e <= epoch; ++e) {
    uint64_t rng = (e + kSeed) ^ 0x5DEECE66Dull;
    for (size_t i = n; i-- > 1;) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(idx[i], idx[static_cast<size_t>((rng >> 16) % (i + 1))]);
    }
  }
  return idx;
}

struct Batch {
  size_t B = 0, C = 1, H = 28, W = 28;
  std::vector<float> x;
  std::vector<int32_t> y;
};

// Batch k of epoch `epoch` as the data order gathers it, before augmentation.
Batch batch_of(const data::Dataset& ds, size_t batch, size_t epoch, size_t k) {
  const std::vector<uint32_t> order = data_order(ds.n, epoch);
  const std::vector<float> all = ds.floats();
  Batch b{batch, ds.C, ds.H, ds.W, {}, {}};
  const size_t D = ds.image_size();
  for (size_t i = 0; i < batch; ++i) {
    const size_t src = order[k * batch + i];
    b.x.insert(b.x.end(), all.begin() + static_cast<std::ptrdiff_t>(src * D),
               all.begin() + static_cast<std::ptrdiff_t>((src + 1) * D));
    b.y.push_back(ds.labels[src]);
  }
  return b;
}

// Random crop with zero padding and horizontal flip, written from augment.hpp's description: image i's draws are
// successive xorshift64 steps (s ^= s << 13, s >> 7, s << 17) of a state starting at batch_seed + 1, three per
// image whatever is on: dy, dx (each mod 2 pad + 1), flip (the low bit). Output (h, w) is input
// (h + dy - pad, w + dx - pad), zero outside; then the row is reversed if flipped. The trainer's batch seed is
// epoch * 10000 + batch index.
void augment_here(Batch& b, size_t pad, bool flip, uint64_t batch_seed) {
  uint64_t s = batch_seed + 1;
  auto next = [&s] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  const size_t img = b.C * b.H * b.W;
  for (size_t i = 0; i < b.B; ++i) {
    const size_t dy = next() % (2 * pad + 1), dx = next() % (2 * pad + 1);
    const bool flipped = (next() & 1) != 0;
    const std::vector<float> in(b.x.begin() + static_cast<std::ptrdiff_t>(i * img),
                                b.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * img));
    for (size_t c = 0; c < b.C; ++c)
      for (size_t h = 0; h < b.H; ++h)
        for (size_t w = 0; w < b.W; ++w) {
          const long sh = static_cast<long>(h + dy) - static_cast<long>(pad);
          const long sw0 = static_cast<long>(w + dx) - static_cast<long>(pad);
          const float v = sh < 0 || sh >= static_cast<long>(b.H) || sw0 < 0 || sw0 >= static_cast<long>(b.W)
                              ? 0.0f
                              : in[(c * b.H + static_cast<size_t>(sh)) * b.W + static_cast<size_t>(sw0)];
          const size_t ow = flip && flipped ? b.W - 1 - w : w;
          b.x[i * img + (c * b.H + h) * b.W + ow] = v;
        }
  }
}

// torchvision's ImageNet normalisation: (x - mean[c]) / std[c], the constants written here.
void normalize_here(Batch& b, std::vector<float> mean = {0.485f, 0.456f, 0.406f},
                    std::vector<float> sd = {0.229f, 0.224f, 0.225f}) {
  const size_t hw = b.H * b.W;
  for (size_t i = 0; i < b.B; ++i)
    for (size_t c = 0; c < 3; ++c)
      for (size_t p = 0; p < hw; ++p) {
        float& v = b.x[(i * 3 + c) * hw + p];
        v = static_cast<float>((static_cast<double>(v) - mean[c]) / sd[c]);
      }
}

// The mean cross-entropy of the linear net at `params` on the batch, with targets (1 - ls) onehot + ls / K, all in
// double: z = x W + b with W [fanIn, fanOut] and b [fanOut] (dense.hpp's layout).
double loss_here(const net::NetSpec& spec, const std::vector<float>& params, const Batch& b, double ls) {
  const net::Plan plan = net::compile(spec, 1);
  if (plan.params.size() != 2) throw std::logic_error("loss_here: not the linear net");
  const auto& Wt = plan.params[0].shape.size() == 2 ? plan.params[0] : plan.params[1];
  const auto& bt = plan.params[0].shape.size() == 2 ? plan.params[1] : plan.params[0];
  const size_t I = static_cast<size_t>(Wt.shape[0]), K = static_cast<size_t>(Wt.shape[1]);
  double total = 0.0;
  for (size_t n = 0; n < b.B; ++n) {
    std::vector<double> z(K);
    for (size_t k = 0; k < K; ++k) {
      double acc = params[bt.offset + k];
      for (size_t i = 0; i < I; ++i) acc += static_cast<double>(b.x[n * I + i]) * params[Wt.offset + i * K + k];
      z[k] = acc;
    }
    const double m = *std::max_element(z.begin(), z.end());
    double sum = 0.0;
    for (double v : z) sum += std::exp(v - m);
    for (size_t k = 0; k < K; ++k) {
      const double t = (static_cast<int32_t>(k) == b.y[n] ? 1.0 - ls : 0.0) + ls / static_cast<double>(K);
      total -= t * (z[k] - m - std::log(sum));
    }
  }
  return total / static_cast<double>(b.B);
}

// The gradient of the mean loss at `params` on the batch, from the executor's backward (what the contracts prove).
std::vector<double> gradient(const net::NetSpec& spec, const std::vector<float>& params, const Batch& b) {
  const net::Plan plan = net::compile(spec, b.B);
  net::Executor<float, net::FastKernels> ex(plan);
  ex.params() = params;
  veridl::Decisions D;
  ex.forward_loss(b.x.data(), b.y.data(), b.B, D, net::Mode::Train);
  ex.backward(1.0f);
  return {ex.grads().begin(), ex.grads().end()};
}

// 1 for the elements of weight tensors (rank >= 2: decayed), 0 for biases.
std::vector<double> weight_mask(const net::NetSpec& spec) {
  const net::Plan plan = net::compile(spec, 1);
  std::vector<double> m(plan.n_params, 0.0);
  for (const auto& t : plan.params)
    if (t.shape.size() >= 2) std::fill_n(m.begin() + static_cast<std::ptrdiff_t>(t.offset), t.size, 1.0);
  return m;
}

// "" if after - before equals want within tol of the largest |want| (which must not be 0), else what differs.
std::string step_differs(const std::vector<float>& before, const std::vector<float>& after,
                         const std::vector<double>& want, const std::string& what, double tol = 1e-4) {
  double scale = 0.0, worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    const double e = std::fabs((static_cast<double>(after[i]) - before[i]) - want[i]);
    if (e > worst) worst = e, at = i;
  }
  if (!(scale > 0)) return what + ": the expected step is 0 everywhere (the check has no signal)";
  if (worst <= tol * scale) return "";
  return fmt::format("{}: the step is off from the formula by {:.3g} of its largest element (at {}: got {:.6g}, want {:.6g})",
                     what, worst / scale, at, static_cast<double>(after[at]) - before[at], want[at]);
}

std::string loss_differs(double got, double want, const std::string& what) {
  if (std::fabs(got - want) <= 1e-5 * (1.0 + std::fabs(want))) return "";
  return fmt::format("{}: step 1's loss is {:.9g}, the test's cross-entropy is {:.9g}", what, got, want);
}

void add(Failures& f, const std::string& m) {
  if (!m.empty()) f.push_back(m);
}

// Adam's bias-corrected first step direction: mhat / (sqrt(vhat) + eps) = g / (|g| + eps).
double adam_direction(double g) { return g / (std::fabs(g) + 1e-8); }

// ---- one check per recipe key ------------------------------------------------------------------------------------

// optimizer: one step of each, lr 0.05 and weight decay 0.1 (which tells adam from adamw):
//   sgd    -lr (g + wd w)    adam   -lr u(g + wd w)    adamw   q = w - lr u(g), then q - lr wd q
// with u(g) = g / (|g| + eps) (Adam's first, bias-corrected step) and the decay on weights only.
Failures check_optimizer() {
  Failures f;
  const data::Split d = digits(64);
  const double lr = 0.05, wd = 0.1;
  for (const char* kind : {"sgd", "adam", "adamw"}) {
    const Run r = run({{"optimizer", kind}, {"lr", lr}, {"weightDecay", wd}, {"batch", 64}, {"epochs", 1}}, d);
    const std::vector<double> g = gradient(r.spec, r.init, batch_of(d.train, 64, 0, 0)), mask = weight_mask(r.spec);
    std::vector<double> want(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      const double w = r.init[i], decay = wd * mask[i];
      if (std::string(kind) == "sgd") {
        want[i] = -lr * (g[i] + decay * w);
      } else if (std::string(kind) == "adam") {
        want[i] = -lr * adam_direction(g[i] + decay * w);
      } else {
        const double q = w - lr * adam_direction(g[i]);
        want[i] = q - lr * decay * q - w;
      }
    }
    add(f, step_differs(r.init, r.res.model.params, want, fmt::format("optimizer {}", kind)));
  }
  return f;
}

// lr: one SGD step at lr 0.05 and at lr 0.2 is -lr g.
Failures check_lr() {
  Failures f;
  const data::Split d = digits(64);
  for (double lr : {0.05, 0.2}) {
    const Run r = run({{"optimizer", "sgd"}, {"lr", lr}, {"batch", 64}, {"epochs", 1}}, d);
    std::vector<double> want = gradient(r.spec, r.init, batch_of(d.train, 64, 0, 0));
    for (double& v : want) v *= -lr;
    add(f, step_differs(r.init, r.res.model.params, want, fmt::format("lr {}", lr)));
  }
  return f;
}

// batch: 200 digits in batches of 64 are 3 batches an epoch (the tail of 8 dropped), and step 1's loss is the
// cross-entropy of the initial net on the first 64 examples of the data order.
Failures check_batch() {
  Failures f;
  const data::Split d = digits(200);
  const Run r = run({{"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
  if (r.res.batches_per_epoch != 3 || r.res.steps != 3 || r.res.step_loss.size() != 3)
    f.push_back(fmt::format("batch 64 of 200 digits: {} batches an epoch and {} steps, not 3 and 3",
                            r.res.batches_per_epoch, r.res.steps));
  if (r.res.step_loss.empty()) return f;
  add(f, loss_differs(r.res.step_loss[0], loss_here(r.spec, r.init, batch_of(d.train, 64, 0, 0), 0.0),
                      "batch 64: the first 64 examples of the data order"));
  return f;
}

// epochs: 3 epochs of one batch are 3 steps and 3 epoch losses, and the last step's loss is that of epoch 3's
// data order at the parameters after step 2 (plain SGD: w - lr g1 - lr g2, computed here).
Failures check_epochs() {
  Failures f;
  const data::Split d = digits(64);
  const Run r = run({{"batch", 64}, {"epochs", 3}, {"lr", 0.1}}, d);
  if (r.res.steps != 3 || r.res.step_loss.size() != 3 || r.res.epoch_loss.size() != 3)
    return {fmt::format("epochs 3 of one batch: {} steps, {} step losses, {} epoch losses, not 3 each", r.res.steps,
                        r.res.step_loss.size(), r.res.epoch_loss.size())};
  std::vector<float> p = r.init;
  for (size_t e = 0; e < 2; ++e) {
    const std::vector<double> g = gradient(r.spec, p, batch_of(d.train, 64, e, 0));
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>(p[i] - 0.1 * g[i]);
  }
  add(f, loss_differs(r.res.step_loss[2], loss_here(r.spec, p, batch_of(d.train, 64, 2, 0), 0.0),
                      "epochs 3: step 3 (epoch 3's order, after two SGD steps)"));
  return f;
}

// momentum 0.9: two SGD steps (two epochs of one batch) are w1 = w0 - lr g1, w2 = w1 - lr (mu g1 + g2), with g2
// the gradient at w1 on epoch 2's order.
Failures check_momentum() {
  const data::Split d = digits(64);
  const double lr = 0.1, mu = 0.9;
  const Run r = run({{"optimizer", "sgd"}, {"lr", lr}, {"momentum", mu}, {"batch", 64}, {"epochs", 2}}, d);
  const std::vector<double> g1 = gradient(r.spec, r.init, batch_of(d.train, 64, 0, 0));
  std::vector<float> w1(r.init.size());
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<float>(r.init[i] - lr * g1[i]);
  const std::vector<double> g2 = gradient(r.spec, w1, batch_of(d.train, 64, 1, 0));
  std::vector<double> want(g1.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = -lr * g1[i] - lr * (mu * g1[i] + g2[i]);
  Failures f;
  add(f, step_differs(r.init, r.res.model.params, want, "momentum 0.9, two steps"));
  return f;
}

// labelSmoothing 0.1: step 1's loss is the smoothed cross-entropy (targets 0.9 onehot + 0.01) of the initial net on
// the first batch (Plumbing.TheRunsLabelSmoothingReachesTheTrainingLoss re-injects the plan-level mutant).
Failures check_label_smoothing() {
  Failures f;
  const data::Split d = digits(64);
  const Run r = run({{"labelSmoothing", 0.1}, {"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
  add(f, loss_differs(r.res.step_loss.at(0), loss_here(r.spec, r.init, batch_of(d.train, 64, 0, 0), 0.1),
                      "labelSmoothing 0.1"));
  return f;
}

// weightDecay 0.05: one SGD step is -lr (g + wd w) on weights, -lr g on biases.
Failures check_weight_decay() {
  const data::Split d = digits(64);
  const double lr = 0.1, wd = 0.05;
  const Run r = run({{"optimizer", "sgd"}, {"lr", lr}, {"weightDecay", wd}, {"batch", 64}, {"epochs", 1}}, d);
  const std::vector<double> g = gradient(r.spec, r.init, batch_of(d.train, 64, 0, 0)), mask = weight_mask(r.spec);
  std::vector<double> want(g.size());
  for (size_t i = 0; i < g.size(); ++i) want[i] = -lr * (g[i] + wd * mask[i] * r.init[i]);
  Failures f;
  add(f, step_differs(r.init, r.res.model.params, want, "weightDecay 0.05"));
  return f;
}

// The schedule written here (optimizer.hpp): warmup W = warmup_epochs x steps an epoch, T = epochs x steps;
// lr_s = base s / W for s <= W, else base (1 + cos(pi (s - W) / (T - W))) / 2, s 1-based.
double schedule_here(double base, double s, double W, double T) {
  return W > 0 && s <= W ? base * s / W : base * 0.5 * (1.0 + std::cos(std::numbers::pi * (s - W) / (T - W)));
}

// The lrs a run's steps used against the schedule, and its first step against -lr_1 g (a second run, stopped
// after step 1).
Failures check_schedule(const json& recipe, double base, double W, double T, const std::string& what) {
  Failures f;
  const data::Split d = digits(64);
  const Run r = run(recipe, d);
  if (r.res.step_lr.size() != static_cast<size_t>(T))
    return {fmt::format("{}: {} step lrs recorded, not {}", what, r.res.step_lr.size(), T)};
  for (size_t i = 0; i < r.res.step_lr.size(); ++i) {
    const double want = schedule_here(base, static_cast<double>(i + 1), W, T);
    if (!(std::fabs(r.res.step_lr[i] - want) <= 1e-12))
      f.push_back(fmt::format("{}: step {} used lr {}, the schedule says {}", what, i + 1, r.res.step_lr[i], want));
  }
  const Run one = run(recipe, d, 1);
  std::vector<double> want = gradient(one.spec, one.init, batch_of(d.train, 64, 0, 0));
  for (double& v : want) v *= -schedule_here(base, 1.0, W, T);
  add(f, step_differs(one.init, one.res.model.params, want, what + ", step 1 at the schedule's lr"));
  return f;
}

// cosine: 5 epochs of one batch, no warmup: lr_s = 0.1 (1 + cos(pi s / 5)) / 2.
Failures check_cosine() {
  return check_schedule({{"cosine", true}, {"lr", 0.1}, {"batch", 64}, {"epochs", 5}}, 0.1, 0.0, 5.0, "cosine");
}

// warmupEpochs 2 (with cosine): 5 epochs of one batch: lr 0.05, 0.1, then the cosine over the last 3.
Failures check_warmup() {
  return check_schedule({{"cosine", true}, {"warmupEpochs", 2}, {"lr", 0.1}, {"batch", 64}, {"epochs", 5}}, 0.1, 2.0,
                        5.0, "warmupEpochs 2");
}

// clipNorm: with c = ||g|| / 4 (||g|| summed here in double) one SGD step is -lr g c / (||g|| + 1e-6); with
// c = 4 ||g|| it is -lr g (no clipping).
Failures check_clip_norm() {
  Failures f;
  const data::Split d = digits(64);
  const double lr = 0.1;
  const json base = {{"optimizer", "sgd"}, {"lr", lr}, {"batch", 64}, {"epochs", 1}};
  const Run plain = run(base, d);
  const std::vector<double> g = gradient(plain.spec, plain.init, batch_of(d.train, 64, 0, 0));
  double ss = 0.0;
  for (double v : g) ss += v * v;
  const double norm = std::sqrt(ss);
  for (double c : {norm / 4, norm * 4}) {
    json recipe = base;
    recipe["clipNorm"] = c;
    const Run r = run(recipe, d);
    const double scale = std::min(1.0, c / (norm + 1e-6));
    std::vector<double> want(g.size());
    for (size_t i = 0; i < g.size(); ++i) want[i] = -lr * g[i] * scale;
    add(f, step_differs(r.init, r.res.model.params, want, fmt::format("clipNorm {:.4g} (||g|| {:.4g})", c, norm)));
  }
  return f;
}

// adamwDecay: one AdamW step, lr 0.1, wd 0.5 (u = g / (|g| + eps)):
//   after   q = w - lr u, then q (1 - lr wd)      before   w (1 - lr wd) - lr u
// on weights (the two differ by lr^2 wd u); biases w - lr u in both.
Failures check_adamw_decay() {
  Failures f;
  const data::Split d = digits(64);
  const double lr = 0.1, wd = 0.5;
  for (const char* order : {"after", "before"}) {
    const Run r = run({{"optimizer", "adamw"}, {"adamwDecay", order}, {"lr", lr}, {"weightDecay", wd}, {"batch", 64},
                       {"epochs", 1}},
                      d);
    const std::vector<double> g = gradient(r.spec, r.init, batch_of(d.train, 64, 0, 0)), mask = weight_mask(r.spec);
    std::vector<double> want(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      const double w = r.init[i], u = adam_direction(g[i]), k = 1.0 - lr * wd * mask[i];
      want[i] = (std::string(order) == "after" ? (w - lr * u) * k : w * k - lr * u) - w;
    }
    add(f, step_differs(r.init, r.res.model.params, want, fmt::format("adamwDecay {}", order)));
  }
  return f;
}

// The augmentation checks: step 1's loss with the recipe is the cross-entropy of the initial net on the batch the
// test gathered and augmented itself (batch seed 0), and differs from the plain batch's.
Failures check_augment(const json& extra, size_t pad, bool flip, const std::string& what) {
  Failures f;
  const data::Split d = digits(64);
  json recipe = {{"batch", 64}, {"epochs", 1}, {"lr", 0.1}};
  recipe.update(extra);
  const Run r = run(recipe, d);
  Batch b = batch_of(d.train, 64, 0, 0);
  const double plain = loss_here(r.spec, r.init, b, 0.0);
  augment_here(b, pad, flip, 0);
  const double want = loss_here(r.spec, r.init, b, 0.0);
  if (!(std::fabs(want - plain) > 1e-4)) f.push_back(what + ": the augmented batch's loss is the plain one's (no signal)");
  add(f, loss_differs(r.res.step_loss.at(0), want, what + ", on the test's augmented batch"));
  return f;
}

Failures check_crop_pad() { return check_augment({{"augmentCropPad", 3}}, 3, false, "augmentCropPad 3"); }
Failures check_flip() { return check_augment({{"augmentFlip", true}}, 0, true, "augmentFlip"); }

// augmentResizedCrop: the crops are torchvision's RandomResizedCrop resampled by the dataset's triangle filter,
// which this test does not reimplement; it shows only that with the field on step 1's loss differs from the plain
// batch's, and with it off equals it.
Failures check_resized_crop() {
  Failures f;
  const data::Split d = digits(64);
  for (bool on : {true, false}) {
    const Run r = run({{"augmentResizedCrop", on}, {"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
    const double plain = loss_here(r.spec, r.init, batch_of(d.train, 64, 0, 0), 0.0);
    const double got = r.res.step_loss.at(0);
    if (on && !(std::fabs(got - plain) > 1e-4))
      f.push_back(fmt::format("augmentResizedCrop true: step 1's loss {:.9g} is the plain batch's", got));
    if (!on) add(f, loss_differs(got, plain, "augmentResizedCrop false: the plain batch"));
  }
  return f;
}

// normalize: on 3-channel digits, step 1's loss with "imagenet" is the cross-entropy on the batch normalised here
// ((x - mean) / std per channel, torchvision's constants), and with "none" on the plain batch.
// Explicit per-channel lists ({"mean": [...], "std": [...]}) the same way, with the lists' values.
Failures check_normalize() {
  Failures f;
  const data::Split d = digits(64, true);
  const json custom = {{"mean", {0.2, 0.3, 0.1}}, {"std", {0.5, 0.25, 0.4}}};
  for (const json& n : {json("imagenet"), json("none"), custom}) {
    const Run r = run({{"normalize", n}, {"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
    Batch b = batch_of(d.train, 64, 0, 0);
    if (n == "imagenet") normalize_here(b);
    if (n.is_object()) normalize_here(b, {0.2f, 0.3f, 0.1f}, {0.5f, 0.25f, 0.4f});
    add(f, loss_differs(r.res.step_loss.at(0), loss_here(r.spec, r.init, b, 0.0), fmt::format("normalize {}", n.dump())));
  }
  return f;
}

// colorJitter*: on 3-channel digits, step 1's loss is the cross-entropy on the batch jittered here: the factors and
// order drawn by data::draw_jitter from the documented seed (its stream is checked against the test's own xorshift in
// tests/test_augment.cpp), the adjustments computed here in double from the documented formulas (brightness f x,
// contrast f x + (1 - f) mean(grey), saturation f x + (1 - f) grey, each clamped to [0, 1]). The other two at 0.
Failures check_jitter(const char* key, int which) {
  Failures f;
  const data::Split d = digits(64, true);
  for (double x : {0.5, 0.0}) {
    const Run r = run({{key, x}, {"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
    Batch b = batch_of(d.train, 64, 0, 0);
    data::AugmentConfig a;
    (which == 0 ? a.brightness : which == 1 ? a.contrast : a.saturation) = x;
    const size_t hw = b.H * b.W;
    for (size_t i = 0; i < b.B && x > 0; ++i) {
      const data::JitterDraw dr = data::draw_jitter(a, data::jitter_seed(0, i));  // epoch 0, batch 0: seed 0
      const double fac = which == 0 ? dr.brightness : which == 1 ? dr.contrast : dr.saturation;
      float* img = b.x.data() + i * 3 * hw;
      auto grey = [&](size_t p) { return 0.2989 * img[p] + 0.587 * img[hw + p] + 0.114 * img[2 * hw + p]; };
      auto clamp01 = [](double v) { return static_cast<float>(std::min(1.0, std::max(0.0, v))); };
      if (which == 1) {
        double m = 0;
        for (size_t p = 0; p < hw; ++p) m += grey(p);
        m /= static_cast<double>(hw);
        for (size_t k = 0; k < 3 * hw; ++k) img[k] = clamp01(fac * img[k] + (1 - fac) * m);
      } else {
        for (size_t p = 0; p < hw; ++p) {
          const double g = grey(p);
          for (size_t c = 0; c < 3; ++c) {
            float& v = img[c * hw + p];
            v = clamp01(which == 0 ? fac * v : fac * v + (1 - fac) * g);
          }
        }
      }
    }
    // float vs double arithmetic in the adjustment: a looser bound than the other checks' rounding.
    const double got = r.res.step_loss.at(0), want = loss_here(r.spec, r.init, b, 0.0);
    if (!(std::fabs(got - want) <= 1e-4 * std::max(1.0, std::fabs(want))))
      f.push_back(fmt::format("{} {}: step 1's loss {:.9g}, the batch jittered here gives {:.9g}", key, x, got, want));
    if (x > 0) {
      const double plain = loss_here(r.spec, r.init, batch_of(d.train, 64, 0, 0), 0.0);
      if (!(std::fabs(got - plain) > 1e-3)) f.push_back(fmt::format("{} {}: the loss is the plain batch's", key, x));
    }
  }
  return f;
}
Failures check_brightness() { return check_jitter("colorJitterBrightness", 0); }
Failures check_contrast() { return check_jitter("colorJitterContrast", 1); }
Failures check_saturation() { return check_jitter("colorJitterSaturation", 2); }

// dataset: the run trains on data of the named dataset ("first-digits", the name of these digits) and refuses data
// of another name, before any step.
Failures check_dataset() {
  Failures f;
  const data::Split d = digits(64);
  try {
    run({{"dataset", "first-digits"}, {"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
  } catch (const std::exception& e) {
    f.push_back(std::string("dataset first-digits: refused its own data: ") + e.what());
  }
  try {
    run({{"dataset", "fashion-mnist"}, {"batch", 64}, {"epochs", 1}, {"lr", 0.1}}, d);
    f.push_back("dataset fashion-mnist: trained on 'first-digits'");
  } catch (const veridl::Error& e) {
    if (std::string(e.what()).find("is not the dataset") == std::string::npos) f.push_back(std::string("dataset fashion-mnist: ") + e.what());
  }
  return f;
}

// ---- the table ---------------------------------------------------------------------------------------------------

struct FieldCheck {
  const char* key;       // the recipe's JSON key
  Failures (*check)();   // passes when the key reaches the step as its math says
  json (*wrong)(const json& asked);  // a wrong value plumbing could deliver instead of the asked one
  // The TrainConfig field(s) the key sets, printed (RecipeFieldsCli compares the command line's with ours).
  std::string (*in_config)(const train::TrainConfig&);
};

// gtest names a failing parameter by this (not by its bytes).
void PrintTo(const FieldCheck& c, std::ostream* os) { *os << c.key; }

const std::vector<FieldCheck>& fields() {
  static const std::vector<FieldCheck> t = {
      {"optimizer", check_optimizer,
       [](const json& v) -> json { return v == "sgd" ? "adam" : v == "adam" ? "adamw" : "sgd"; },
       [](const train::TrainConfig& c) { return c.optim.kind; }},
      {"lr", check_lr, [](const json& v) -> json { return 2 * v.get<double>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.optim.lr); }},
      {"batch", check_batch, [](const json& v) -> json { return v.get<size_t>() / 2; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.batch); }},
      {"epochs", check_epochs, [](const json& v) -> json { return v.get<size_t>() + 1; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.epochs); }},
      {"momentum", check_momentum, [](const json& v) -> json { return v.get<double>() / 2; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.optim.momentum); }},
      {"labelSmoothing", check_label_smoothing, [](const json& v) -> json { return 2 * v.get<double>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.label_smoothing); }},
      {"weightDecay", check_weight_decay, [](const json& v) -> json { return 2 * v.get<double>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.optim.weight_decay); }},
      {"cosine", check_cosine, [](const json& v) -> json { return !v.get<bool>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.optim.cosine); }},
      {"warmupEpochs", check_warmup, [](const json& v) -> json { return v.get<double>() + 1; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.optim.warmup_epochs); }},
      {"clipNorm", check_clip_norm, [](const json& v) -> json { return 2 * v.get<double>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.optim.clip_norm); }},
      {"adamwDecay", check_adamw_decay, [](const json& v) -> json { return v == "after" ? "before" : "after"; },
       [](const train::TrainConfig& c) { return c.optim.adamw_decay; }},
      {"augmentCropPad", check_crop_pad, [](const json& v) -> json { return v.get<size_t>() + 1; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.augment.pad); }},
      {"augmentFlip", check_flip, [](const json& v) -> json { return !v.get<bool>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.augment.flip); }},
      {"augmentResizedCrop", check_resized_crop, [](const json& v) -> json { return !v.get<bool>(); },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.augment.resized_crop); }},
      {"normalize", check_normalize, [](const json& v) -> json { return v == "none" ? "imagenet" : "none"; },
       [](const train::TrainConfig& c) { return std::string(data::to_string(c.normalize)); }},
      {"colorJitterBrightness", check_brightness, [](const json& v) -> json { return v.get<double>() / 2; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.augment.brightness); }},
      {"colorJitterContrast", check_contrast, [](const json& v) -> json { return v.get<double>() / 2; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.augment.contrast); }},
      {"colorJitterSaturation", check_saturation, [](const json& v) -> json { return v.get<double>() / 2; },
       [](const train::TrainConfig& c) { return fmt::format("{}", c.augment.saturation); }},
      {"dataset", check_dataset, [](const json& v) -> json { return v == "first-digits" ? "cifar10" : "first-digits"; },
       [](const train::TrainConfig& c) { return c.dataset; }},
  };
  return t;
}

// The keys the recipe parser accepts, from its own message for an unknown key ("... (expected one of: a, b)").
std::set<std::string> parser_keys() {
  const std::string msg = veridl::testutil::error_of([] {
    net::parse_netspec(linear_spec({{"notARecipeKey", 1}}).dump(), "<recipe keys>");
  });
  const std::string head = "expected one of: ";
  const size_t p = msg.find(head), e = msg.rfind(')');
  if (msg.find("notARecipeKey") == std::string::npos || p == std::string::npos || e == std::string::npos || e < p) {
    ADD_FAILURE() << "the parser's message for an unknown recipe key does not list the accepted keys: " << msg;
    return {};
  }
  std::set<std::string> keys;
  const std::string list = msg.substr(p + head.size(), e - p - head.size());
  for (size_t s = 0; s <= list.size();) {
    const size_t c = std::min(list.find(", ", s), list.size());
    keys.insert(list.substr(s, c - s));
    s = c + 2;
  }
  return keys;
}

TEST(RecipeFields, EveryRecipeKeyHasAStepCheck) {
  const std::set<std::string> accepted = parser_keys();
  EXPECT_GE(accepted.size(), 15u) << "the parser's key list looks truncated";
  std::set<std::string> table;
  for (const FieldCheck& c : fields()) EXPECT_TRUE(table.insert(c.key).second) << c.key << " is in the table twice";
  for (const std::string& k : accepted)
    EXPECT_TRUE(table.count(k)) << "the recipe accepts '" << k
                                << "' but tests/test_recipe_fields.cpp has no check that it reaches the step";
  for (const std::string& k : table) EXPECT_TRUE(accepted.count(k)) << "the table checks '" << k << "', which the recipe does not accept";
}

// The check passes with the recipe as asked, and fails when the run gets the recipe without the key (its default)
// or with the key's wrong value.
class StepCheck : public ::testing::TestWithParam<FieldCheck> {};

TEST_P(StepCheck, PassesAndBites) {
  const FieldCheck& fc = GetParam();
  for (const std::string& m : fc.check()) ADD_FAILURE() << fc.key << ": " << m;
  struct Mutant {
    std::string name;
    std::function<void(json&)> apply;
  };
  const std::string key = fc.key;
  const std::vector<Mutant> mutants = {
      {"dropped", [key](json& r) { r.erase(key); }},
      {"wrong", [key, &fc](json& r) {
         if (r.contains(key)) r[key] = fc.wrong(r[key]);
       }}};
  for (const Mutant& m : mutants) {
    recipe_mutant() = m.apply;
    Failures caught;
    try {
      caught = fc.check();
    } catch (const std::exception& e) {
      caught = {std::string("threw: ") + e.what()};
    }
    recipe_mutant() = nullptr;
    EXPECT_FALSE(caught.empty()) << fc.key << " " << m.name << " in the run's recipe: the check still passes";
    if (!caught.empty()) std::printf("  caught (%s %s): %s\n", fc.key, m.name.c_str(), caught.front().c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(RecipeFields, StepCheck, ::testing::ValuesIn(fields()),
                         [](const ::testing::TestParamInfo<FieldCheck>& i) { return std::string(i.param.key); });

// The checks above build the TrainConfig from the recipe as config_from_recipe says `veridl train` does. Here the
// command line itself trains a spec whose recipe sets every key to a value other than its default (40 CIFAR-10-format
// images written here, so that "imagenet" normalisation applies), and the config it
// saved in the checkpoint must equal config_from_recipe's, key by key; its summary's step count is epochs x
// (images / batch).
class RecipeFieldsCli : public veridl::testutil::ScratchDirTest {
 protected:
  RecipeFieldsCli() : ScratchDirTest("veridl_recipe_fields_") {}
};

TEST_F(RecipeFieldsCli, TheCommandLineBuildsTheConfigTheseChecksUse) {
  auto write_batch = [&](const std::string& name, size_t n) {
    std::string bytes;
    for (size_t r = 0; r < n; ++r) {
      bytes.push_back(static_cast<char>(r % 10));
      for (size_t p = 0; p < 3072; ++p) bytes.push_back(static_cast<char>((r * 37 + p * 11) % 256));
    }
    veridl::testutil::write_bytes(path(name), bytes);
  };
  write_batch("data_batch_1.bin", 40);
  write_batch("test_batch.bin", 10);
  const json recipe = {{"optimizer", "adamw"},   {"lr", 0.02},          {"batch", 16},
                       {"epochs", 2},            {"momentum", 0.5},     {"labelSmoothing", 0.1},
                       {"weightDecay", 0.01},    {"cosine", true},      {"warmupEpochs", 1},
                       {"clipNorm", 5},          {"adamwDecay", "before"}, {"augmentCropPad", 2},
                       {"augmentFlip", true},    {"augmentResizedCrop", true}, {"normalize", "imagenet"},
                       {"colorJitterBrightness", 0.4}, {"colorJitterContrast", 0.3}, {"colorJitterSaturation", 0.2},
                       {"dataset", "cifar10"}};
  json spec = {{"name", "recipe-fields-cli"},
               {"imageH", 32},
               {"imageW", 32},
               {"channels", 3},
               {"layers", json::array({{{"type", "flatten"}},
                                       {{"type", "dense"}, {"fanIn", 3072}, {"fanOut", 10}, {"activation", "identity"}}})},
               {"recipe", recipe}};
  veridl::testutil::write_bytes(path("spec.json"), spec.dump(2));
  const veridl::testutil::Cmd c = sh("train --spec " + path("spec.json") + " --data " + dir_.string() + " --out " +
                                     path("m.safetensors") + " --summary-json " + path("s.json") +
                                     " --no-progress --threads 2 --data-mismatch-ok");
  ASSERT_EQ(c.status, 0) << c.out;
  const json summary = json::parse(veridl::testutil::read_bytes(path("s.json")));
  EXPECT_EQ(summary.at("steps").get<size_t>(), 4u) << "2 epochs of 40 / 16 = 2 batches";
  EXPECT_EQ(summary.at("batches_per_epoch").get<size_t>(), 2u);
  const train::TrainConfig cli = train::load_resume_state(path("m.safetensors")).cfg;
  const net::NetSpec parsed = net::parse_netspec(spec.dump(), "<cli spec>");
  const train::TrainConfig ours = config_from_recipe(*parsed.recipe), plain = config_from_recipe(net::Recipe{});
  std::set<std::string> covered;
  for (const FieldCheck& fc : fields()) {
    EXPECT_TRUE(recipe.contains(fc.key)) << "the command-line recipe does not set " << fc.key;
    EXPECT_NE(fc.in_config(ours), fc.in_config(plain)) << fc.key << ": the recipe's value is the default (no signal)";
    EXPECT_EQ(fc.in_config(cli), fc.in_config(ours)) << fc.key << ": the command line's config differs from the checks'";
    covered.insert(fc.key);
  }
  for (const auto& [k, v] : recipe.items()) EXPECT_TRUE(covered.count(k)) << k;
}

}  // namespace recipe_fields_test
