// Executor<T, Kernels>: runs a Plan. The wiring (which buffer feeds which op, where each parameter
// gradient lands, the reverse-order backward, BatchNorm's saved statistics) is written once here and
// shared by both backends:
//   Executor<float, FastKernels>     training and inference (float32 kernels, kernels/)
//   Executor<F, RefKernels>          the templated reference: F = double, or the prime field and its
//                                    duals for the whole-network contract (net/verify_net.hpp)
// so the whole-network check covers the composition code that trains your model. All buffers are
// allocated once, in the constructor; forward/backward allocate nothing. Purpose::Inference leaves out
// the buffers only the backward uses.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "veridl/calculus/decisions.hpp"
#include "veridl/kernels/batchnorm.hpp"
#include "veridl/kernels/conv2d.hpp"
#include "veridl/kernels/dense.hpp"
#include "veridl/kernels/maxpool.hpp"
#include "veridl/kernels/relu.hpp"
#include "veridl/kernels/softmax.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/ops/batchnorm.hpp"
#include "veridl/ops/conv2d.hpp"
#include "veridl/ops/dense.hpp"
#include "veridl/ops/maxpool.hpp"
#include "veridl/ops/relu.hpp"
#include "veridl/ops/softmax.hpp"

namespace veridl::net {

// The templated reference ops, for any scalar type.
struct RefKernels {
  template <class T>
  static void dense_forward(const ops::DenseShape& s, const T* x, const T* W, const T* b, T* y) {
    ops::dense_forward(s, x, W, b, y);
  }
  template <class T>
  static void dense_backward_input(const ops::DenseShape& s, const T* W, const T* dy, T* dx) {
    ops::dense_backward_input(s, W, dy, dx);
  }
  template <class T>
  static void dense_backward_weight(const ops::DenseShape& s, const T* x, const T* dy, T* dW) {
    ops::dense_backward_weight(s, x, dy, dW);
  }
  template <class T>
  static void dense_backward_bias(const ops::DenseShape& s, const T* dy, T* db) {
    ops::dense_backward_bias(s, dy, db);
  }
  template <class T>
  static void conv2d_forward(const ops::Conv2dShape& s, const T* x, const T* W, const std::type_identity_t<T>* b, T* y) {
    ops::conv2d_forward(s, x, W, b, y);
  }
  template <class T>
  static void conv2d_backward_input(const ops::Conv2dShape& s, const T* W, const T* dy, T* dx) {
    ops::conv2d_backward_input(s, W, dy, dx);
  }
  template <class T>
  static void conv2d_backward_weight(const ops::Conv2dShape& s, const T* x, const T* dy, T* dW) {
    ops::conv2d_backward_weight(s, x, dy, dW);
  }
  template <class T>
  static void conv2d_backward_bias(const ops::Conv2dShape& s, const T* dy, T* db) {
    ops::conv2d_backward_bias(s, dy, db);
  }
  template <class T>
  static void maxpool_forward(const ops::MaxPoolShape& s, const T* x, T* y, uint32_t* idx, Decisions& D) {
    ops::maxpool_forward(s, x, y, idx, D);
  }
  template <class T>
  static void maxpool_backward(const ops::MaxPoolShape& s, const uint32_t* idx, const T* dy, T* dx) {
    ops::maxpool_backward(s, idx, dy, dx);
  }
  template <class T>
  static void relu_forward(const ops::ReluShape& s, const T* x, T* y, uint8_t* mask, Decisions& D) {
    ops::relu_forward(s, x, y, mask, D);
  }
  template <class T>
  static void relu_backward(const ops::ReluShape& s, const uint8_t* mask, const T* dy, T* dx) {
    ops::relu_backward(s, mask, dy, dx);
  }
  template <class T>
  static void bn_train_forward(const ops::BatchNormShape& s, double eps, const T* x, const T* g, const T* b, T* y,
                               T* mean, T* var, T* r, T* xhat) {
    ops::batchnorm_train_forward(s, eps, x, g, b, y, mean, var, r, xhat);
  }
  template <class T>
  static void bn_backward(const ops::BatchNormShape& s, const T* g, const T* r, const T* xhat, const T* dy, T* dx,
                          T* dg, T* db) {
    ops::batchnorm_backward(s, g, r, xhat, dy, dx, dg, db);
  }
  template <class T>
  static void bn_eval_forward(const ops::BatchNormShape& s, double eps, const T* x, const T* g, const T* b,
                              const T* mean, const T* var, T* y) {
    ops::batchnorm_eval_forward(s, eps, x, g, b, mean, var, y);
  }
  template <class T>
  static void bn_update_running(size_t C, double m, const T* mean, const T* var, T* rm, T* rv) {
    ops::batchnorm_update_running(C, m, mean, var, rm, rv);
  }
  template <class T>
  static T softmax_ce_forward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const T* z, T* p, Decisions& D) {
    return ops::softmax_ce_forward(s, eps, y, z, p, D);
  }
  template <class T>
  static void softmax_ce_backward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const T* p, T dL, T* dz) {
    ops::softmax_ce_backward(s, eps, y, p, dL, dz);
  }
};

// The float32 kernels (differentially tested against the reference: tests/test_kernels.cpp,
// test_conv_kernels.cpp, test_relu_bn_kernels.cpp, and on every plan's shapes in test_net.cpp).
struct FastKernels {
  using F = float;
  static void dense_forward(const ops::DenseShape& s, const F* x, const F* W, const F* b, F* y) {
    kernels::dense_forward(s, x, W, b, y);
  }
  static void dense_backward_input(const ops::DenseShape& s, const F* W, const F* dy, F* dx) {
    kernels::dense_backward_input(s, W, dy, dx);
  }
  static void dense_backward_weight(const ops::DenseShape& s, const F* x, const F* dy, F* dW) {
    kernels::dense_backward_weight(s, x, dy, dW);
  }
  static void dense_backward_bias(const ops::DenseShape& s, const F* dy, F* db) { kernels::dense_backward_bias(s, dy, db); }
  static void conv2d_forward(const ops::Conv2dShape& s, const F* x, const F* W, const F* b, F* y) {
    kernels::conv2d_forward(s, x, W, b, y);
  }
  static void conv2d_backward_input(const ops::Conv2dShape& s, const F* W, const F* dy, F* dx) {
    kernels::conv2d_backward_input(s, W, dy, dx);
  }
  static void conv2d_backward_weight(const ops::Conv2dShape& s, const F* x, const F* dy, F* dW) {
    kernels::conv2d_backward_weight(s, x, dy, dW);
  }
  static void conv2d_backward_bias(const ops::Conv2dShape& s, const F* dy, F* db) {
    kernels::conv2d_backward_bias(s, dy, db);
  }
  static void maxpool_forward(const ops::MaxPoolShape& s, const F* x, F* y, uint32_t* idx, Decisions&) {
    kernels::maxpool_forward(s, x, y, idx);
  }
  static void maxpool_backward(const ops::MaxPoolShape& s, const uint32_t* idx, const F* dy, F* dx) {
    kernels::maxpool_backward(s, idx, dy, dx);
  }
  static void relu_forward(const ops::ReluShape& s, const F* x, F* y, uint8_t* mask, Decisions&) {
    kernels::relu_forward(s, x, y, mask);
  }
  static void relu_backward(const ops::ReluShape& s, const uint8_t* mask, const F* dy, F* dx) {
    kernels::relu_backward(s, mask, dy, dx);
  }
  static void bn_train_forward(const ops::BatchNormShape& s, double eps, const F* x, const F* g, const F* b, F* y,
                               F* mean, F* var, F* r, F* xhat) {
    kernels::batchnorm_train_forward(s, eps, x, g, b, y, mean, var, r, xhat);
  }
  static void bn_backward(const ops::BatchNormShape& s, const F* g, const F* r, const F* xhat, const F* dy, F* dx, F* dg,
                          F* db) {
    kernels::batchnorm_backward(s, g, r, xhat, dy, dx, dg, db);
  }
  static void bn_eval_forward(const ops::BatchNormShape& s, double eps, const F* x, const F* g, const F* b,
                              const F* mean, const F* var, F* y) {
    kernels::batchnorm_eval_forward(s, eps, x, g, b, mean, var, y);
  }
  static void bn_update_running(size_t C, double m, const F* mean, const F* var, F* rm, F* rv) {
    kernels::batchnorm_update_running(C, m, mean, var, rm, rv);
  }
  static F softmax_ce_forward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const F* z, F* p, Decisions&) {
    return kernels::softmax_ce_forward(s, static_cast<float>(eps), y, z, p);
  }
  static void softmax_ce_backward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const F* p, F dL, F* dz) {
    kernels::softmax_ce_backward(s, static_cast<float>(eps), y, p, dL, dz);
  }
};

enum class Mode {
  Train,  // BatchNorm normalises with batch statistics (what the backward differentiates)
  Eval,   // BatchNorm uses the running statistics
};

// What an executor is built for. Inference executors hold no gradient buffers (parameter gradients,
// activation gradients, BatchNorm's normalised inputs): about half the memory of a training executor, for
// evaluation and `veridl eval`. They run forward / forward_loss in Mode::Eval only.
enum class Purpose { Training, Inference };

template <class T, class K>
class Executor {
 public:
  explicit Executor(const Plan& plan, Purpose purpose = Purpose::Training)
      : plan_(plan), training_(purpose == Purpose::Training) {
    params_.assign(plan.n_params, T(0));
    if (training_) grads_.assign(plan.n_params, T(0));
    for (size_t w : plan.buf_width) {
      acts_.emplace_back(plan.batch * w, T(0));
      dacts_.emplace_back(training_ ? plan.batch * w : 0, T(0));
    }
    probs_.assign(plan.batch * plan.num_classes, T(0));
    aux_.resize(plan.n_aux);
    for (const Step& s : plan.steps) {
      Aux& a = s.kind == StepKind::Relu || s.kind == StepKind::MaxPool || s.kind == StepKind::BatchNorm ? aux_[s.aux]
                                                                                                        : dummy_;
      switch (s.kind) {
        case StepKind::Relu: a.mask.assign(plan.batch * s.width_in, 0); break;
        case StepKind::MaxPool: a.idx.assign(plan.batch * s.width_out, 0); break;
        case StepKind::BatchNorm:
          a.mean.assign(s.bn.C, T(0));
          a.var.assign(s.bn.C, T(0));
          a.r.assign(s.bn.C, T(0));
          a.run_mean.assign(s.bn.C, T(0));
          a.run_var.assign(s.bn.C, T(1));
          if (training_) a.xhat.assign(plan.batch * s.width_in, T(0));
          break;
        default: break;
      }
    }
  }

  const Plan& plan() const { return plan_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  const std::vector<T>& grads() const { return grads_; }
  std::vector<T>& mutable_grads() { return grads_; }  // the optimizer may clip in place
  // Gradient of the loss with respect to the input batch (after backward(..., true)).
  const std::vector<T>& input_grad() const { return dacts_[0]; }
  const std::vector<T>& logits() const { return acts_[plan_.logits_buf()]; }
  T* input() { return acts_[0].data(); }

  // BatchNorm running statistics, in step order: {mean, var} per BatchNorm step.
  std::vector<std::vector<T>*> running_stats() {
    std::vector<std::vector<T>*> r;
    for (const Step& s : plan_.steps)
      if (s.kind == StepKind::BatchNorm) {
        r.push_back(&aux_[s.aux].run_mean);
        r.push_back(&aux_[s.aux].run_var);
      }
    return r;
  }
  // In Train mode, forward updates the running statistics with this EMA momentum (0: no update).
  void set_running_momentum(double m) { running_momentum_ = m; }

  // Forward for the first n <= batch examples of `x` (copied into the input buffer unless x is
  // input()). Returns the logits (n x num_classes).
  const T* forward(const T* x, size_t n, Decisions& D, Mode mode = Mode::Train) {
    check_n(n);
    if (!training_ && mode == Mode::Train)
      throw std::logic_error("executor: an inference executor runs in Mode::Eval only");
    if (x != acts_[0].data()) std::copy(x, x + n * plan_.input_width(), acts_[0].data());
    for (const Step& s : plan_.steps) {
      const T* in = acts_[s.in_buf].data();
      T* out = acts_[s.out_buf].data();
      switch (s.kind) {
        case StepKind::Flatten: break;
        case StepKind::Dense:
          K::dense_forward(ops::DenseShape{n, s.width_in, s.width_out}, in, param(s.w), param(s.b), out);
          break;
        case StepKind::Conv:
          K::conv2d_forward(conv_shape(s, n), in, param(s.w), s.has_bias ? param(s.b) : nullptr, out);
          break;
        case StepKind::MaxPool: {
          ops::MaxPoolShape ps = s.pool;
          ps.B = n;
          K::maxpool_forward(ps, in, out, aux_[s.aux].idx.data(), D);
          break;
        }
        case StepKind::Relu:
          K::relu_forward(ops::ReluShape{n * s.width_in}, in, out, aux_[s.aux].mask.data(), D);
          break;
        case StepKind::BatchNorm: {
          Aux& a = aux_[s.aux];
          ops::BatchNormShape bs = s.bn;
          bs.N = n;
          if (mode == Mode::Train) {
            K::bn_train_forward(bs, ops::kBatchNormEps, in, param(s.w), param(s.b), out, a.mean.data(), a.var.data(),
                                a.r.data(), a.xhat.data());
            if (running_momentum_ > 0)
              K::bn_update_running(bs.C, running_momentum_, a.mean.data(), a.var.data(), a.run_mean.data(),
                                   a.run_var.data());
          } else {
            K::bn_eval_forward(bs, ops::kBatchNormEps, in, param(s.w), param(s.b), a.run_mean.data(), a.run_var.data(),
                               out);
          }
          break;
        }
      }
    }
    n_ = n;
    return acts_[plan_.logits_buf()].data();
  }

  // Forward plus the mean softmax cross-entropy over the batch.
  T forward_loss(const T* x, const int32_t* labels, size_t n, Decisions& D, Mode mode = Mode::Train) {
    const T* z = forward(x, n, D, mode);
    labels_ = labels;
    return K::softmax_ce_forward(ops::SoftmaxShape{n, plan_.num_classes}, plan_.label_smoothing, labels, z,
                                 probs_.data(), D);
  }

  // Reverse-order backward of the last Train-mode forward_loss, seeded with dL (1 when training).
  // Writes every parameter gradient; the input gradient too when need_input_grad.
  void backward(T dL, bool need_input_grad = false) {
    if (!training_) throw std::logic_error("executor: backward on an inference executor");
    const size_t n = n_;
    if (plan_.fault == Fault::IgnoreUpstreamGrad) dL = T(1);
    K::softmax_ce_backward(ops::SoftmaxShape{n, plan_.num_classes}, plan_.label_smoothing, labels_, probs_.data(), dL,
                           dacts_[plan_.logits_buf()].data());
    for (size_t k = plan_.steps.size(); k-- > 0;) {
      const Step& s = plan_.steps[k];
      const T* dy = dacts_[s.out_buf].data();
      T* dx = dacts_[s.in_buf].data();
      const T* x = acts_[s.in_buf].data();
      const bool want_dx = s.in_buf != 0 || need_input_grad;
      switch (s.kind) {
        case StepKind::Flatten: break;  // same buffer both sides
        case StepKind::Dense: {
          ops::DenseShape sh{n, s.width_in, s.width_out};
          K::dense_backward_weight(sh, x, dy, grad(s.w));
          bias_grad(s, [&] { K::dense_backward_bias(sh, dy, grad(s.b)); });
          if (want_dx) K::dense_backward_input(sh, param(s.w), dy, dx);
          break;
        }
        case StepKind::Conv: {
          ops::Conv2dShape cs = conv_shape(s, n);
          K::conv2d_backward_weight(cs, x, dy, grad(s.w));
          if (s.has_bias) bias_grad(s, [&] { K::conv2d_backward_bias(cs, dy, grad(s.b)); });
          if (want_dx) K::conv2d_backward_input(cs, param(s.w), dy, dx);
          break;
        }
        case StepKind::MaxPool: {
          ops::MaxPoolShape ps = s.pool;
          ps.B = n;
          if (want_dx) K::maxpool_backward(ps, aux_[s.aux].idx.data(), dy, dx);
          break;
        }
        case StepKind::Relu:
          if (want_dx) K::relu_backward(ops::ReluShape{n * s.width_in}, aux_[s.aux].mask.data(), dy, dx);
          break;
        case StepKind::BatchNorm: {
          const Aux& a = aux_[s.aux];
          ops::BatchNormShape bs = s.bn;
          bs.N = n;
          K::bn_backward(bs, param(s.w), a.r.data(), a.xhat.data(), dy, want_dx ? dx : nullptr, grad(s.w), grad(s.b));
          if (plan_.fault == Fault::DropBiasGrad) std::fill_n(grad(s.b), bs.C, T(0));
          break;
        }
      }
    }
  }

 private:
  struct Aux {
    std::vector<uint8_t> mask;
    std::vector<uint32_t> idx;
    std::vector<T> mean, var, r, xhat, run_mean, run_var;
  };
  Plan plan_;
  bool training_;
  std::vector<T> params_, grads_, probs_;
  std::vector<std::vector<T>> acts_, dacts_;
  std::vector<Aux> aux_;
  Aux dummy_;
  const int32_t* labels_ = nullptr;
  size_t n_ = 0;
  double running_momentum_ = 0.0;

  T* param(size_t t) { return &params_[plan_.params[t].offset]; }
  T* grad(size_t t) { return &grads_[plan_.params[t].offset]; }
  static ops::Conv2dShape conv_shape(const Step& s, size_t n) {
    ops::Conv2dShape c = s.conv;
    c.B = n;
    return c;
  }
  template <class F>
  void bias_grad(const Step& s, F&& compute) {
    if (plan_.fault == Fault::DropBiasGrad) {
      std::fill_n(grad(s.b), plan_.params[s.b].size, T(0));
    } else {
      compute();
    }
  }
  void check_n(size_t n) const {
    if (n == 0 || n > plan_.batch)
      throw std::invalid_argument("executor: batch of " + std::to_string(n) + " examples, plan compiled for at most " +
                                  std::to_string(plan_.batch));
  }
};

}  // namespace veridl::net
