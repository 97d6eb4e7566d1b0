#include "veridl/net/fuse.hpp"

#include <memory>
#include <string_view>
#include <vector>

#include "veridl/prims/table.hpp"

namespace veridl::net {

namespace {

// Drops the dead nodes and values of g, renumbering every index that refers to the live ones.
void compact(graph::Graph& g, const std::vector<bool>& dead_node, const std::vector<bool>& dead_value) {
  std::vector<long> node_at(g.nodes.size(), -1), value_at(g.values.size(), -1);
  long next = 0;
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (!dead_node[k]) node_at[k] = next++;
  next = 0;
  for (size_t v = 0; v < g.values.size(); ++v)
    if (!dead_value[v]) value_at[v] = next++;
  auto value = [&](size_t v) { return static_cast<size_t>(value_at[v]); };
  std::vector<graph::Value> values;
  for (size_t v = 0; v < g.values.size(); ++v) {
    if (dead_value[v]) continue;
    graph::Value val = std::move(g.values[v]);
    if (val.producer >= 0) val.producer = node_at[static_cast<size_t>(val.producer)];
    for (auto& [c, slot] : val.consumers) c = static_cast<size_t>(node_at[c]);
    values.push_back(std::move(val));
  }
  std::vector<graph::Node> nodes;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (dead_node[k]) continue;
    graph::Node n = std::move(g.nodes[k]);
    for (size_t& v : n.inputs) v = value(v);
    n.output = value(n.output);
    nodes.push_back(std::move(n));
  }
  g.values = std::move(values);
  g.nodes = std::move(nodes);
  g.input = value(g.input);
  g.logits = value(g.logits);
  if (g.loss_node >= 0) {
    g.loss_node = node_at[static_cast<size_t>(g.loss_node)];
    g.loss = value(g.loss);
  }
}

// A fusion rule: a node of primitive `producer` whose output's only consumer is a node of primitive `activation`
// becomes one node, the producer with the attributes `absorb` returns (which then compute the activation too), or
// stays as it is when `absorb` returns nullptr (the producer cannot take it: already fused, say). The fused node
// keeps the producer's name and takes over the activation's output value. A new epilogue (BatchNorm -> ReLU6, a
// dense layer's ReLU) is one row here plus the producer's kernels, contracts and exports of the fused form.
struct Rule {
  std::string_view producer, activation;
  std::shared_ptr<const void> (*absorb)(const graph::Node& producer);
};

std::shared_ptr<const void> batchnorm_takes_relu(const graph::Node& n) {
  using Attrs = prims::BatchNorm::Attrs;
  if (n.attrs_as<Attrs>().relu) return nullptr;
  auto attrs = std::make_shared<Attrs>(n.attrs_as<Attrs>());
  attrs->relu = true;
  return attrs;
}

constexpr Rule kRules[] = {
    {prims::BatchNorm::kName, prims::Relu::kName, batchnorm_takes_relu},
};

}  // namespace

size_t fuse(graph::Graph& g) {
  std::vector<bool> dead_node(g.nodes.size(), false), dead_value(g.values.size(), false);
  size_t fused = 0;
  for (const Rule& rule : kRules) {
    const size_t producer = prims::index_of(rule.producer), activation = prims::index_of(rule.activation);
    for (size_t k = 0; k < g.nodes.size(); ++k) {
      const graph::Node& a = g.nodes[k];
      if (dead_node[k] || a.op != activation) continue;
      const size_t v = a.inputs.at(0);
      const graph::Value& pre = g.values[v];
      if (pre.producer < 0 || pre.consumers.size() != 1) continue;  // the pre-activation value is read elsewhere too
      graph::Node& p = g.nodes[static_cast<size_t>(pre.producer)];
      if (p.op != producer) continue;
      std::shared_ptr<const void> attrs = rule.absorb(p);
      if (!attrs) continue;
      p.decl = graph::Decl{};
      prims::table()[producer].declare(attrs.get(), p.decl);
      p.attrs = std::move(attrs);
      p.output = a.output;
      g.values[a.output].producer = pre.producer;
      dead_node[k] = true;
      dead_value[v] = true;
      ++fused;
    }
  }
  if (fused) compact(g, dead_node, dead_value);
  return fused;
}

}  // namespace veridl::net
