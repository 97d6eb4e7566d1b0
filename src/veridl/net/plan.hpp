// Plan: a NetSpec compiled once, at a fixed batch size, into a static schedule over the graph IR.
//   nodes     the lowered graph (net/lower.hpp) in topological order, the loss node last, after fusion
//             (net/fuse.hpp: a BatchNorm whose only consumer is a ReLU is one node, named as the BatchNorm)
//   edges     every input edge of the backward marked at plan time: Write (the first gradient a value
//             receives, in reverse order) or Accumulate (a value with several consumers: fan-out, residuals),
//             so the backward needs no zeroing and allocates nothing
//   memory    activation and gradient buffers assigned by liveness over the training step's timeline
//             (forward, then backward in reverse), and over the forward alone for inference executors
// Parameters (and their gradients) live in one flat array, tensor by tensor, in node order; each is named
// "<node>.<local>": "layers.<i>.weight" [fanIn, fanOut] then "layers.<i>.bias" for dense, conv2d
// "layers.<i>.weight" [oc, ic, k, k] (+ "bias"), convBn's BatchNorm "layers.<i>.bn.gamma" / "beta".
// Running state (BatchNorm statistics) is not a parameter: "layers.<i>.bn.running_mean" / "running_var".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veridl/graph/ir.hpp"
#include "veridl/net/fuse.hpp"
#include "veridl/net/netspec.hpp"

namespace veridl::net {

using graph::EdgeKind;
using graph::ParamTensor;

// Deliberate wiring faults, for the tests that prove the whole-network check bites (never set by the CLI).
enum class Fault {
  None,
  DropBiasGrad,        // bias / beta gradients zero
  IgnoreUpstreamGrad,  // the loss backward seeded with 1 whatever dL is
  AccumulateAsWrite,   // a fan-out's second gradient overwrites the first instead of adding to it
};

// How the values were coloured into shared buffers (plan.cpp's assign: two heuristics, the smaller total kept).
enum class Colouring { StartOrder, LargestFirst };

// Where each value lives, for one purpose (training or inference).
struct Memory {
  std::vector<size_t> buffers;  // elements of each shared buffer
  std::vector<long> act, grad;  // per value: its buffer (-1: none)
  Colouring colouring = Colouring::StartOrder;
  size_t scratch = 0, n_scratch = 0;  // accumulate edges: buffers a backward writes before the add
  size_t saved_scalars = 0, saved_bytes = 0;  // what forwards keep for backwards (scalars; u8/u32/f64 bytes)
  size_t bytes(size_t scalar_size) const;     // everything above, at this scalar size
};

struct Plan : graph::Graph {
  NetSpec spec;
  size_t batch = 0;
  double label_smoothing = 0.0;
  size_t num_classes = 0;
  std::vector<std::vector<EdgeKind>> edges;  // per node, per input
  // Per value: does a gradient flow from it to a parameter (grad_to_params), or to the image batch
  // (grad_to_input)? A backward computes an input's gradient only where one of these holds and is wanted:
  // the first layer never computes the image's gradient unless asked (need_input_grad).
  std::vector<bool> grad_to_params, grad_to_input;
  Memory train, infer;
  Fault fault = Fault::None;

  size_t input_width() const { return values[input].shape.size(); }
  // Elements of a value's buffer at the plan's batch.
  size_t elems(size_t value) const;
};

// The lowered graph (net/lower.hpp) plus the loss, fused (net/fuse.hpp) unless Fusion::Off.
Plan compile(const NetSpec& spec, size_t batch, double label_smoothing = 0.0, Fusion fusion = Fusion::On);

}  // namespace veridl::net
