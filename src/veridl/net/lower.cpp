#include "veridl/net/lower.hpp"

#include <fmt/core.h>

#include <map>
#include <set>

#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"

namespace veridl::net {

using graph::Graph;
using graph::VShape;
using graph::Where;
using nlohmann::json;

namespace {

constexpr size_t kMaxActivation = size_t{1} << 28;  // features per example of any activation
constexpr size_t kMaxNodes = size_t{1} << 16;

// ---- blocks -------------------------------------------------------------------------------------------
json conv_fields(graph::Fields& f) {
  json j;
  j["ic"] = f.size("ic");
  j["oc"] = f.size("oc");
  j["k"] = f.size("k");
  j["stride"] = f.size("stride", 1);
  j["padding"] = f.choice("padding", {"same", "valid"}, "same");
  return j;
}

class Lowering;
struct BlockDef {
  const char* name;
  json (*parse)(graph::Fields&);
  // Expands the block named `name` reading value `in`; returns its output value.
  size_t (*expand)(Lowering&, const std::string& name, const json& fields, size_t in, const Where& w);
};

class Lowering {
 public:
  Lowering(const NetSpec& spec, const std::string& source) : spec_(spec), source_(source) {
    g_.values.push_back({"input", VShape{{spec.channels, spec.imageH, spec.imageW}}, -1, {}});
    g_.input = 0;
    net_.pad_style = spec.pad_style;
  }

  // A primitive node; returns its output value.
  size_t node(const std::string& op, const std::string& name, const json& fields, std::vector<size_t> inputs,
              const Where& w) {
    if (g_.nodes.size() >= kMaxNodes)
      w.fail(fmt::format("the network has more than {} nodes (a repeat too large?)", kMaxNodes));
    const size_t index = prims::index_of(op);
    const prims::OpDef& d = prims::table()[index];
    graph::Fields f(fields, Where{w.source, w.prefix, net_}, {});
    std::shared_ptr<void> attrs = d.parse(f);
    f.finish();
    std::vector<VShape> shapes;
    for (size_t v : inputs) shapes.push_back(g_.values[v].shape);
    const VShape out = d.infer(attrs.get(), shapes, Where{w.source, w.prefix, net_});
    size_t features = 1;
    for (size_t x : out.d)
      if (__builtin_mul_overflow(features, x, &features)) features = SIZE_MAX;
    if (features > kMaxActivation)
      w.fail(fmt::format("its {} output is absurdly large (more than {} features per example)", out.str(), kMaxActivation));
    graph::Node n;
    n.op = index;
    n.name = name;
    n.where = w.prefix;
    d.declare(attrs.get(), n.decl);
    n.attrs = std::move(attrs);
    n.inputs = inputs;
    for (const graph::ParamDecl& p : n.decl.params) {
      size_t size = 1;
      for (auto x : p.shape) size *= static_cast<size_t>(x);
      g_.params.push_back({name + "." + p.name, p.shape, g_.n_params, size, p.fan_in, p.init, p.bias});
      g_.n_params += size;
      n.params.push_back(g_.params.size() - 1);
    }
    const size_t k = g_.nodes.size();
    for (size_t i = 0; i < inputs.size(); ++i) g_.values[inputs[i]].consumers.push_back({k, i});
    g_.values.push_back({name, out, static_cast<long>(k), {}});
    n.output = g_.values.size() - 1;
    g_.nodes.push_back(std::move(n));
    return g_.nodes.back().output;
  }

  size_t activation(const std::string& act, const std::string& name, size_t in, const Where& w) {
    if (act == "identity") return in;
    return node(act, name + "." + act, json::object(), {in}, w);
  }

  // The layers of `list`, each reading the previous output `prev` unless it names inputs. `scope`: the
  // names visible in this list (a repeat body's names are local to a repetition).
  size_t layers(const std::vector<LayerSpec>& list, size_t prev, const std::string& name_prefix,
                const std::string& where_prefix, std::map<std::string, size_t> scope) {
    for (size_t i = 0; i < list.size(); ++i) {
      const LayerSpec& l = list[i];
      const std::string place = where_prefix + std::to_string(i);
      // Top level: "layers.<i>" or the layer's name; in a repeat body: "<repeat>.<r>.<j>" or "<repeat>.<r>.<name>".
      const std::string name =
          l.name.empty() ? (name_prefix.empty() ? "layers." : name_prefix) + std::to_string(i) : name_prefix + l.name;
      const Where w{source_, fmt::format("layer {} ({}): ", place, l.type), net_};
      if (taken_.count(name)) w.fail(fmt::format("name '{}' is used by an earlier layer", name));
      std::vector<size_t> in;
      for (const std::string& ref : l.inputs) {
        auto it = scope.find(ref);
        if (it == scope.end()) {
          std::string known;
          for (const auto& [k, v] : scope) known += (known.empty() ? "" : ", ") + k;
          w.fail(fmt::format("input '{}' is not an earlier layer's name (known here: {})", ref, known));
        }
        in.push_back(it->second);
      }
      size_t out;
      if (l.type == "repeat") {
        if (!l.inputs.empty() && l.inputs.size() != 1) w.fail("a repeat takes one input");
        size_t cur = in.empty() ? prev : in[0];
        for (size_t r = 0; r < l.times; ++r) {
          std::map<std::string, size_t> inner = scope;
          inner["blockInput"] = cur;  // the repetition's input, e.g. a residual's skip connection
          cur = layers(l.body, cur, fmt::format("{}.{}.", name, r), fmt::format("{}.{}.", place, r), inner);
        }
        out = cur;
      } else if (const BlockDef* b = block(l.type)) {
        if (in.size() > 1) w.fail(fmt::format("takes one input, got {}", in.size()));
        out = b->expand(*this, name, l.fields, in.empty() ? prev : in[0], w);
      } else {
        const prims::OpDef* d = prims::find(l.type);
        if (!d) w.fail("unknown layer type '" + l.type + "'");
        if (in.empty()) {
          if (d->inputs != 1)
            w.fail(fmt::format("takes {} inputs: name them in its \"inputs\" field", d->inputs));
          in.push_back(prev);
        }
        if (in.size() != d->inputs) w.fail(fmt::format("takes {} input(s), got {}", d->inputs, in.size()));
        json fields = l.fields;
        std::string act = "identity";
        if (d->activation) {
          act = fields.value("activation", d->activation);
          fields.erase("activation");
        }
        out = activation(act, name, node(l.type, name, fields, in, w), w);
      }
      taken_.insert(name);
      if (!l.name.empty()) scope[l.name] = out;
      prev = out;
      last_type_ = l.type;
    }
    return prev;
  }

  Graph finish(size_t out) {
    const Where w{source_, "", net_};
    const VShape& s = g_.values[out].shape;
    if (s.rank() != 1)
      w.fail(fmt::format("the last layer must be dense (it produces the logits), got {} (a {} output)", last_type_, s.str()));
    if (s.d[0] < 2) w.fail(fmt::format("the last dense layer has {} output(s); a classifier needs at least 2", s.d[0]));
    g_.logits = out;
    for (size_t v = 1; v < g_.values.size(); ++v)
      if (v != out && g_.values[v].consumers.empty()) {
        const graph::Node& n = g_.nodes[static_cast<size_t>(g_.values[v].producer)];
        w.fail(fmt::format("{}its output is never used (no later layer reads it)", n.where));
      }
    return std::move(g_);
  }

  static const BlockDef* block(const std::string& type);

 private:
  const NetSpec& spec_;
  std::string source_;
  graph::NetContext net_;
  Graph g_;
  std::set<std::string> taken_;
  std::string last_type_;
};

// convBn: conv2d (no bias) -> batchNorm -> relu.
size_t expand_conv_bn(Lowering& L, const std::string& name, const json& fields, size_t in, const Where& w) {
  json conv = fields;
  conv["bias"] = false;
  const size_t c = L.node("conv2d", name, conv, {in}, w);
  const size_t b = L.node("batchNorm", name + ".bn", json::object(), {c}, w);
  return L.node("relu", name + ".relu", json::object(), {b}, w);
}

const BlockDef kBlocks[] = {
    {"convBn", conv_fields, expand_conv_bn},
};

const BlockDef* Lowering::block(const std::string& type) {
  for (const BlockDef& b : kBlocks)
    if (type == b.name) return &b;
  return nullptr;
}

}  // namespace

std::optional<json> parse_block(const std::string& type, graph::Fields& f) {
  const BlockDef* b = Lowering::block(type);
  if (!b) return std::nullopt;
  return b->parse(f);
}

std::string layer_types() {
  std::set<std::string> names;
  for (const auto& d : prims::table())
    if (d.layer != graph::LayerUse::Internal) names.insert(d.name);
  for (const BlockDef& b : kBlocks) names.insert(b.name);
  names.insert("repeat");
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

Graph lower(const NetSpec& spec, const std::string& source) {
  Lowering L(spec, source);
  std::map<std::string, size_t> scope{{"input", 0}};
  const size_t out = L.layers(spec.layers, 0, "", "", scope);
  return L.finish(out);
}

void add_loss(Graph& g, double label_smoothing) {
  const size_t index = prims::index_of("softmaxCE");
  const prims::OpDef& d = prims::table()[index];
  const Where w{"<loss>", "", {}};
  const json fields{{"labelSmoothing", label_smoothing}};
  graph::Fields f(fields, w, {});
  std::shared_ptr<void> attrs = d.parse(f);
  const std::vector<VShape> in{g.values[g.logits].shape};
  const VShape out = d.infer(attrs.get(), in, w);
  graph::Node n;
  n.op = index;
  n.name = "loss";
  n.where = "loss: ";
  d.declare(attrs.get(), n.decl);
  n.attrs = std::move(attrs);
  n.inputs = {g.logits};
  const size_t k = g.nodes.size();
  g.values[g.logits].consumers.push_back({k, 0});
  g.values.push_back({"loss", out, static_cast<long>(k), {}});
  n.output = g.values.size() - 1;
  g.nodes.push_back(std::move(n));
  g.loss_node = static_cast<long>(k);
  g.loss = g.values.size() - 1;
}

}  // namespace veridl::net
