// A train step run on an external device: the exported StableHLO train step (export/stablehlo.hpp, with
// ExportOptions::logits) and eval forward, compiled and run by a host runtime that is not this library — IREE, driven
// from Python (python/veridl/iree.py through python/src/module.cpp; `veridl train --device iree:...`, docs/gpu.md).
//
// The device keeps the parameters and the optimizer state between steps (uploaded before the first step and after
// set_model / set_optimizer_state, downloaded when a checkpoint or model() asks). Everything else stays in the
// native trainer's own code: train() gathers, augments and normalises the batch and computes the learning rate; this
// class updates the BatchNorm running statistics from the step's batch statistics with the native BatchNorm's
// update (kernels::batchnorm_update_running, momentum ops::running_stat_momentum(t)), counts the training accuracy
// from the step's logits (first maximum, as TrainStep), and scores evaluation with evaluate_chunks (trainer.hpp),
// the device's eval forward giving the logits (the last chunk padded with zero images, whose rows are ignored).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "veridl/net/plan.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"

namespace veridl::train {

// What the host runtime provides. Tensors cross as the library holds them: the parameters flat in plan order
// (Plan::params gives each tensor's offset and shape), the optimizer state in Optimizer::state() order (each flat,
// n_params values), the running and batch statistics in running_stat_tensors() order.
struct ExternalDevice {
  size_t eval_batch = 0;  // the eval forward's batch: evaluation runs in chunks of it
  // Uploads the parameters and the optimizer state to the device.
  std::function<void(const std::vector<float>& params, const std::vector<std::vector<float>>& state)> load;
  // One train step of the device's parameters and state: x [B, C, H, W], labels [B], lr, the 1-based step t. Returns
  // the mean loss, writes the batch statistics (per BatchNorm layer its batch mean and biased batch variance) and the
  // logits [B, classes].
  std::function<float(const float* x, const int32_t* labels, float lr, size_t t,
                      std::vector<std::vector<float>>& batch_stats, float* logits)>
      step;
  // Downloads the device's parameters and optimizer state.
  std::function<void(std::vector<float>& params, std::vector<std::vector<float>>& state)> fetch;
  // The eval forward of the device's parameters with these running statistics: x [eval_batch, C, H, W] -> logits.
  std::function<void(const std::vector<std::vector<float>>& running, const float* x, float* logits)> forward;
};

class ExternalStep : public StepEngine {
 public:
  // Refuses (one line) what the external step cannot reproduce: dropout / dropPath (the host would have to draw the
  // native decisions), running state of a primitive other than BatchNorm.
  ExternalStep(const net::Plan& plan, const OptimConfig& optim, ExternalDevice device);
  float* input() override { return x_.data(); }
  float step(const float* x, const int32_t* labels, float lr, size_t t) override;
  size_t last_correct() const override { return last_correct_; }
  Model model() override;
  void set_model(const Model& m) override;
  std::vector<std::pair<std::string, const std::vector<float>*>> optimizer_state() override;
  void set_optimizer_state(const std::vector<std::vector<float>>& state) override;
  EvalResult evaluate(const data::Dataset& ds, const data::Normalize& norm) override;

 private:
  void pull();    // device -> host, when the device is newer
  void upload();  // host -> device, when the host is newer
  const net::Plan& plan_;
  ExternalDevice dev_;
  Optimizer opt_;  // holds the host copy of the optimizer state (its names and order); never steps
  Model host_;
  std::vector<std::vector<float>> batch_stats_;
  std::vector<size_t> bn_channels_;  // per BatchNorm node: C (its two statistics are consecutive)
  std::vector<float> x_, logits_, eval_x_, eval_logits_;
  bool device_newer_ = false, host_newer_ = true;
  size_t last_correct_ = 0;
  float prev_lr_ = 0.0f;
};

}  // namespace veridl::train
