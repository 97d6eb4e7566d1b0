// Fusion: the plan's one graph rewrite after lowering (net/plan.hpp compile), driven by a table of rules (fuse.cpp:
// a producer primitive, an activation primitive, how the producer absorbs it). Its one rule today: a BatchNorm
// whose output has exactly one consumer, a ReLU, becomes one node: the BatchNorm with its fused ReLU
// (prims/batchNorm, Attrs::relu), computing relu(BatchNorm(x)) in one pass over the activations and the backward's gate in the BatchNorm's own passes. The
// fused node keeps the BatchNorm's name (so its parameters and running state keep theirs: "layers.0.bn.gamma") and
// takes over the ReLU's output value; the ReLU node and the BatchNorm's pre-activation value are gone. Nothing else
// reads that value (it had one consumer), so the training step computes the same floats, bit for bit, fused or not
// (tests/test_fuse.cpp), without the ReLU's own passes over the activations (a read and a write forward, and again
// backward). The memory plan barely changes: the unfused pre-activation value was dead after the ReLU's forward and
// its buffer reused. The whole-network check (`veridl verify`), the StableHLO and ONNX exports all run the fused
// plan: its node's contracts are BatchNorm's, with ReLU cases (prims/batchNorm/contracts.cpp).
#pragma once

#include <cstddef>

#include "veridl/graph/ir.hpp"

namespace veridl::net {

// Whether compile() fuses (Fusion::Off: the graph as lowered, node for node; for the tests that compare the two).
enum class Fusion { On, Off };

// Fuses every pair of `g` a rule matches (today BatchNorm -> ReLU) in place (node and value indices renumbered);
// returns how many.
size_t fuse(graph::Graph& g);

}  // namespace veridl::net
