#include "veridl/net/lower.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/plumbing_fault.hpp"

namespace veridl::net {

using graph::Graph;
using graph::VShape;
using graph::Where;
using nlohmann::json;

void check_activation(const std::string& act, const Where& w, const std::string& field) {
  std::string supported = "identity";
  bool ok = act == "identity";
  for (const auto& p : prims::table())
    if (p.is_activation) {
      supported += ", " + p.name;
      ok = ok || act == p.name;
    }
  if (!ok) w.fail(fmt::format("{} '{}' is not supported (supported: {})", field, act, supported));
}

namespace {

constexpr size_t kMaxActivation = size_t{1} << 28;  // features per example of any activation
constexpr size_t kMaxNodes = size_t{1} << 16;

// ---- blocks -------------------------------------------------------------------------------------------
// An optional "activation" field of a block: one of the table's activations or "identity"; without a default
// (convBn: the net's convBnActivation) it is left out of the block's fields when absent.
void activation_field(graph::Fields& f, json& j, std::optional<std::string> dflt) {
  if (!dflt && !f.has("activation")) {
    f.allow("activation");
    return;
  }
  const std::string act = f.str("activation", dflt);
  check_activation(act, f.where(), "activation");
  j["activation"] = act;
}

// A size field the layer may leave out (0: inferred from its input when lowered, see input_size).
void inferable_field(graph::Fields& f, json& j, const char* key) {
  if (const size_t v = f.inferable(key)) j[key] = v;
}

// ic oc: the channels of every block that reads and writes a C x H x W value (convNextDownsample: all of it).
json ic_oc_fields(graph::Fields& f) {
  json j;
  inferable_field(f, j, "ic");
  j["oc"] = f.size("oc");
  return j;
}

json conv_fields(graph::Fields& f) {
  json j = ic_oc_fields(f);
  j["k"] = f.size("k");
  j["stride"] = f.size("stride", 1);
  j["padding"] = f.choice("padding", {"same", "valid"}, "same");
  const size_t groups = f.size("groups", 1);
  if (groups != 1) j["groups"] = groups;
  activation_field(f, j, std::nullopt);
  return j;
}

// residualBlock / bottleneckBlock: ic oc nBlocks firstStride.
json stage_fields(graph::Fields& f) {
  json j = ic_oc_fields(f);
  j["nBlocks"] = f.size("nBlocks", 1);
  j["firstStride"] = f.size("firstStride", 1);
  return j;
}

// invertedResidual: ic oc expand stride nBlocks.
json inverted_residual_fields(graph::Fields& f) {
  json j = ic_oc_fields(f);
  j["expand"] = f.size("expand");
  j["stride"] = f.size("stride", 1);
  j["nBlocks"] = f.size("nBlocks", 1);
  return j;
}

// mbConv: ic oc expand k stride nBlocks useSE seBase activation (EfficientNet).
json mbconv_fields(graph::Fields& f) {
  json j = inverted_residual_fields(f);
  j["k"] = f.size("k");
  j["useSE"] = f.boolean("useSE", true);
  j["seBase"] = f.choice("seBase", {"input", "expanded"}, "input");
  activation_field(f, j, "swish");
  return j;
}

// convNextStem: ic oc patch.
json convnext_stem_fields(graph::Fields& f) {
  json j = ic_oc_fields(f);
  j["patch"] = f.size("patch", 4);
  return j;
}

// convNextStage: c nBlocks layerScale activation.
json convnext_stage_fields(graph::Fields& f) {
  json j;
  inferable_field(f, j, "c");
  j["nBlocks"] = f.size("nBlocks", 1);
  j["layerScale"] = f.real("layerScale", 1e-6);
  if (!std::isfinite(j["layerScale"].get<double>()))
    f.where().fail(fmt::format("field 'layerScale' must be a finite number, got {}", j["layerScale"].get<double>()));
  activation_field(f, j, "gelu");
  return j;
}

// patchEmbed: ic dim p nPatches (ViT).
json patch_embed_fields(graph::Fields& f) {
  json j;
  inferable_field(f, j, "ic");
  j["dim"] = f.size("dim");
  j["p"] = f.size("p");
  inferable_field(f, j, "nPatches");
  return j;
}

// transformerEncoder: dim heads mlpDim nBlocks causalMask keepSequence activation.
json transformer_fields(graph::Fields& f) {
  json j;
  inferable_field(f, j, "dim");
  j["heads"] = f.size("heads");
  j["mlpDim"] = f.size("mlpDim");
  j["nBlocks"] = f.size("nBlocks", 1);
  j["causalMask"] = f.boolean("causalMask", false);
  j["keepSequence"] = f.boolean("keepSequence", false);
  activation_field(f, j, "geluErf");
  return j;
}

class Lowering;
struct BlockDef {
  const char* name;
  json (*parse)(graph::Fields&);
  // Expands the block named `name` reading value `in`; returns its output value.
  size_t (*expand)(Lowering&, const std::string& name, const json& fields, size_t in, const Where& w);
};

// The stage blocks whose blocks count in the stochastic-depth ramp (NetSpec::drop_path).
bool is_residual_stage(const std::string& type) {
  return type == "residualBlock" || type == "bottleneckBlock" || type == "invertedResidual" || type == "mbConv" ||
         type == "convNextStage" || type == "transformerEncoder";
}
// How many blocks those stages hold in `list` (a repeat's body counted once per repetition).
size_t residual_blocks(const std::vector<LayerSpec>& list) {
  size_t n = 0;
  for (const LayerSpec& l : list) {
    if (l.type == "repeat") n += l.times * residual_blocks(l.body);
    else if (is_residual_stage(l.type)) n += l.fields.at("nBlocks").get<size_t>();
  }
  return n;
}

class Lowering {
 public:
  Lowering(const NetSpec& spec, const std::string& source) : spec_(spec), source_(source) {
    g_.values.push_back({"input", VShape{{spec.channels, spec.imageH, spec.imageW}}, -1, {}});
    g_.input = 0;
    net_.pad_style = spec.pad_style;
    if (plumbing_fault() == PlumbingFault::PadStyleSwapped)  // a test's deliberate mutant (util/plumbing_fault.hpp)
      net_.pad_style = spec.pad_style == PadStyle::XlaSame ? PadStyle::Symmetric : PadStyle::XlaSame;
    if (spec.drop_path > 0) blocks_ = residual_blocks(spec.layers);
  }

  // Block `block`'s branch `branch`, through a dropPath node when the net has stochastic depth and the block
  // has a skip connection ("<block>.drop"). Every residual-stage block calls it once, in net order, skip or
  // not: block i of n drops with rate dropPath * i / (n - 1), so block 0 has none.
  size_t drop_path(const std::string& block, size_t branch, bool has_skip, const Where& w) {
    return drop_branch(block + ".drop", branch, has_skip ? drop_rate() : (block_++, 0.0), w);
  }
  // The next block's drop-path rate (0: none), for a block with several branches (a transformer block's
  // attention and MLP branches drop with the block's one rate).
  double drop_rate() {
    const size_t i = block_++;
    if (blocks_ < 2 || i == 0) return 0.0;
    return spec_.drop_path * static_cast<double>(i) / static_cast<double>(blocks_ - 1);
  }
  // `branch` through a dropPath node `name` with `rate`, or `branch` itself when the rate is 0.
  size_t drop_branch(const std::string& name, size_t branch, double rate, const Where& w) {
    if (rate <= 0.0) return branch;
    return node("dropPath", name, {{"rate", rate}}, {branch}, w);
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
      g_.params.push_back({name + "." + p.name, p.shape, g_.n_params, size, p.fan_in, p.init, p.bias, p.value, p.no_decay});
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
  const std::string& conv_bn_act() const { return spec_.conv_bn_activation; }
  const VShape& shape(size_t value) const { return g_.values[value].shape; }

 private:
  const NetSpec& spec_;
  std::string source_;
  graph::NetContext net_;
  Graph g_;
  std::set<std::string> taken_;
  std::string last_type_;
  size_t blocks_ = 0, block_ = 0;  // residual-stage blocks in the net (when it has stochastic depth), lowered so far
};

// ---- the blocks' expansions ---------------------------------------------------------------------------
// A block's size field `key`: as given, or (left out) extent `axis` of its input: the channels of a C x H x W
// input (axis 0), a token's width (axis 1 of [T, D]). A given value that disagrees with the input is reported
// by the first node that reads it.
size_t input_size(Lowering& L, const json& f, const char* key, size_t in, size_t axis, const Where& w) {
  if (f.contains(key)) return f[key];
  const VShape& x = L.shape(in);
  const size_t rank = axis == 0 ? 3 : 2;
  if (x.rank() != rank)
    w.fail(fmt::format("field '{}' left out, to be inferred from the input, but the input is {} ({} expected)", key,
                       x.str(), rank == 3 ? "C x H x W" : "tokens [T, D]"));
  return x.d[axis];
}

struct ConvBn {
  size_t ic, oc, k, stride = 1, groups = 1;
  std::string act;  // "identity": no activation node
  std::string padding = "same";
};

// conv2d (no bias) -> batchNorm -> activation, nodes "<name>", "<name>.bn", "<name>.<act>".
size_t conv_bn(Lowering& L, const std::string& name, const ConvBn& c, size_t in, const Where& w) {
  json conv{{"ic", c.ic}, {"oc", c.oc}, {"k", c.k}, {"stride", c.stride}, {"padding", c.padding}, {"bias", false}};
  if (c.groups != 1) conv["groups"] = c.groups;
  const size_t y = L.node("conv2d", name, conv, {in}, w);
  const size_t b = L.node("batchNorm", name + ".bn", json::object(), {y}, w);
  return L.activation(c.act, name, b, w);
}

// convBn: conv2d (no bias) -> batchNorm -> the layer's "activation", else the net's convBnActivation.
size_t expand_conv_bn(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  ConvBn c{input_size(L, f, "ic", in, 0, w), f["oc"], f["k"], f["stride"], f.value("groups", size_t{1}), f.value("activation", L.conv_bn_act()),
           f["padding"]};
  return conv_bn(L, name, c, in, w);
}

// The sum of a block's main path and its shortcut: "<name>.add".
size_t residual_add(Lowering& L, const std::string& name, size_t main, size_t skip, const Where& w) {
  return L.node("add", name + ".add", json::object(), {main, skip}, w);
}

// The shortcut of block 0 of a stage: the input itself, or a 1x1 stride-s conv + BatchNorm projection when
// the channels or the stride change ("<block>.proj", "<block>.proj.bn").
size_t shortcut(Lowering& L, const std::string& block, size_t ic, size_t oc, size_t stride, size_t in, const Where& w) {
  if (ic == oc && stride == 1) return in;
  return conv_bn(L, block + ".proj", {ic, oc, 1, stride, 1, "identity"}, in, w);
}

Where block_where(const Where& w, size_t j) {
  Where b = w;
  b.prefix = fmt::format("{}block {}: ", w.prefix, j);
  return b;
}

// The blocks of a stage: block j (named "<name>.<j>", errors prefixed "block j: ") reads bic = ic channels
// with stride s0 when j = 0, else oc channels with stride 1; body(b, wj, bic, s, cur) lowers one block on
// the value cur and returns its output.
template <class Body>
size_t stage(const std::string& name, size_t n, size_t ic, size_t oc, size_t s0, size_t in, const Where& w, Body body) {
  size_t cur = in;
  for (size_t j = 0; j < n; ++j)
    cur = body(fmt::format("{}.{}", name, j), block_where(w, j), j == 0 ? ic : oc, j == 0 ? s0 : 1, cur);
  return cur;
}

// A ResNet stage (residualBlock, bottleneckBlock): per block, main(b, wj, bic, s, cur) lowers the main path,
// then "+ shortcut -> act".
template <class Main>
size_t resnet_stage(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w, Main main) {
  const size_t oc = f["oc"];
  const std::string act = L.conv_bn_act();
  return stage(name, f["nBlocks"], input_size(L, f, "ic", in, 0, w), oc, f["firstStride"], in, w,
               [&](const std::string& b, const Where& wj, size_t bic, size_t s, size_t cur) {
                 const size_t y = L.drop_path(b, main(b, wj, bic, s, cur), true, wj);
                 const size_t sum = residual_add(L, b, y, shortcut(L, b, bic, oc, s, cur, wj), wj);
                 return L.activation(act, b, sum, wj);
               });
}

// residualBlock ic oc nBlocks firstStride (ResNet-18/34 basic blocks; original-system.md 1.2):
//   conv3x3(stride)-BN-act -> conv3x3-BN -> + shortcut -> act
// Nodes "<name>.<j>.conv1" (".bn", ".<act>"), ".conv2", ".proj", ".add", ".<act>".
size_t expand_residual(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t oc = f["oc"];
  const std::string act = L.conv_bn_act();
  return resnet_stage(L, name, f, in, w, [&](const std::string& b, const Where& wj, size_t bic, size_t s, size_t cur) {
    const size_t y = conv_bn(L, b + ".conv1", {bic, oc, 3, s, 1, act}, cur, wj);
    return conv_bn(L, b + ".conv2", {oc, oc, 3, 1, 1, "identity"}, y, wj);
  });
}

// bottleneckBlock ic oc nBlocks firstStride (ResNet-50 v1.5, as torchvision: the stride on the 3x3):
//   mid = oc / 4; conv1x1(mid)-BN-act -> conv3x3(mid, stride)-BN-act -> conv1x1(oc)-BN -> + shortcut -> act
size_t expand_bottleneck(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t oc = f["oc"];
  if (oc % 4 != 0) w.fail(fmt::format("field 'oc' is {}: a bottleneck's width is oc / 4, so oc must be a multiple of 4", oc));
  const size_t mid = oc / 4;
  const std::string act = L.conv_bn_act();
  return resnet_stage(L, name, f, in, w, [&](const std::string& b, const Where& wj, size_t bic, size_t s, size_t cur) {
    size_t y = conv_bn(L, b + ".conv1", {bic, mid, 1, 1, 1, act}, cur, wj);
    y = conv_bn(L, b + ".conv2", {mid, mid, 3, s, 1, act}, y, wj);
    return conv_bn(L, b + ".conv3", {mid, oc, 1, 1, 1, "identity"}, y, wj);
  });
}

// Squeeze-and-excitation on x (mid channels, C x H x W) with a bottleneck of `se` channels (book ch. 8):
//   s = sigmoid(dense(se -> mid)(act(dense(mid -> se)(globalAvgPool(x)))));  y = x (.) s per channel
// The two 1x1 convs of torchvision's SqueezeExcitation act on a 1x1 map: dense layers with bias, the same
// parameters (W [mid, se] and [se, mid], biases [se] and [mid]). Nodes "<b>.se.pool", ".se.reduce" (then
// ".se.reduce.<act>"), ".se.expand" (".se.expand.sigmoid"), ".se.scale" (the mul).
size_t squeeze_excitation(Lowering& L, const std::string& b, size_t mid, size_t se, const std::string& act, size_t x,
                          const Where& w) {
  size_t s = L.node("globalAvgPool", b + ".se.pool", json::object(), {x}, w);
  s = L.node("dense", b + ".se.reduce", {{"fanIn", mid}, {"fanOut", se}}, {s}, w);
  s = L.activation(act, b + ".se.reduce", s, w);
  s = L.node("dense", b + ".se.expand", {{"fanIn", se}, {"fanOut", mid}}, {s}, w);
  s = L.activation("sigmoid", b + ".se.expand", s, w);
  return L.node("mul", b + ".se.scale", json::object(), {x, s}, w);
}

// The inverted-residual stage of MobileNetV2 and EfficientNet: per block, mid = bic * expand:
//   [conv1x1(mid)-BN-act if expand != 1] -> depthwise conv kxk(stride)-BN-act -> [squeeze-excitation of
//   width se_width(bic, mid), none when 0] -> conv1x1(oc)-BN (linear) -> + the block input when the stride
//   is 1 and bic == oc (no projection shortcut)
// Nodes "<name>.<j>.expand", ".dw", ".se.*", ".project", ".add".
template <class SeWidth>
size_t inverted_stage(Lowering& L, const std::string& name, const json& f, size_t k, const std::string& act,
                      SeWidth se_width, size_t in, const Where& w) {
  const size_t oc = f["oc"], t = f["expand"];
  return stage(name, f["nBlocks"], input_size(L, f, "ic", in, 0, w), oc, f["stride"], in, w,
               [&](const std::string& b, const Where& wj, size_t bic, size_t s, size_t cur) {
                 size_t mid = 0;
                 if (__builtin_mul_overflow(bic, t, &mid) || mid > (size_t{1} << 24))
                   w.fail(fmt::format("field 'expand' is {}: {} x {} channels is absurdly wide", t, bic, t));
                 size_t y = cur;
                 if (t != 1) y = conv_bn(L, b + ".expand", {bic, mid, 1, 1, 1, act}, y, wj);
                 y = conv_bn(L, b + ".dw", {mid, mid, k, s, mid, act}, y, wj);
                 if (const size_t se = se_width(bic, mid)) y = squeeze_excitation(L, b, mid, se, act, y, wj);
                 y = conv_bn(L, b + ".project", {mid, oc, 1, 1, 1, "identity"}, y, wj);
                 const bool skip = s == 1 && bic == oc;
                 y = L.drop_path(b, y, skip, wj);
                 return skip ? residual_add(L, b, y, cur, wj) : y;
               });
}

// invertedResidual ic oc expand stride nBlocks (MobileNetV2): the inverted-residual stage with a 3x3
// depthwise conv and no squeeze-excitation; act: the net's convBnActivation (relu6 in specs/mobilenetv2.json).
size_t expand_inverted_residual(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  return inverted_stage(L, name, f, 3, L.conv_bn_act(), [](size_t, size_t) { return size_t{0}; }, in, w);
}

// mbConv ic oc expand k stride nBlocks useSE seBase activation (EfficientNet's MBConv; original-system.md
// section 1.2, torchvision's efficientnet_b0): the inverted-residual stage with a kxk depthwise conv, the
// layer's "activation" (swish) and, when useSE, squeeze-excitation of width max(1, bic / 4). seBase
// "expanded" takes the SE width from mid instead of bic: the original's paramShapes / codegen layout
// (7,155,658 parameters for EfficientNet-B0, docs/netspec.md).
size_t expand_mbconv(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t k = f["k"];
  const bool use_se = f["useSE"], se_from_mid = f["seBase"] == "expanded";
  if (k % 2 == 0) w.fail(fmt::format("field 'k' is {}: an mbConv's depthwise kernel must be odd (centred 'same' padding)", k));
  auto se_width = [&](size_t bic, size_t mid) { return use_se ? std::max<size_t>(1, (se_from_mid ? mid : bic) / 4) : 0; };
  return inverted_stage(L, name, f, k, f["activation"], se_width, in, w);
}

// ConvNeXt's LayerNorm: channels first (LayerNorm2d), eps 1e-6. Node "<name>".
size_t convnext_norm(Lowering& L, const std::string& name, size_t in, const Where& w) {
  return L.node("layerNorm", name, {{"axis", "channels"}, {"eps", 1e-6}}, {in}, w);
}

// A conv2d with bias and no activation node: "same" padding when stride is 1 (the 7x7 depthwise, the 1x1s),
// else "valid" (patchify and downsample convs, k = stride, on sizes check_divisible accepted).
size_t conv_bias(Lowering& L, const std::string& name, size_t ic, size_t oc, size_t k, size_t stride, size_t groups,
                 size_t in, const Where& w) {
  json conv{{"ic", ic}, {"oc", oc}, {"k", k}, {"stride", stride}, {"padding", stride == 1 ? "same" : "valid"}, {"bias", true}};
  if (groups != 1) conv["groups"] = groups;
  return L.node("conv2d", name, conv, {in}, w);
}

// The input's H and W must be multiples of `m` (a patchify stem, a 2x2 downsample): else one line that starts
// with `what` (the field or the conv at fault).
void check_divisible(Lowering& L, size_t in, size_t m, const std::string& what, const Where& w) {
  const VShape& x = L.shape(in);
  if (x.rank() != 3) w.fail(fmt::format("needs a C x H x W input, got {}", x.str()));
  if (x.d[1] % m || x.d[2] % m)
    w.fail(fmt::format("{}: the input is {}, whose H and W must be multiples of {}", what, x.str(), m));
}

// convNextStem ic oc patch: the patchify conv patch x patch / stride patch with bias, then the channels-first
// LayerNorm. Nodes "<name>", "<name>.ln".
size_t expand_convnext_stem(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t p = f["patch"];
  check_divisible(L, in, p, fmt::format("field 'patch' is {}", p), w);
  const size_t y = conv_bias(L, name, input_size(L, f, "ic", in, 0, w), f["oc"], p, p, 1, in, w);
  return convnext_norm(L, name + ".ln", y, w);
}

// convNextStage c nBlocks layerScale activation: nBlocks ConvNeXt blocks on c channels (torchvision's CNBlock):
//   depthwise conv 7x7 (bias) -> LayerNorm (channels, eps 1e-6) -> conv1x1 c -> 4c (bias) -> act (gelu) ->
//   conv1x1 4c -> c (bias) -> layerScale (gamma starts at `layerScale`) -> + the block input
// Nodes "<name>.<j>.dw", ".ln", ".pw1" (".pw1.<act>"), ".pw2", ".ls", ".add".
size_t expand_convnext_stage(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t c = input_size(L, f, "c", in, 0, w);
  const std::string act = f["activation"];
  if (c > (size_t{1} << 22)) w.fail(fmt::format("field 'c' is {}: 4 x {} channels is absurdly wide", c, c));
  const VShape& x = L.shape(in);
  if (x.rank() != 3 || x.d[0] != c) w.fail(fmt::format("field 'c' is {} but the input is {}", c, x.str()));
  return stage(name, f["nBlocks"], c, c, 1, in, w, [&](const std::string& b, const Where& wj, size_t, size_t, size_t cur) {
    size_t y = conv_bias(L, b + ".dw", c, c, 7, 1, c, cur, wj);
    y = convnext_norm(L, b + ".ln", y, wj);
    y = L.activation(act, b + ".pw1", conv_bias(L, b + ".pw1", c, 4 * c, 1, 1, 1, y, wj), wj);
    y = conv_bias(L, b + ".pw2", 4 * c, c, 1, 1, 1, y, wj);
    y = L.node("layerScale", b + ".ls", {{"init", f["layerScale"]}}, {y}, wj);
    return residual_add(L, b, L.drop_path(b, y, true, wj), cur, wj);
  });
}

// convNextDownsample ic oc: LayerNorm (channels, eps 1e-6) then conv 2x2 stride 2 with bias. Nodes
// "<name>.ln", "<name>".
size_t expand_convnext_downsample(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  check_divisible(L, in, 2, "its 2x2 stride-2 conv", w);
  const size_t y = convnext_norm(L, name + ".ln", in, w);
  return conv_bias(L, name, input_size(L, f, "ic", in, 0, w), f["oc"], 2, 2, 1, y, w);
}

// patchEmbed ic dim p nPatches (ViT): the patchify conv p x p / stride p with bias ("<name>"), then the tokens:
// the CLS token prepended and the position embedding added ("<name>.tokens", patchTokens). Output
// [nPatches + 1, dim].
size_t expand_patch_embed(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t p = f["p"];
  check_divisible(L, in, p, fmt::format("field 'p' is {}", p), w);
  const VShape& x = L.shape(in);
  const size_t got = (x.d[1] / p) * (x.d[2] / p), np = f.value("nPatches", got);
  if (np != got)
    w.fail(fmt::format("field 'nPatches' is {} but a {} input cut into {}x{} patches has {}", np, x.str(), p, p, got));
  const size_t y = conv_bias(L, name, input_size(L, f, "ic", in, 0, w), f["dim"], p, p, 1, in, w);
  return L.node("patchTokens", name + ".tokens", json::object(), {y}, w);
}

// transformerEncoder dim heads mlpDim nBlocks causalMask keepSequence activation (ViT, the original's pre-norm
// blocks; timm's Block with separate q, k, v projections): block j ("<name>.<j>") on tokens x [T, dim]:
//   a = LN1(x) (eps 1e-6)            ".ln1"
//   h = x + drop(proj(sdpa(q(a), k(a), v(a))))      ".q", ".k", ".v" (dense dim -> dim), ".attn", ".proj",
//                                                    ".drop1", ".add1"
//   out = h + drop(fc2(act(fc1(LN2(h)))))           ".ln2", ".fc1" (dim -> mlpDim, then ".fc1.<act>"),
//                                                    ".fc2" (mlpDim -> dim), ".drop2", ".add2"
// then the final LayerNorm "<name>.ln" and, unless keepSequence, the CLS row "<name>.cls" ([dim]).
size_t expand_transformer(Lowering& L, const std::string& name, const json& f, size_t in, const Where& w) {
  const size_t dim = input_size(L, f, "dim", in, 1, w), heads = f["heads"], mlp = f["mlpDim"];
  const std::string act = f["activation"];
  const VShape& x = L.shape(in);
  if (x.rank() != 2 || x.d[1] != dim)
    w.fail(fmt::format("field 'dim' is {} but the input is {} (tokens [T, {}] expected{})", dim, x.str(), dim,
                       x.rank() == 3 ? ": a patchEmbed turns an image into tokens" : ""));
  if (dim % heads) w.fail(fmt::format("field 'heads' is {}, which does not divide dim {}", heads, dim));
  const json ln{{"axis", "last"}, {"eps", 1e-6}};
  auto dense = [&](const std::string& n, size_t fi, size_t fo, size_t v, const Where& wj) {
    return L.node("dense", n, {{"fanIn", fi}, {"fanOut", fo}}, {v}, wj);
  };
  size_t cur = in;
  for (size_t j = 0; j < f["nBlocks"].get<size_t>(); ++j) {
    const std::string b = fmt::format("{}.{}", name, j);
    const Where wj = block_where(w, j);
    const double rate = L.drop_rate();
    const size_t a = L.node("layerNorm", b + ".ln1", ln, {cur}, wj);
    const size_t q = dense(b + ".q", dim, dim, a, wj), k = dense(b + ".k", dim, dim, a, wj), v = dense(b + ".v", dim, dim, a, wj);
    const size_t att = L.node("sdpa", b + ".attn", {{"heads", heads}, {"causal", f["causalMask"]}}, {q, k, v}, wj);
    const size_t y = dense(b + ".proj", dim, dim, att, wj);
    const size_t h = L.node("add", b + ".add1", json::object(), {L.drop_branch(b + ".drop1", y, rate, wj), cur}, wj);
    size_t z = L.node("layerNorm", b + ".ln2", ln, {h}, wj);
    z = L.activation(act, b + ".fc1", dense(b + ".fc1", dim, mlp, z, wj), wj);
    z = dense(b + ".fc2", mlp, dim, z, wj);
    cur = L.node("add", b + ".add2", json::object(), {L.drop_branch(b + ".drop2", z, rate, wj), h}, wj);
  }
  cur = L.node("layerNorm", name + ".ln", ln, {cur}, w);
  if (f["keepSequence"].get<bool>()) return cur;
  return L.node("clsPool", name + ".cls", json::object(), {cur}, w);
}

const BlockDef kBlocks[] = {
    {"convBn", conv_fields, expand_conv_bn},
    {"residualBlock", stage_fields, expand_residual},
    {"bottleneckBlock", stage_fields, expand_bottleneck},
    {"invertedResidual", inverted_residual_fields, expand_inverted_residual},
    {"mbConv", mbconv_fields, expand_mbconv},
    {"convNextStem", convnext_stem_fields, expand_convnext_stem},
    {"convNextStage", convnext_stage_fields, expand_convnext_stage},
    {"convNextDownsample", ic_oc_fields, expand_convnext_downsample},
    {"patchEmbed", patch_embed_fields, expand_patch_embed},
    {"transformerEncoder", transformer_fields, expand_transformer},
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

std::vector<BlockInfo> blocks() {
  std::vector<BlockInfo> v;
  for (const BlockDef& b : kBlocks) v.push_back({b.name, b.parse, block_doc(b.name)});
  return v;
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
