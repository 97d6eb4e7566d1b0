// Export of a trained network's inference graph as an ONNX model (docs/onnx.md).
//
// The model: opset 17 of the default domain, IR version 8, written with the ONNX project's own protobuf classes
// (Debian's libonnx-dev, onnx-ml.proto) and checked with its C++ checker before a byte is written.
//   input   "x"       float32 [N, C, H, W], N dynamic ("N"): the images as evaluation feeds them (already
//                     normalised when the run normalised: data::normalize_batch)
//   output  "logits"  float32 [N, classes]
//   initializers      every parameter tensor under its checkpoint name and VeriDL's layout ("layers.1.weight"
//                     [fanIn, fanOut] for dense, [oc, ic/groups, k, k] for conv2d), and every BatchNorm's running
//                     statistics ("<node>.running_mean", "<node>.running_var")
// The graph is the evaluation forward of net::Executor (Mode::Eval): BatchNorm on its running statistics,
// dropout and dropPath the identity, no loss. It is emitted from the primitive table: each node's primitive's
// emit_onnx (prims/<name>/primitive.cpp, graph/onnx.hpp). A primitive without one is refused by name.
#pragma once

#include <string>
#include <vector>

#include "veridl/graph/onnx.hpp"
#include "veridl/net/plan.hpp"

namespace veridl::onnx_export {

inline constexpr int kOpset = 17;
inline constexpr int kIrVersion = 8;

struct OnnxOptions {
  graph::OnnxFault fault = graph::OnnxFault::None;  // tests only
  std::string doc;  // the model's doc_string (e.g. the checkpoint it came from)
};

// The serialized ModelProto of `plan`'s inference graph with these parameters (the flat array, plan order) and
// running statistics ({mean, var} per BatchNorm node, Executor::running_stats() order: train::Model's). Throws
// veridl::Error (one line) for a primitive with no ONNX form, or parameters that do not fit the plan.
std::string onnx_model(const net::Plan& plan, const std::vector<float>& params,
                       const std::vector<std::vector<float>>& running, const OnnxOptions& opt = {});

// onnx_model written atomically to `path` (temporary file + rename); "<path>: ..." errors.
void write_onnx(const net::Plan& plan, const std::vector<float>& params, const std::vector<std::vector<float>>& running,
                const std::string& path, const OnnxOptions& opt = {});

}  // namespace veridl::onnx_export
