// Plan: a NetSpec compiled once, at a fixed batch size, into a static schedule.
//   forward  : primitive steps in order (a convBn layer is three steps: conv, batchnorm, relu; an
//              activation is a step of its own), each reading and writing activation buffers placed once
//   loss     : softmax cross-entropy (label smoothing from the recipe)
//   backward : the registered VJPs in reverse order, parameter gradients landing at fixed offsets
// Parameters (and their gradients) live in one flat array, tensor by tensor, in layer order:
//   dense   "layers.<i>.weight" [fanIn, fanOut], "layers.<i>.bias" [fanOut]
//   conv2d  "layers.<i>.weight" [oc, ic, k, k],  "layers.<i>.bias" [oc]   (convBn: no bias)
//   convBn  "layers.<i>.bn.gamma" [oc], "layers.<i>.bn.beta" [oc]
// BatchNorm running statistics are state, not parameters: "layers.<i>.bn.running_mean" / "running_var".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/net/netspec.hpp"
#include "veridl/ops/batchnorm.hpp"
#include "veridl/ops/conv2d.hpp"
#include "veridl/ops/dense.hpp"
#include "veridl/ops/maxpool.hpp"

namespace veridl::net {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0, size = 0;
  size_t fan_in = 0;  // for initialisation (0: not a weight)
  enum class Init { He, Zero, One } init = Init::Zero;
};

enum class StepKind { Flatten, Dense, Conv, BatchNorm, Relu, MaxPool };

// Shapes are given per example batch `Plan::batch`; the executor rescales B for smaller batches.
struct Step {
  StepKind kind = StepKind::Flatten;
  size_t layer = 0;                    // index in the NetSpec
  size_t in_buf = 0, out_buf = 0;
  size_t width_in = 0, width_out = 0;  // features per example
  size_t w = 0, b = 0;                 // indices into Plan::params (dense, conv: weight/bias; bn: gamma/beta)
  bool has_bias = false;
  ops::Conv2dShape conv;               // B = plan batch
  ops::MaxPoolShape pool;
  ops::BatchNormShape bn;
  size_t aux = 0;                      // index of the step's saved-state slot (relu mask, pool index, bn stats)
};

// Deliberate wiring faults, for the tests that prove the whole-network check bites (never set by the CLI).
enum class Fault { None, DropBiasGrad, IgnoreUpstreamGrad };

struct Plan {
  NetSpec spec;
  size_t batch = 0;
  double label_smoothing = 0.0;
  size_t num_classes = 0;
  std::vector<ParamTensor> params;
  size_t n_params = 0;
  std::vector<Step> steps;
  std::vector<size_t> buf_width;  // features per example of each activation buffer; buffer 0 is the input
  size_t n_aux = 0;               // saved-state slots
  Fault fault = Fault::None;

  size_t input_width() const { return buf_width.front(); }
  size_t logits_buf() const { return steps.back().out_buf; }
  size_t bn_layers() const;
};

Plan compile(const NetSpec& spec, size_t batch, double label_smoothing = 0.0);

}  // namespace veridl::net
