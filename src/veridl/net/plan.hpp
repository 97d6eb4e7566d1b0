// Plan: a NetSpec compiled once, at a fixed batch size, into a static schedule.
//   forward  : the layers in order, each reading and writing activation buffers placed once
//   loss     : softmax cross-entropy (label smoothing from the recipe)
//   backward : the chapter-2 VJPs in reverse order, parameter gradients landing at fixed offsets
// Parameters (and their gradients) live in one flat array, tensor by tensor, in layer order; names
// "layers.<i>.weight" ([fanIn, fanOut]) and "layers.<i>.bias" ([fanOut]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/net/netspec.hpp"
#include "veridl/ops/dense.hpp"

namespace veridl::net {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0, size = 0;
  size_t fan_in = 0;  // for initialisation
};

struct Step {
  LayerKind kind;
  size_t layer = 0;          // index in the NetSpec
  size_t in_buf = 0, out_buf = 0;
  size_t width_in = 0, width_out = 0;  // features per example
  size_t w = 0, b = 0;       // indices into Plan::params (dense)
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
  Fault fault = Fault::None;

  size_t input_width() const { return buf_width.front(); }
  size_t logits_buf() const { return steps.back().out_buf; }
};

Plan compile(const NetSpec& spec, size_t batch, double label_smoothing = 0.0);

}  // namespace veridl::net
