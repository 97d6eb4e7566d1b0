// Export of a Plan as a StableHLO module (MLIR text) that IREE or XLA compiles for CPUs and GPUs.
//
// Two kinds of module, both with one function @main:
//   train step  (default)  forward, softmax cross-entropy, the closed-form backward, the optimizer
//                          update: the fused TrainStep of train/trainer.hpp in one function
//   eval        (--eval)   the forward with BatchNorm on its running statistics; returns the logits
//
// Calling convention (docs/gpu.md; signature() lists it for a plan, and the module's header repeats it):
//   train step inputs   every parameter tensor in plan order, with its real shape (dense weight
//                       [fanIn, fanOut], conv weight [oc, ic, k, k], biases, BatchNorm gamma / beta);
//                       then the optimizer state: sgd with momentum: one velocity per parameter;
//                       adam / adamw: m for every parameter, then v for every parameter; plain sgd: none;
//                       then x [B, C, H, W] f32, labels [B] i32, lr f32 scalar, step i32 scalar (the
//                       1-based global step, for Adam's bias correction; unused by sgd), then per
//                       dropout / dropPath node in plan order "<node>.keep" [B, per-example decisions]
//                       f32 (1 kept, 0 dropped; drawn by the host, as the original passes its drop masks)
//   train step results  the updated parameters, the updated optimizer state (same order), the mean loss
//                       f32 scalar (before the update), then per BatchNorm layer in step order its batch
//                       mean [C] and biased batch variance [C] (the caller updates the running statistics:
//                       running = (1 - m) running + m batch, m = 1 on step 1, 0.1 afterwards); with
//                       ExportOptions::logits (`veridl export --logits`) last the logits [B, classes]
//   eval inputs         the parameters, then per BatchNorm layer its running mean and running variance,
//                       then x [B, C, H, W] f32;  result: logits [B, classes] f32
// The learning rate is computed by the host (train::lr_at: warmup + cosine) and passed in as `lr`.
//
// "Emitted from the same table": the module is produced by walking the plan's nodes forward and then in
// reverse, exactly as net::Executor does, calling each node's primitive's emit_forward / emit_backward
// (prims/<name>.cpp, through prims::table()). Each emitter's backward is the closed form of the
// registered contracts its primitive lists (contracts(); `veridl verify` checks them exactly), and every
// op it writes carries the contract's name in a trailing comment. Fan-out gradients are added (the plan's
// accumulate edges). Branch conventions are those of the native kernels: ReLU'(0) = 0
// (strict >), max-pool ties go to the first maximum in row-major window order (only it gets the gradient).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veridl/net/plan.hpp"
#include "veridl/train/optimizer.hpp"

namespace veridl::hlo {

// Deliberate exporter faults, for the tests that prove the IREE comparison bites (graph/ir.hpp).
using ExportFault = graph::ExportFault;

struct ExportOptions {
  bool eval = false;
  // The train step also returns the forward's logits [B, classes], as its last result: the host counts the batch's
  // training accuracy from them (the IREE trainer, python/veridl/iree.py; first maximum wins, as the native step).
  bool logits = false;
  train::OptimConfig optim;  // the update of the train step (kind, momentum, betas, eps, weight decay, clip)
  ExportFault fault = ExportFault::None;
};

// One tensor of the calling convention.
struct TensorSig {
  std::string name;            // e.g. "layers.1.weight", "m.layers.1.weight", "x", "loss"
  std::vector<int64_t> shape;  // {} for a scalar
  std::string dtype;           // "f32" or "i32"
};
struct Signature {
  std::vector<TensorSig> inputs, outputs;
};

// The function's inputs and results for this plan and these options (what the module's @main takes).
Signature signature(const net::Plan& plan, const ExportOptions& opt);

// The module text. Throws veridl::Error for what the exporter cannot express (one line naming the field).
std::string export_stablehlo(const net::Plan& plan, const ExportOptions& opt);

}  // namespace veridl::hlo
