// Executor<T, Backend>: runs a Plan. The wiring (which buffer feeds which node, where each parameter
// gradient lands, the reverse-order backward with its write / accumulate edges, saved buffers and running
// state) is written once here, with no knowledge of any particular primitive: each node runs through the
// primitive table (prims/table.hpp). It is shared by both backends:
//   Executor<float, FastKernels>     training and inference (float32 kernels, prims/<name>/kernel.hpp)
//   Executor<F, RefKernels>          the templated reference: F = double, or the prime field and its
//                                    duals for the whole-network contract (net/verify_net.hpp)
// so the whole-network check covers the composition code that trains your model. All buffers are
// allocated once, in the constructor; forward/backward allocate nothing. Purpose::Inference uses the
// plan's inference memory: no gradients, and activations reused as soon as the forward is past them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "veridl/calculus/decisions.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/prims/add/kernel.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/aligned.hpp"

namespace veridl::net {

using RefKernels = graph::Ref;    // the templated reference ops, for any scalar type
using FastKernels = graph::Fast;  // the float32 kernels (tests/test_prims.cpp checks each against the reference)
using graph::Mode;

// What an executor is built for. Inference executors hold no gradient buffers (parameter gradients,
// activation gradients, BatchNorm's normalised inputs) and reuse activation memory along the forward, for
// evaluation and `veridl eval`. They run forward / forward_loss in Mode::Eval only.
enum class Purpose { Training, Inference };

// Wall time per node (seconds, steady clock), summed over the forwards and backwards run while an executor points at
// it (Executor::set_profile): where a train step's time goes, node by node (`bench_kernels --net SPEC --profile`
// sums it per primitive). A node's backward time includes adding its gradient into a fan-in sum (an accumulate
// edge). Not set (the default), nothing is timed.
struct NodeTimes {
  std::vector<double> forward, backward;  // per node
  size_t forwards = 0, backwards = 0;     // passes timed
};

template <class T, class B>
class Executor {
 public:
  explicit Executor(const Plan& plan, Purpose purpose = Purpose::Training)
      : plan_(plan), training_(purpose == Purpose::Training) {
    const Memory& m = training_ ? plan_.train : plan_.infer;
    params_.assign(plan_.n_params, T(0));
    if (training_) grads_.assign(plan_.n_params, T(0));
    for (size_t n : m.buffers) bufs_.emplace_back(n, T(0));
    scratch_.assign(m.n_scratch, AlignedVector<T>(m.scratch, T(0)));
    calls_.resize(plan_.nodes.size());
    for (size_t k = 0; k < plan_.nodes.size(); ++k) {
      const graph::Node& n = plan_.nodes[k];
      graph::Call<T>& c = calls_[k];
      for (size_t v : n.inputs) c.in.push_back(act(v));
      c.out = act(n.output);
      for (size_t t : n.params) {
        c.p.push_back(&params_[plan_.params[t].offset]);
        if (training_) c.g.push_back(&grads_[plan_.params[t].offset]);
      }
      for (const graph::SavedDecl& s : n.decl.saved) {
        const size_t count = (s.training_only && !training_) ? 0 : s.per_example * plan_.batch + s.fixed;
        if (s.elem == graph::Elem::Scalar) c.saved.push_back(keep(saved_, count, T(0)));
        else if (s.elem == graph::Elem::U8) c.saved8.push_back(keep(saved8_, count, uint8_t(0)));
        else if (s.elem == graph::Elem::F64) c.saved64.push_back(keep(saved64_, count, 0.0));
        else c.saved32.push_back(keep(saved32_, count, uint32_t(0)));
      }
      for (const graph::StateDecl& s : n.decl.state) {
        state_.emplace_back(s.size, T(s.init));
      }
      if (!training_) continue;
      c.dy = k == static_cast<size_t>(plan_.loss_node) ? &dL_ : grad(n.output);
      size_t acc = 0;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const EdgeKind e = plan_.edges[k][i];
        const bool accumulate = e == EdgeKind::Accumulate && plan_.fault != Fault::AccumulateAsWrite;
        c.dx.push_back(accumulate ? scratch_[acc++].data() : grad(n.inputs[i]));
      }
    }
    dx_.resize(calls_.size());
    for (size_t k = 0; k < calls_.size(); ++k) dx_[k] = calls_[k].dx;
    size_t s = 0;
    for (size_t k = 0; k < plan_.nodes.size(); ++k)
      for (size_t j = 0; j < plan_.nodes[k].decl.state.size(); ++j) calls_[k].state.push_back(state_[s++].data());
  }
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const Plan& plan() const { return plan_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  const std::vector<T>& grads() const { return grads_; }
  std::vector<T>& mutable_grads() { return grads_; }  // the optimizer may clip in place
  // Gradient of the loss with respect to the input batch (after backward(..., true)).
  std::vector<T> input_grad() const { return copy(grad_c(plan_.input), plan_.elems(plan_.input)); }
  std::vector<T> logits() const { return copy(act_c(plan_.logits), plan_.elems(plan_.logits)); }
  // The logits of the last forward, in place (valid until the next backward or forward).
  const T* logits_data() const { return act_c(plan_.logits); }
  T* input() { return act(plan_.input); }

  // Running state (BatchNorm statistics), in node order: for each node its StateDecls ({mean, var}).
  std::vector<std::vector<T>*> running_stats() {
    std::vector<std::vector<T>*> r;
    for (auto& s : state_) r.push_back(&s);
    return r;
  }
  // In Train mode, forward updates the running statistics with this EMA momentum (0: no update).
  void set_running_momentum(double m) { running_momentum_ = m; }
  // The random decisions of Train-mode forwards (dropout, dropPath) until the next call: node k draws under
  // noise::node_key(seed, step, k) (calculus/decisions.hpp). The trainer sets its seed and the global step.
  void set_noise(uint64_t seed, uint64_t step) {
    noise_seed_ = seed;
    noise_step_ = step;
  }
  // Data-parallel training (docs/distributed.md): the examples this executor runs are examples [first, first + n) of a
  // global batch of `mean_over` (0: its own batch is the whole batch); `sync`, when set, makes BatchNorm's Train-mode
  // statistics and backward sums global (synchronized BatchNorm). graph::Call says what each primitive does with them.
  void set_shard(size_t first, size_t mean_over, const graph::Collective* sync = nullptr) {
    first_example_ = first;
    mean_over_ = mean_over;
    sync_ = sync;
  }
  // Called after each node's backward with the node's index (reverse order): a data-parallel run posts the gradient
  // buckets that are complete (train/dist.hpp, GradReducer). nullptr: none.
  void set_backward_hook(void (*fn)(void*, size_t), void* ctx) {
    hook_ = fn;
    hook_ctx_ = ctx;
  }
  // Time every node from now on into `t` (reset to zeros for this plan), or stop timing (nullptr).
  void set_profile(NodeTimes* t) {
    profile_ = t;
    if (!t) return;
    t->forward.assign(plan_.nodes.size(), 0.0);
    t->backward.assign(plan_.nodes.size(), 0.0);
    t->forwards = t->backwards = 0;
  }
  // What node k's forward saved in its j-th U8 buffer (a ReLU mask, dropout's decisions), batch-major.
  const uint8_t* saved8(size_t node, size_t j) const { return calls_.at(node).saved8.at(j); }

  // Forward for the first n <= batch examples of `x` (copied into the input buffer unless x is
  // input()). Returns the logits (n x num_classes).
  const T* forward(const T* x, size_t n, Decisions& D, Mode mode = Mode::Train) {
    check_n(n);
    if (!training_ && mode == Mode::Train)
      throw std::logic_error("executor: an inference executor runs in Mode::Eval only");
    if (x != input()) std::copy(x, x + n * plan_.input_width(), input());
    for (size_t k = 0; k < plan_.nodes.size(); ++k)
      if (k != static_cast<size_t>(plan_.loss_node)) {
        const Timed timed(profile_ ? &profile_->forward[k] : nullptr);
        run(k, n, D, mode, prims::forward_fn<T, B>(plan_.nodes[k].op));
      }
    if (profile_) ++profile_->forwards;
    n_ = n;
    return act(plan_.logits);
  }

  // Forward plus the mean softmax cross-entropy over the batch (the loss node).
  T forward_loss(const T* x, const int32_t* labels, size_t n, Decisions& D, Mode mode = Mode::Train) {
    forward(x, n, D, mode);
    const size_t k = static_cast<size_t>(plan_.loss_node);
    calls_[k].labels = labels;
    {
      const Timed timed(profile_ ? &profile_->forward[k] : nullptr);
      run(k, n, D, mode, prims::forward_fn<T, B>(plan_.nodes[k].op));
    }
    return act(plan_.loss)[0];
  }

  // Reverse-order backward of the last Train-mode forward_loss, seeded with dL (1 when training).
  // Writes every parameter gradient; the input gradient too when need_input_grad.
  void backward(T dL, bool need_input_grad = false) {
    if (!training_) throw std::logic_error("executor: backward on an inference executor");
    dL_ = plan_.fault == Fault::IgnoreUpstreamGrad ? T(1) : dL;
    Decisions none;
    for (size_t k = plan_.nodes.size(); k-- > 0;) {
      const graph::Node& node = plan_.nodes[k];
      graph::Call<T>& c = calls_[k];
      bool any = !node.params.empty();
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        const size_t v = node.inputs[i];
        const bool wanted = plan_.grad_to_params[v] || (need_input_grad && plan_.grad_to_input[v]);
        c.dx[i] = wanted ? dx_[k][i] : nullptr;
        any = any || wanted;
      }
      if (!any) continue;  // nothing upstream needs this node's gradients (a flatten of the image)
      {
        const Timed timed(profile_ ? &profile_->backward[k] : nullptr);
        run(k, n_, none, Mode::Train, prims::backward_fn<T, B>(node.op));
        for (size_t i = 0; i < node.inputs.size(); ++i)
          if (c.dx[i] && c.dx[i] != grad(node.inputs[i]))  // an accumulate edge: its scratch into the sum
            add_into(n_ * plan_.values[node.inputs[i]].shape.size(), c.dx[i], grad(node.inputs[i]));
        if (plan_.fault == Fault::DropBiasGrad)
          for (size_t j = 0; j < node.params.size(); ++j)
            if (node.decl.params[j].bias) std::fill_n(c.g[j], plan_.params[node.params[j]].size, T(0));
      }
      if (hook_) hook_(hook_ctx_, k);
    }
    if (profile_) ++profile_->backwards;
  }

 private:
  Plan plan_;
  bool training_;
  std::vector<T> params_, grads_;
  // Activations, gradients and what the backward keeps start on cache lines (util/aligned.hpp); the parameters
  // are one vector of the plan's layout (a tensor starts where the previous one ends).
  std::vector<AlignedVector<T>> bufs_, scratch_, saved_;
  std::vector<std::vector<T>> state_;
  std::vector<std::vector<uint8_t>> saved8_;
  std::vector<std::vector<uint32_t>> saved32_;
  std::vector<std::vector<double>> saved64_;
  std::vector<graph::Call<T>> calls_;
  std::vector<std::vector<T*>> dx_;  // per node, per input: where its gradient goes when wanted
  T dL_ = T(1);
  size_t n_ = 0;
  double running_momentum_ = 0.0;
  uint64_t noise_seed_ = 0, noise_step_ = 0;
  size_t first_example_ = 0, mean_over_ = 0;
  const graph::Collective* sync_ = nullptr;
  void (*hook_)(void*, size_t) = nullptr;
  void* hook_ctx_ = nullptr;
  NodeTimes* profile_ = nullptr;
  // Adds the seconds of its lifetime to *into (nothing, and no clock read, when into is null: profiling off).
  struct Timed {
    using Clock = std::chrono::steady_clock;
    explicit Timed(double* into) : into_(into), t0_(into ? Clock::now() : Clock::time_point{}) {}
    Timed(const Timed&) = delete;
    Timed& operator=(const Timed&) = delete;
    ~Timed() {
      if (into_) *into_ += std::chrono::duration<double>(Clock::now() - t0_).count();
    }
    double* into_;
    Clock::time_point t0_;
  };

  T* act(size_t v) { return bufs_[size_t(mem().act[v])].data(); }
  const T* act_c(size_t v) const { return bufs_[size_t(mem().act[v])].data(); }
  T* grad(size_t v) { return bufs_[size_t(mem().grad[v])].data(); }
  const T* grad_c(size_t v) const { return bufs_[size_t(mem().grad[v])].data(); }
  const Memory& mem() const { return training_ ? plan_.train : plan_.infer; }
  template <class V, class E>
  static E* keep(std::vector<V>& store, size_t count, E zero) {
    store.emplace_back(count, zero);
    return store.back().data();
  }
  static std::vector<T> copy(const T* p, size_t n) { return std::vector<T>(p, p + n); }
  static void add_into(size_t n, const T* src, T* dst) {
    if constexpr (std::is_same_v<B, graph::Fast>) kernels::add_into(n, src, dst);
    else
      for (size_t i = 0; i < n; ++i) dst[i] += src[i];
  }
  void run(size_t k, size_t n, Decisions& D, Mode mode, prims::RunFn<T> fn) {
    graph::Call<T>& c = calls_[k];
    c.n = n;
    c.D = &D;
    c.mode = mode;
    c.running_momentum = running_momentum_;
    c.key = noise::node_key(noise_seed_, noise_step_, k);
    c.first_example = first_example_;
    c.mean_over = mean_over_;
    c.sync = sync_;
    fn(plan_.nodes[k].attrs.get(), c);
  }
  void check_n(size_t n) const {
    if (n == 0 || n > plan_.batch)
      throw std::invalid_argument("executor: batch of " + std::to_string(n) + " examples, plan compiled for at most " +
                                  std::to_string(plan_.batch));
  }
};

}  // namespace veridl::net
