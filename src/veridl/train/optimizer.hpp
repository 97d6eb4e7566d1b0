// Optimizers and the learning-rate schedule (book ch. 2-5 recipe; original-system.md §2, §3.2, §9.3).
//
//   sgd    v = mu v + g (+ wd theta on weights, coupled);  theta -= lr v        (mu = 0: plain SGD)
//   adam   g += wd theta on weights (coupled L2, PyTorch's Adam); then Adam
//   adamw  Adam, then theta -= lr wd theta on weights (decoupled, lr-scaled): the decay applies to the value
//          after the Adam step, the original's order. torch.optim.AdamW decays first (theta *= 1 - lr wd,
//          then the Adam step), which differs in the second order of lr (tests/torch_conformance.py's
//          PyTorch side reproduces VeriDL's order with --veridl-conventions); adamw_decay "before" (recipe
//          adamwDecay, --adamw-decay) takes PyTorch's order, with its factor float(1 - lr wd)
//   Adam:  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  bias correction with the 1-based step t;
//          1 - b computed in double and rounded to float once (PyTorch's constants);
//          theta -= lr * mhat / (sqrt(vhat) + eps);      b1 0.9, b2 0.999, eps 1e-8
//          computed as PyTorch does: theta -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), bc = 1 - b^t,
//          with 1 / sqrt(bc2) a multiplier (one square root and one division per element)
// "Weights" are the tensors of rank >= 2 (dense and conv kernels); biases and BatchNorm gamma/beta
// are not decayed. Optional global-norm clipping before the update: g *= min(1, c / (||g||_2 + 1e-6)).
//
// Schedule, per step s (1-based), warmup W = warmup_epochs * steps_per_epoch, T = epochs * steps:
//   no cosine: lr = base (warmup is ignored without cosine, as the original)
//   s <= W:    lr = base * s / W
//   else:      lr = base * 0.5 * (1 + cos(pi * (s - W) / (T - W)))
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"

namespace veridl::train {

struct OptimConfig {
  std::string kind = "sgd";  // sgd | adam | adamw
  double lr = 0.1;
  double momentum = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  bool cosine = false;
  double warmup_epochs = 0.0;
  double clip_norm = 0.0;  // 0 = no clipping
  // adamw only: "after" (the default, the original's: decay the value the Adam step produced) or "before"
  // (torch.optim.AdamW's: theta *= 1 - lr wd, then the Adam step).
  std::string adamw_decay = "after";
};

// Throws veridl::Error naming the option at fault.
void validate(const OptimConfig& c);

// The optimizer and schedule a NetSpec recipe asks for (the command line may then override fields).
OptimConfig optim_config(const net::Recipe& r);

double lr_at(const OptimConfig& c, size_t step, size_t steps_per_epoch, size_t epochs);

// How many n_params-sized state tensors the optimizer keeps (Optimizer::state().size()): 0 for plain SGD, 1 with
// momentum, 2 for Adam and AdamW. For planning memory and checkpoint sizes before anything is allocated.
size_t optimizer_state_tensors(const OptimConfig& c);

class Optimizer {
 public:
  Optimizer(const net::Plan& plan, const OptimConfig& c);
  // One update of params with grads (grads may be scaled in place by clipping); t is the 1-based step.
  // Returns the gradient's global norm (before clipping; 0 when clipping is off and it was not needed).
  double step(float* params, float* grads, float lr, size_t t);

  // Optimizer state for checkpoints: named tensors (empty for plain SGD).
  std::vector<std::pair<std::string, std::vector<float>*>> state();
  const OptimConfig& config() const { return cfg_; }

 private:
  OptimConfig cfg_;
  std::vector<uint8_t> decay_;  // per parameter element: 1 for weights
  std::vector<float> m_, v_;    // Adam moments, or (sgd) m_ = velocity
};

// Global L2 norm, summed in fixed chunks in double: the same bits for any thread count.
double global_norm(const float* g, size_t n);

}  // namespace veridl::train
