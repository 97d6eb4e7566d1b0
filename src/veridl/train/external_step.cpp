#include "veridl/train/external_step.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "veridl/prims/batchNorm/kernel.hpp"
#include "veridl/prims/batchNorm/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/plumbing_fault.hpp"

namespace veridl::train {

ExternalStep::ExternalStep(const net::Plan& plan, const OptimConfig& optim, ExternalDevice device)
    : plan_(plan), dev_(std::move(device)), opt_(plan, optim) {
  for (const auto& n : plan.nodes) {
    if (n.decl.keep_per_example)
      throw Error(fmt::format("{} has a dropout / dropPath layer ('{}'), whose decisions an external device is not given "
                              "yet: train it with the native engine (--device native)",
                              plan.spec.name, n.name));
    if (n.decl.state.empty()) continue;
    if (prims::table()[n.op].name != "batchNorm" || n.decl.state.size() != 2)
      throw Error(fmt::format("{}: layer '{}' ({}) keeps running state that only the native engine updates", plan.spec.name,
                              n.name, prims::table()[n.op].name));
    bn_channels_.push_back(n.decl.state[0].size);
  }
  if (dev_.eval_batch == 0) throw Error("external device: eval_batch must be positive");
  host_.params.assign(plan.n_params, 0.0f);  // train() sets the model (initial_model, or a checkpoint's) before a step
  host_.running = initial_running(plan);
  for (const auto& r : host_.running) batch_stats_.emplace_back(r.size(), 0.0f);
  const size_t D = plan.input_width(), K = plan.num_classes;
  x_.assign(plan.batch * D, 0.0f);
  logits_.assign(plan.batch * K, 0.0f);
  eval_x_.assign(dev_.eval_batch * D, 0.0f);
  eval_logits_.assign(dev_.eval_batch * K, 0.0f);
}

void ExternalStep::pull() {
  if (!device_newer_) return;
  std::vector<std::vector<float>> state;
  for (auto& [name, buf] : opt_.state()) state.push_back(std::move(*buf));
  dev_.fetch(host_.params, state);
  auto mine = opt_.state();
  for (size_t k = 0; k < mine.size(); ++k) *mine[k].second = std::move(state[k]);
  device_newer_ = false;
}

void ExternalStep::upload() {
  if (!host_newer_) return;
  std::vector<std::vector<float>> state;
  for (auto& [name, buf] : opt_.state()) state.push_back(*buf);
  dev_.load(host_.params, state);
  host_newer_ = false;
}

float ExternalStep::step(const float* x, const int32_t* labels, float lr, size_t t) {
  upload();
  // (a test's deliberate mutant gives the device the previous step's lr: util/plumbing_fault.hpp)
  const float given = plumbing_fault() == PlumbingFault::ExternalStaleLr && t > 1 ? prev_lr_ : lr;
  prev_lr_ = lr;
  const float loss = dev_.step(x, labels, given, t, batch_stats_, logits_.data());
  device_newer_ = true;
  // The running statistics, as the native BatchNorm forward updates them (prims/batchNorm/primitive.hpp).
  const double m = ops::running_stat_momentum(t);
  const bool skip = plumbing_fault() == PlumbingFault::ExternalSkipsRunningUpdate;  // (a test's mutant)
  for (size_t b = 0; b < bn_channels_.size() && !skip; ++b)
    kernels::batchnorm_update_running(bn_channels_[b], m, batch_stats_[2 * b].data(), batch_stats_[2 * b + 1].data(),
                                      host_.running[2 * b].data(), host_.running[2 * b + 1].data());
  // The training accuracy: the logits' first maximum, as TrainStep counts it.
  const size_t B = plan_.batch, K = plan_.num_classes;
  last_correct_ = 0;
  for (size_t b = 0; b < B; ++b) {
    const float* z = logits_.data() + b * K;
    last_correct_ += static_cast<int32_t>(std::max_element(z, z + K) - z) == labels[b];  // the first maximum
  }
  return loss;
}

Model ExternalStep::model() {
  pull();
  return host_;
}

void ExternalStep::set_model(const Model& m) {
  pull();  // (the optimizer state stays the device's)
  if (m.params.size() != plan_.n_params || m.running.size() != host_.running.size())
    throw Error("model: parameters or running statistics do not match the network");
  host_ = m;
  host_newer_ = true;
}

std::vector<std::pair<std::string, const std::vector<float>*>> ExternalStep::optimizer_state() {
  pull();
  std::vector<std::pair<std::string, const std::vector<float>*>> r;
  for (auto& [name, buf] : opt_.state()) r.push_back({name, buf});
  return r;
}

void ExternalStep::set_optimizer_state(const std::vector<std::vector<float>>& state) {
  pull();
  auto mine = opt_.state();
  if (mine.size() != state.size()) throw Error("resume: optimizer state does not match the optimizer");
  for (size_t k = 0; k < state.size(); ++k) {
    if (state[k].size() != plan_.n_params) throw Error("resume: optimizer state does not match the network");
    *mine[k].second = state[k];
  }
  host_newer_ = true;
}

EvalResult ExternalStep::evaluate(const data::Dataset& ds, const data::Normalize& norm) {
  if (ds.n > 0 && ds.image_size() != plan_.input_width())
    throw Error(fmt::format("evaluate: the data's images have {} values ({}x{}x{}), the network takes {}", ds.image_size(),
                            ds.C, ds.H, ds.W, plan_.input_width()));
  upload();
  const size_t chunk = dev_.eval_batch, D = plan_.input_width();
  return evaluate_chunks(plan_.num_classes, chunk, eval_x_.data(),
                         [&](size_t n) {
                           std::fill(eval_x_.begin() + static_cast<std::ptrdiff_t>(n * D), eval_x_.end(), 0.0f);
                           dev_.forward(host_.running, eval_x_.data(), eval_logits_.data());
                           return static_cast<const float*>(eval_logits_.data());
                         },
                         ds, norm);
}

}  // namespace veridl::train
