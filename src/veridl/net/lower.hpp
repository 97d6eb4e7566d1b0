// Lowering: NetSpec -> graph IR (graph/ir.hpp), in one place. Layers that are primitives become one
// node (plus the node of their "activation", when it is not identity); block layers expand into a subgraph
// here (convBn = conv2d without bias -> batchNorm -> relu); "repeat" layers repeat their body. Every shape
// is inferred once, by the primitives' infer, and every parameter tensor is declared once, by the
// primitives' declare: NetSpec::param_count, veridl info, the plan and the exporter all read this graph.
//
// Names: layer i of the list is node "layers.<i>" unless it has a "name"; a block's inner nodes append
// ".bn", ".relu"; an activation node appends ".<activation>". Parameters are "<node>.<local>"
// ("layers.1.weight", "layers.0.bn.gamma"), running state likewise ("layers.0.bn.running_mean").
#pragma once

#include <string>

#include "veridl/graph/ir.hpp"
#include "veridl/net/netspec.hpp"

namespace veridl::net {

// The network's graph, validated, without the loss. Throws veridl::Error naming `source` and the layer.
graph::Graph lower(const NetSpec& spec, const std::string& source);
// Appends the loss node (softmax cross-entropy against the logits, this label smoothing).
void add_loss(graph::Graph& g, double label_smoothing);

// Block layers (not primitives): their normalised fields, read through `f`; nullopt when `type` is none.
std::optional<nlohmann::json> parse_block(const std::string& type, graph::Fields& f);
// Throws unless `act` is "identity" or a primitive of the table usable as an activation; `field` names the
// field in the message ("field 'activation' ..." style: "activation 'x' is not supported (supported: ...)").
void check_activation(const std::string& act, const graph::Where& w, const std::string& field);
// Every layer type a NetSpec may use, for messages: "add, batchNorm, conv2d, convBn, ..."
std::string layer_types();
// The block layer types in table order, each with its parse function (for the NetSpec reference, which reads
// it through graph::Fields::describe()) and its reference (blocks_doc.cpp; nullptr when it has none).
struct BlockInfo {
  std::string name;
  nlohmann::json (*parse)(graph::Fields&);
  const graph::LayerDoc* doc;
};
std::vector<BlockInfo> blocks();
const graph::LayerDoc* block_doc(std::string_view name);  // blocks_doc.cpp

}  // namespace veridl::net
