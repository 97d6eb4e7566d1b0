// The primitive interface and the graph IR it runs on.
//
// A primitive (prims/<name>/primitive.hpp) is one struct P that declares, once, everything the system
// needs of it:
//
//   static constexpr const char* kName                  its name in NetSpecs, plans, checkpoints and docs
//   static constexpr LayerUse kLayer                    how NetSpecs may use it (a layer, with or without an
//                                                       "activation" field, or internal: the loss)
//   static constexpr size_t kInputs                     how many values it consumes
//   struct Attrs                                        its attributes (parsed) and resolved shapes (infer)
//   static Attrs parse(Fields&)                         read and validate its NetSpec fields
//   static const LayerDoc& doc()                        its NetSpec reference (doc.cpp): inputs, what it
//                                                       computes, each field's meaning (docs/netspec.md)
//   static void to_json(const Attrs&, nlohmann::json&)  write them back, normalised
//   static VShape infer(Attrs&, const InShapes&, const Where&)   check input shapes (one-line errors via
//                                                       Where::fail), resolve its shapes, give the output shape
//   static void declare(const Attrs&, Decl&)            parameter tensors, running state, saved buffers, what
//                                                       its backward reads
//   template <class T, class Backend> static void forward(const Attrs&, Call<T>&)    Backend = Ref (the
//   template <class T, class Backend> static void backward(const Attrs&, Call<T>&)   templated reference, any
//                                                       scalar) or Fast (float32 kernels)
//   static void emit_forward(Emission&, const Node&)    StableHLO emitters (export)
//   static void emit_backward(Emission&, const Node&)
//   static void emit_onnx(OnnxEmission&, const Node&)   its ONNX inference form (graph/onnx.hpp; absent: none,
//                                                       as for the loss)
//   static std::vector<std::string> contracts()         the registered contracts its backward implements
//   static void register_contracts(Registry&)           registers them (prims/<name>/contracts.cpp;
//                                                       builtin_contracts() in prims/table.cpp calls it)
//   static std::vector<Example> examples()              small configurations for the table-wide tests
//
// The table (prims/all.hpp) lists the primitive types once; the runtime table (OpDef) and the per-scalar
// dispatch tables of the executor are generated from that list. Nothing outside a primitive's own files
// switches on which primitive a node is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "veridl/calculus/decisions.hpp"
#include "veridl/graph/onnx.hpp"
#include "veridl/graph/pad_style.hpp"
#include "veridl/hlo/builder.hpp"

namespace veridl {
class Registry;  // vjp/registry.hpp
}  // namespace veridl

namespace veridl::graph {

// Per-example shape of a value (the batch dimension is the plan's): {C, H, W} for images, {F} once flat.
struct VShape {
  std::vector<size_t> d;
  size_t size() const {
    size_t n = 1;
    for (size_t x : d) n *= x;
    return n;
  }
  size_t rank() const { return d.size(); }
  std::string str() const;  // "8x28x28"
  friend bool operator==(const VShape&, const VShape&) = default;
};
using InShapes = std::span<const VShape>;

// What a NetSpec-level check needs to know of the network: how "same" pads a strided window.
struct NetContext {
  PadStyle pad_style = PadStyle::XlaSame;
};

// The place an error is reported at: "<source>: <prefix>message" (one line).
struct Where {
  std::string source;  // the file (or "<string>", "NetBuilder(name)")
  std::string prefix;  // e.g. "layer 3 (conv2d): "
  NetContext net;
  [[noreturn]] void fail(const std::string& msg) const;
};

// A NetSpec layer's fields, read by a primitive's parse. Every field read (or asked for) is "known";
// finish() rejects the others with the list of known ones. Each read is also recorded (key, type, default):
// a Fields made by describe() reads no JSON at all (required fields give a placeholder) and exists only for
// that record, from which the NetSpec reference (net/reference.hpp, docs/netspec.md) takes every field's type
// and default: the code that reads a field is the one place its default is written.
struct FieldUse {
  std::string key;
  std::string type;  // "integer", "integer in [lo, hi]", "number", "bool", "string", "`a` or `b`", "" (read by other means)
  std::optional<std::string> dflt;  // as JSON text, or "inferred" (Fields::inferable); nullopt: required (or read by other means)
};
class Fields {
 public:
  Fields(const nlohmann::json& j, Where where, std::set<std::string> known = {"type"});
  static Fields describe();  // records the reads of a parse function; see above
  // A positive integer (at most 2^24); required when no default is given.
  size_t size(const char* key, std::optional<size_t> dflt = std::nullopt);
  // A positive integer the layer may leave out: 0 when absent, and infer() takes it from the input's shape.
  size_t inferable(const char* key);
  // An integer in [lo, hi].
  long long integer(const char* key, long long dflt, long long lo, long long hi);
  std::string str(const char* key, std::optional<std::string> dflt = std::nullopt);
  // One of `allowed` (message: field 'k' must be "a" or "b", got "c").
  std::string choice(const char* key, const std::vector<std::string>& allowed, std::optional<std::string> dflt);
  bool boolean(const char* key, bool dflt);
  // A number; required when no default is given.
  double real(const char* key, std::optional<double> dflt);
  void allow(const char* key);  // a field read by other means (recorded without a type)
  bool has(const char* key) const { return j_.contains(key); }
  const nlohmann::json& at(const char* key) const { return j_.at(key); }  // a field read by other means (has() first)
  void finish() const;  // unknown fields -> one-line error
  const Where& where() const { return where_; }
  bool describing() const { return describing_; }
  const std::vector<FieldUse>& uses() const { return uses_; }

 private:
  void use(const char* key, std::string type, std::optional<std::string> dflt);
  const nlohmann::json* find(const char* key, bool required);  // nullptr: absent (default), or describing

  const nlohmann::json& j_;
  Where where_;
  std::set<std::string> known_;
  std::vector<FieldUse> uses_;
  bool describing_ = false;
};

// The NetSpec reference of a layer type (a primitive's prims/<name>/doc.cpp, a block's net/blocks_doc.cpp):
// what it reads and computes, and what each of its fields means. Types and defaults come from the parse
// function's reads (FieldUse); `type` and `dflt` here only for a field read by other means or whose
// default is not a constant (a pool's stride, = size).
struct FieldDoc {
  const char* key;
  const char* meaning;
  const char* type = nullptr;
  const char* dflt = nullptr;
};
struct LayerDoc {
  const char* inputs;
  const char* computes;
  std::vector<FieldDoc> fields;
};

// How a primitive appears in NetSpecs.
enum class LayerUse {
  Layer,                // a layer type of its own
  LayerWithActivation,  // a layer type with an "activation" field (default: kActivation)
  Internal,             // added by the lowering only (the loss)
};

enum class Init { He, Zero, One, Const };  // Const: every element ParamDecl::value (LayerScale's gamma)
struct ParamDecl {
  std::string name;  // local: "weight", "bias", "gamma", "beta"
  std::vector<int64_t> shape;
  size_t fan_in = 0;  // He initialisation scale (0: not a weight)
  Init init = Init::Zero;
  bool bias = false;  // an additive offset (bias, beta): what Fault::DropBiasGrad zeroes
  float value = 0.0f;  // Init::Const: the value
  bool no_decay = false;  // never weight-decayed though rank >= 2 (a learned embedding: ViT's position embedding)
};
// Running state (BatchNorm's statistics): kept across steps, saved in checkpoints, an input of the
// exported eval module; `batch_name` is the per-step value the exported train step returns for it.
struct StateDecl {
  std::string name, batch_name;
  size_t size = 0;
  float init = 0.0f;
};
// Scalar: the executor's T; F64: double whatever T is (the float kernels' double statistics, e.g. BatchNorm's).
enum class Elem { Scalar, U8, U32, F64 };
// A buffer a forward fills for its backward: per_example * batch + fixed elements.
struct SavedDecl {
  Elem elem = Elem::Scalar;
  size_t per_example = 0, fixed = 0;
  bool training_only = false;  // not needed by an inference executor
};
struct Decl {
  std::vector<ParamDecl> params;
  std::vector<StateDecl> state;
  std::vector<SavedDecl> saved;
  std::vector<bool> bwd_reads_input;  // per input: does the backward read the input's value?
  bool bwd_reads_output = false;      // does the backward read the node's own output?
  bool view = false;                  // the output is input 0 reinterpreted (may share its memory)
  bool batched_output = true;         // false: the output is one tensor for the whole batch (the loss)
  // Random decisions per example in Train mode (dropout, dropPath): the exported train step takes them as an
  // input "<node>.keep" (f32 0/1, [batch, keep_per_example]) that the host draws.
  size_t keep_per_example = 0;
};

enum class Mode {
  Train,  // BatchNorm normalises with batch statistics (what the backward differentiates)
  Eval,   // BatchNorm uses the running statistics
};

// Backends of the executor: the templated reference (any scalar) and the float32 kernels.
struct Ref {};
struct Fast {};

// A sum over the processes of a data-parallel run (train/dist.hpp's Group): what synchronized BatchNorm all-reduces.
// sum() replaces x[i] by its sum over every process, added in process order (the same bits everywhere).
struct Collective {
  virtual ~Collective() = default;
  virtual void sum(double* x, size_t n) const = 0;
  virtual size_t parties() const = 0;  // how many processes take part (1: the sums are this process's own)
};

// One node's call: every pointer is fixed when the executor is built; n, mode, D and key are set per call.
template <class T>
struct Call {
  size_t n = 0;                    // examples in this batch (<= the plan's batch)
  std::vector<const T*> in;        // input values
  T* out = nullptr;                // the output value
  std::vector<T*> p, g;            // parameter tensors and their gradients (g: training executors)
  std::vector<T*> saved;           // Elem::Scalar saved buffers, in declaration order
  std::vector<uint8_t*> saved8;    // Elem::U8
  std::vector<uint32_t*> saved32;  // Elem::U32
  std::vector<double*> saved64;    // Elem::F64
  std::vector<T*> state;           // running state
  const T* dy = nullptr;           // backward: the output's gradient
  std::vector<T*> dx;              // backward: per input, where its gradient goes (nullptr: not wanted)
  Mode mode = Mode::Train;
  Decisions* D = nullptr;
  double running_momentum = 0.0;  // Train mode: EMA momentum of running state (0: no update)
  const int32_t* labels = nullptr;  // the loss: one label per example
  uint64_t key = 0;  // Train mode: the node's key of this step for random decisions (calculus/decisions.hpp noise::)
  // Data-parallel training (docs/distributed.md): these n examples are examples [first_example, first_example + n) of
  // a global batch of mean_over examples (0: of this batch alone). Random decisions are drawn for the global
  // positions, the loss averages over mean_over, and BatchNorm in Train mode normalises with statistics summed over
  // every process through `sync` (synchronized BatchNorm; nullptr: this batch's own statistics).
  size_t first_example = 0;
  size_t mean_over = 0;
  const Collective* sync = nullptr;
};

// A primitive's resolved shape (its Attrs' `shape`, which infer resolves for one example) at a batch of n: the
// shape's example count (N, or B in the pools' shapes) set to n.
template <class S>
S batch_of(S s, size_t n) {
  if constexpr (requires { s.N; }) s.N = n;
  else s.B = n;
  return s;
}

// ---- the graph IR --------------------------------------------------------------------------------
struct Value {
  std::string name;
  VShape shape;
  long producer = -1;  // node index; -1 for the graph input
  std::vector<std::pair<size_t, size_t>> consumers;  // (node, input slot)
};

struct ParamTensor {
  std::string name;            // "<node>.<local>", e.g. "layers.1.weight"
  std::vector<int64_t> shape;
  size_t offset = 0, size = 0;  // in the flat parameter array
  size_t fan_in = 0;
  Init init = Init::Zero;
  bool bias = false;
  float value = 0.0f;  // Init::Const: every element's initial value
  bool no_decay = false;  // ParamDecl::no_decay
};

// The weight-decay rule, one place (the optimizer, the exporter): weights (rank >= 2) except learned embeddings.
inline bool weight_decayed(const ParamTensor& t) { return t.shape.size() >= 2 && !t.no_decay; }

struct Node {
  size_t op = 0;             // index in the primitive table
  std::string name;          // "layers.3", "layers.3.bn", "stem"
  std::string where;         // the NetSpec layer it came from, for messages: "layer 3 (convBn)"
  std::shared_ptr<const void> attrs;  // the primitive's Attrs (resolved shapes)
  std::vector<size_t> inputs;
  size_t output = 0;
  Decl decl;
  std::vector<size_t> params;  // indices into Graph::params, in decl order
  template <class A>
  const A& attrs_as() const {
    return *static_cast<const A*>(attrs.get());
  }
};

// Nodes in topological order (the order they were created in).
struct Graph {
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<ParamTensor> params;
  size_t n_params = 0;
  size_t input = 0;   // the image batch
  size_t logits = 0;  // the network's output
  long loss_node = -1;
  size_t loss = 0;    // the loss value (when loss_node >= 0)
};

// ---- StableHLO emission ------------------------------------------------------------------------------
enum class EdgeKind { None, Write, Accumulate };

// Deliberate exporter faults, for the tests that prove the IREE comparison bites (never set by the CLI):
//   DropBiasGrad         bias (and BatchNorm beta) gradients are zero, like net::Fault::DropBiasGrad
//   MaxPoolTiesToLast    the max-pool scan replaces on >= (the last maximum wins a tie)
// FlatClipSum: the global norm's squares summed per tensor by one flat float32 reduce (the exporter's old way, whose
// clip factor drifted 4e-5 from the native engine's on the MLP).
enum class ExportFault { None, DropBiasGrad, MaxPoolTiesToLast, FlatClipSum };

// The state of a module being written; emitters read their inputs and write their outputs through it.
struct Emission {
  hlo::Builder b;
  const Graph& g;
  const std::vector<std::vector<EdgeKind>>& edges;  // per node, per input (the plan's)
  int64_t B = 0;
  bool eval = false;
  ExportFault fault = ExportFault::None;
  std::vector<hlo::Val> acts, dacts;                  // per value
  std::vector<hlo::Val> params, grads;                // per parameter tensor
  std::vector<std::vector<hlo::Val>> saved;           // per node: what its forward keeps for its backward
  std::vector<std::vector<hlo::Val>> state_in;        // per node (eval): its running state
  std::vector<std::vector<hlo::Val>> state_out;       // per node (train): the batch values of its state
  std::vector<hlo::Val> keep;                         // per node (train, Decl::keep_per_example): its decisions
  hlo::Val labels;

  Emission(const Graph& gr, const std::vector<std::vector<EdgeKind>>& e, int64_t batch) : g(gr), edges(e), B(batch) {}
  const hlo::Val& in(const Node& n, size_t i) const { return acts.at(n.inputs[i]); }
  void set_out(const Node& n, hlo::Val v) { acts.at(n.output) = std::move(v); }
  const hlo::Val& dy(const Node& n) const { return dacts.at(n.output); }
  bool want_dx(const Node& n, size_t i) const { return edges.at(&n - g.nodes.data()).at(i) != EdgeKind::None; }
  void set_dx(const Node& n, size_t i, const hlo::Val& v);  // writes or accumulates, as the plan says
  const hlo::Val& param(const Node& n, size_t k) const { return params.at(n.params[k]); }
  void set_grad(const Node& n, size_t k, hlo::Val v) { grads.at(n.params[k]) = std::move(v); }
  bool drop_bias() const { return fault == ExportFault::DropBiasGrad; }
  size_t index(const Node& n) const { return static_cast<size_t>(&n - g.nodes.data()); }
};

// A small configuration of a primitive for the table-wide tests: its NetSpec fields and input shapes.
struct Example {
  std::string label;
  nlohmann::json fields;
  std::vector<VShape> inputs;
};

}  // namespace veridl::graph
