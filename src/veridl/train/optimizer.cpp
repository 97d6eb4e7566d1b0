#include "veridl/train/optimizer.hpp"

#include <fmt/core.h>

#include <cmath>

#include "veridl/prims/optimizer/kernel.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/plumbing_fault.hpp"

namespace veridl::train {

void validate(const OptimConfig& c) {
  if (c.kind != "sgd" && c.kind != "adam" && c.kind != "adamw")
    throw Error("optimizer '" + c.kind + "' is not supported (supported: sgd, adam, adamw)");
  if (!(c.lr > 0) || !std::isfinite(c.lr)) throw Error(fmt::format("lr must be positive, got {}", c.lr));
  if (!(c.momentum >= 0 && c.momentum < 1)) throw Error(fmt::format("momentum must be in [0, 1), got {}", c.momentum));
  if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1))
    throw Error(fmt::format("Adam betas must be in [0, 1), got {} and {}", c.beta1, c.beta2));
  if (!(c.eps > 0)) throw Error(fmt::format("Adam eps must be positive, got {}", c.eps));
  if (!(c.weight_decay >= 0) || !std::isfinite(c.weight_decay))
    throw Error(fmt::format("weight decay must be >= 0, got {}", c.weight_decay));
  if (!(c.warmup_epochs >= 0) || !std::isfinite(c.warmup_epochs))
    throw Error(fmt::format("warmup epochs must be >= 0, got {}", c.warmup_epochs));
  if (!(c.clip_norm >= 0) || !std::isfinite(c.clip_norm))
    throw Error(fmt::format("gradient clip norm must be >= 0, got {}", c.clip_norm));
  if (c.adamw_decay != "after" && c.adamw_decay != "before")
    throw Error("AdamW decay order '" + c.adamw_decay + "' is not supported (supported: after, before)");
  if (c.adamw_decay == "before" && c.kind != "adamw")
    throw Error("AdamW decay order 'before' needs the adamw optimizer, not " + c.kind);
}

OptimConfig optim_config(const net::Recipe& r) {
  OptimConfig o;
  o.kind = r.optimizer;
  o.lr = r.lr;
  o.momentum = r.momentum;
  if (plumbing_fault() != PlumbingFault::RecipeDropsWeightDecay)  // a test's mutant (util/plumbing_fault.hpp)
    o.weight_decay = r.weight_decay;
  o.cosine = r.cosine;
  o.warmup_epochs = r.warmup_epochs;
  o.clip_norm = r.clip_norm;
  o.adamw_decay = r.adamw_decay;
  return o;
}

double lr_at(const OptimConfig& c, size_t step, size_t steps_per_epoch, size_t epochs) {
  if (!c.cosine) return c.lr;
  const double W = c.warmup_epochs * static_cast<double>(steps_per_epoch);
  const double T = static_cast<double>(epochs * steps_per_epoch);
  const double s = static_cast<double>(step);
  if (W > 0 && s <= W) return c.lr * s / W;
  const double prog = T - W <= 0 ? 1.0 : (s - W) / (T - W);
  return c.lr * 0.5 * (1.0 + std::cos(M_PI * prog));
}

double global_norm(const float* g, size_t n) {
  constexpr size_t kChunk = 4096;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  // Reused, so a clipped train step allocates nothing; the team threads write through the pointer (a
  // thread_local named inside the region would be each thread's own).
  thread_local std::vector<double> buf;
  if (buf.size() < chunks) buf.resize(chunks);
  double* const part = buf.data();
#pragma omp parallel for schedule(static) if (n >= (size_t{1} << 16))
  for (size_t c = 0; c < chunks; ++c) {
    // Eight running sums, element i into sum i % 8, combined as a fixed tree: independent chains the compiler
    // vectorizes (one sum in order is a chain of dependent adds, bound by the add's latency).
    // A float's square is exact in double, so the value does not depend on FMA contraction either.
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t begin = c * kChunk, end = std::min(n, begin + kChunk);
    size_t i = begin;
    for (; i + 8 <= end; i += 8)
      for (size_t l = 0; l < 8; ++l) lane[l] += static_cast<double>(g[i + l]) * g[i + l];
    for (size_t l = 0; i + l < end; ++l) lane[l] += static_cast<double>(g[i + l]) * g[i + l];
    part[c] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  }
  double s = 0;
  for (size_t c = 0; c < chunks; ++c) s += part[c];
  return std::sqrt(s);
}

size_t optimizer_state_tensors(const OptimConfig& c) { return c.kind == "sgd" ? (c.momentum > 0 ? 1 : 0) : 2; }

Optimizer::Optimizer(const net::Plan& plan, const OptimConfig& c) : cfg_(c), decay_(plan.n_params, 0) {
  validate(c);
  for (const auto& t : plan.params)
    if (graph::weight_decayed(t)) std::fill_n(decay_.begin() + static_cast<std::ptrdiff_t>(t.offset), t.size, uint8_t{1});
  if (c.kind == "sgd") {
    if (c.momentum > 0) m_.assign(plan.n_params, 0.0f);
  } else {
    m_.assign(plan.n_params, 0.0f);
    v_.assign(plan.n_params, 0.0f);
  }
}

std::vector<std::pair<std::string, std::vector<float>*>> Optimizer::state() {
  std::vector<std::pair<std::string, std::vector<float>*>> s;
  if (cfg_.kind == "sgd") {
    if (!m_.empty()) s.push_back({"optimizer.velocity", &m_});
  } else {
    s.push_back({"optimizer.m", &m_});
    s.push_back({"optimizer.v", &v_});
  }
  return s;
}

double Optimizer::step(float* p, float* g, float lr, size_t t) {
  const size_t n = decay_.size();
  double norm = 0;
  if (cfg_.clip_norm > 0) {
    norm = global_norm(g, n);
    const double scale = std::min(1.0, cfg_.clip_norm / (norm + 1e-6));
    if (scale < 1.0) {
      const float s = static_cast<float>(scale);
      for (size_t i = 0; i < n; ++i) g[i] *= s;
    }
  }
  const float wd = static_cast<float>(cfg_.weight_decay);
  const uint8_t* dm = decay_.data();
  if (cfg_.kind == "sgd") {
    const float mu = static_cast<float>(cfg_.momentum);
    kernels::sgd_update(n, p, g, mu > 0 ? m_.data() : nullptr, dm, lr, wd, mu);
    return norm;
  }
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(t));
  // omb1, omb2 = 1 - beta1, 1 - beta2 computed in double and rounded once, as PyTorch does (its betas are Python
  // floats): in float, 1 - 0.999f is 0.00099998713, not 0.001. step and isb2 fold the bias corrections into two
  // scalars, so that an element costs one square root and one division (PyTorch's form of the update).
  const kernels::AdamConsts k{lr,
                     wd,
                     static_cast<float>(cfg_.beta1),
                     static_cast<float>(cfg_.beta2),
                     static_cast<float>(1.0 - cfg_.beta1),
                     static_cast<float>(1.0 - cfg_.beta2),
                     static_cast<float>(cfg_.eps),
                     static_cast<float>(static_cast<double>(lr) / bc1),
                     static_cast<float>(1.0 / std::sqrt(bc2)),
                     static_cast<float>(1.0 - static_cast<double>(lr) * cfg_.weight_decay)};
  const kernels::AdamDecay form = cfg_.kind == "adam"               ? kernels::AdamDecay::Coupled
                                  : cfg_.adamw_decay == "before" ? kernels::AdamDecay::Before
                                                                 : kernels::AdamDecay::After;
  kernels::adam_update(form, n, p, g, m_.data(), v_.data(), dm, k);
  return norm;
}

}  // namespace veridl::train
