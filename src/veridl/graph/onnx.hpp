// The ONNX inference graph a network exports to (export/onnx.hpp writes it as an ONNX model file): plain data
// (nodes, attributes, constant tensors) that each primitive's ONNX emitter appends to, with no protobuf in sight.
//
// A primitive's emitter (`static void emit_onnx(OnnxEmission&, const Node&)`, beside its StableHLO emitters in
// prims/<name>/primitive.cpp) reads its inputs' tensor names from the emission and writes its output's. Every
// value of the network is one ONNX tensor of shape [N, per-example shape...] (the value's VShape behind a dynamic
// batch dimension N); an emitter reshapes to its own layout and back (OnnxGraph::reshape). Parameters are the
// exporter's initializers, named as in the plan and checkpoints ("layers.1.weight", VeriDL's own layouts: dense
// weight [fanIn, fanOut], conv weight [oc, ic/groups, k, k]); BatchNorm's running statistics likewise
// ("<node>.running_mean", "<node>.running_var"). The graph is the evaluation forward: BatchNorm on its running
// statistics, dropout and dropPath the identity, no loss.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace veridl::graph {

struct Node;
struct Graph;

struct OnnxAttr {
  enum class Kind { Int, Float, Ints, String };
  std::string name;
  Kind kind = Kind::Int;
  int64_t i = 0;
  float f = 0.0f;
  std::vector<int64_t> ints;
  std::string s;
  static OnnxAttr integer(std::string n, int64_t v) { return {std::move(n), Kind::Int, v, 0.0f, {}, {}}; }
  static OnnxAttr real(std::string n, float v) { return {std::move(n), Kind::Float, 0, v, {}, {}}; }
  static OnnxAttr list(std::string n, std::vector<int64_t> v) { return {std::move(n), Kind::Ints, 0, 0.0f, std::move(v), {}}; }
};

struct OnnxNode {
  std::string op_type, name;
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxAttr> attrs;
};

// A constant (an initializer): float32, int64 or bool data, row-major.
struct OnnxTensor {
  enum class Type { F32, I64, Bool };
  std::string name;
  std::vector<int64_t> dims;
  Type type = Type::F32;
  std::vector<float> f;
  std::vector<int64_t> i;  // I64, and Bool as 0 / 1
};

class OnnxGraph {
 public:
  // Names the nodes and tensors that follow after a VeriDL node ("layers.3/Conv", "layers.3/Conv:0").
  void begin(const std::string& prefix) { prefix_ = prefix; }
  // Appends a node with one output; returns the output's name.
  std::string op(const std::string& type, std::vector<std::string> inputs, std::vector<OnnxAttr> attrs = {});
  // A float32 constant of these dims (1 element for a scalar: dims {}).
  std::string constant(std::vector<int64_t> dims, std::vector<float> data);
  std::string scalar(float v) { return constant({}, {v}); }
  std::string ints(const std::vector<int64_t>& v);  // an int64 vector constant (shapes, axes, starts)
  std::string bools(std::vector<int64_t> dims, std::vector<int64_t> data);
  // x reshaped to [N, per_example...] (N dynamic: -1).
  std::string reshape(const std::string& x, const std::vector<int64_t>& per_example);
  std::string reshape(const std::string& x, const std::vector<size_t>& per_example);
  // An initializer under a given name (the exporter's parameters and running statistics).
  void add_initializer(OnnxTensor t) { inits_.push_back(std::move(t)); }

  const std::vector<OnnxNode>& nodes() const { return nodes_; }
  const std::vector<OnnxTensor>& initializers() const { return inits_; }

 private:
  std::string fresh(const std::string& what);
  std::string prefix_ = "graph";
  size_t counter_ = 0;
  std::vector<OnnxNode> nodes_;
  std::vector<OnnxTensor> inits_;
};

// Deliberate exporter faults, for the tests that prove the onnxruntime comparison bites (never set by the CLI):
//   BatchNormBatchStats   BatchNorm normalises with the batch's own mean and variance (training form)
//   SwappedPads           conv and pool pads given as (bottom, right, top, left): VeriDL's "same" puts the odd
//                         padding cell at the bottom / right (xlaSame); ONNX would get it at the top / left
//   DenseWeightTransposed dense multiplies by W^T (a square weight only; others are unchanged)
enum class OnnxFault { None, BatchNormBatchStats, SwappedPads, DenseWeightTransposed };

struct OnnxEmission {
  OnnxGraph o;
  const Graph& g;
  OnnxFault fault = OnnxFault::None;
  std::vector<std::string> acts;                 // per value: its tensor, [N, VShape...]
  std::vector<std::string> params;               // per parameter tensor: its initializer
  std::vector<std::vector<std::string>> state;   // per node: its running state's initializers

  explicit OnnxEmission(const Graph& gr) : g(gr) {}
  const std::string& in(const Node& n, size_t i) const;
  void set_out(const Node& n, std::string t);
  const std::string& param(const Node& n, size_t k) const;
  const std::vector<size_t>& in_shape(const Node& n, size_t i) const;  // per example
  const std::vector<size_t>& out_shape(const Node& n) const;
  size_t index(const Node& n) const;
  // Input i as [N, shape...] (reshaped when its per-example shape differs).
  std::string in_as(const Node& n, size_t i, const std::vector<size_t>& shape);
  // The output, given as [N, shape...], reshaped to the node's output shape when that differs.
  void set_out_as(const Node& n, const std::string& t, const std::vector<size_t>& shape);
  // ONNX's pads attribute (top, left, bottom, right) of a 2-d window, VeriDL's resolved pads (OnnxFault::SwappedPads
  // swaps them).
  std::vector<int64_t> pads(size_t top, size_t left, size_t bottom, size_t right) const;
};

}  // namespace veridl::graph
