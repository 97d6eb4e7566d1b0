// Executor<T, Kernels>: runs a Plan. The wiring (which buffer feeds which op, where each parameter
// gradient lands, the reverse-order backward) is written once here and shared by both backends:
//   Executor<float, FastKernels>     training and inference (float32 kernels, kernels/)
//   Executor<F, RefKernels>          the templated reference: F = double, or the prime field and its
//                                    duals for the whole-network contract (net/verify_net.hpp)
// so the whole-network check covers the composition code that trains your model. All buffers are
// allocated once, in the constructor; forward/backward allocate nothing.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "veridl/calculus/decisions.hpp"
#include "veridl/kernels/dense.hpp"
#include "veridl/kernels/softmax.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/ops/dense.hpp"
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
  static T softmax_ce_forward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const T* z, T* p, Decisions& D) {
    return ops::softmax_ce_forward(s, eps, y, z, p, D);
  }
  template <class T>
  static void softmax_ce_backward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const T* p, T dL, T* dz) {
    ops::softmax_ce_backward(s, eps, y, p, dL, dz);
  }
};

// The float32 kernels (differentially tested against the reference in tests/test_kernels.cpp).
struct FastKernels {
  static void dense_forward(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y) {
    kernels::dense_forward(s, x, W, b, y);
  }
  static void dense_backward_input(const ops::DenseShape& s, const float* W, const float* dy, float* dx) {
    kernels::dense_backward_input(s, W, dy, dx);
  }
  static void dense_backward_weight(const ops::DenseShape& s, const float* x, const float* dy, float* dW) {
    kernels::dense_backward_weight(s, x, dy, dW);
  }
  static void dense_backward_bias(const ops::DenseShape& s, const float* dy, float* db) {
    kernels::dense_backward_bias(s, dy, db);
  }
  static float softmax_ce_forward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const float* z, float* p,
                                  Decisions&) {
    return kernels::softmax_ce_forward(s, static_cast<float>(eps), y, z, p);
  }
  static void softmax_ce_backward(const ops::SoftmaxShape& s, double eps, const int32_t* y, const float* p, float dL,
                                  float* dz) {
    kernels::softmax_ce_backward(s, static_cast<float>(eps), y, p, dL, dz);
  }
};

template <class T, class K>
class Executor {
 public:
  explicit Executor(const Plan& plan) : plan_(plan) {
    params_.assign(plan.n_params, T(0));
    grads_.assign(plan.n_params, T(0));
    for (size_t w : plan.buf_width) {
      acts_.emplace_back(plan.batch * w, T(0));
      dacts_.emplace_back(plan.batch * w, T(0));
    }
    probs_.assign(plan.batch * plan.num_classes, T(0));
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

  // Forward through the layers for the first n <= batch examples of `x` (copied into the input buffer
  // unless x is input()). Returns the logits buffer (n x num_classes).
  const T* forward(const T* x, size_t n, Decisions& D) {
    check_n(n);
    (void)D;
    if (x != acts_[0].data()) std::copy(x, x + n * plan_.input_width(), acts_[0].data());
    for (const Step& s : plan_.steps) {
      switch (s.kind) {
        case LayerKind::Flatten:
          break;
        case LayerKind::Dense: {
          ops::DenseShape sh{n, s.width_in, s.width_out};
          K::dense_forward(sh, acts_[s.in_buf].data(), &params_[plan_.params[s.w].offset],
                           &params_[plan_.params[s.b].offset], acts_[s.out_buf].data());
          break;
        }
      }
    }
    n_ = n;
    return acts_[plan_.logits_buf()].data();
  }

  // Forward plus the mean softmax cross-entropy over the batch.
  T forward_loss(const T* x, const int32_t* labels, size_t n, Decisions& D) {
    const T* z = forward(x, n, D);
    labels_ = labels;
    return K::softmax_ce_forward(ops::SoftmaxShape{n, plan_.num_classes}, plan_.label_smoothing, labels, z,
                                 probs_.data(), D);
  }

  // Reverse-order backward of the last forward_loss, seeded with dL (1 when training). Writes every
  // parameter gradient; the input gradient too when need_input_grad.
  void backward(T dL, bool need_input_grad = false) {
    const size_t n = n_;
    if (plan_.fault == Fault::IgnoreUpstreamGrad) dL = T(1);
    K::softmax_ce_backward(ops::SoftmaxShape{n, plan_.num_classes}, plan_.label_smoothing, labels_, probs_.data(), dL,
                           dacts_[plan_.logits_buf()].data());
    for (size_t k = plan_.steps.size(); k-- > 0;) {
      const Step& s = plan_.steps[k];
      switch (s.kind) {
        case LayerKind::Flatten:
          break;  // same buffer both sides
        case LayerKind::Dense: {
          ops::DenseShape sh{n, s.width_in, s.width_out};
          const T* dy = dacts_[s.out_buf].data();
          K::dense_backward_weight(sh, acts_[s.in_buf].data(), dy, &grads_[plan_.params[s.w].offset]);
          if (plan_.fault == Fault::DropBiasGrad) {
            std::fill_n(&grads_[plan_.params[s.b].offset], s.width_out, T(0));
          } else {
            K::dense_backward_bias(sh, dy, &grads_[plan_.params[s.b].offset]);
          }
          if (s.in_buf != 0 || need_input_grad)
            K::dense_backward_input(sh, &params_[plan_.params[s.w].offset], dy, dacts_[s.in_buf].data());
          break;
        }
      }
    }
  }

 private:
  Plan plan_;
  std::vector<T> params_, grads_, probs_;
  std::vector<std::vector<T>> acts_, dacts_;
  const int32_t* labels_ = nullptr;
  size_t n_ = 0;

  void check_n(size_t n) const {
    if (n == 0 || n > plan_.batch)
      throw std::invalid_argument("executor: batch of " + std::to_string(n) + " examples, plan compiled for at most " +
                                  std::to_string(plan_.batch));
  }
};

}  // namespace veridl::net
