#include "veridl/net/netspec.hpp"

#include <fmt/core.h>

#include <cmath>
#include <set>

#include "veridl/net/lower.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/json_depth.hpp"
#include "veridl/util/text.hpp"

namespace veridl::net {

using nlohmann::json;

const char* to_string(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Relu: return "relu";
  }
  return "?";
}

size_t NetSpec::num_classes() const {
  const graph::Graph g = lower(*this, name);
  return g.values[g.logits].shape.d[0];
}

size_t NetSpec::param_count() const { return lower(*this, name).n_params; }

namespace {

json layer_json(const LayerSpec& l) {
  json j = l.fields;
  j["type"] = l.type;
  if (!l.name.empty()) j["name"] = l.name;
  if (!l.inputs.empty()) j["inputs"] = l.inputs;
  if (l.type == "repeat") {
    j["times"] = l.times;
    j["layers"] = json::array();
    for (const auto& b : l.body) j["layers"].push_back(layer_json(b));
  }
  return j;
}

}  // namespace

json NetSpec::to_json() const {
  json j;
  j["name"] = name;
  j["imageH"] = imageH;
  j["imageW"] = imageW;
  j["channels"] = channels;
  j["padStyle"] = pad_style == PadStyle::XlaSame ? "xlaSame" : "symmetric";
  if (conv_bn_activation != "relu") j["convBnActivation"] = conv_bn_activation;
  if (drop_path > 0) j["dropPath"] = drop_path;
  j["layers"] = json::array();
  for (const auto& l : layers) j["layers"].push_back(layer_json(l));
  if (recipe) {
    j["recipe"] = {{"optimizer", recipe->optimizer},       {"lr", recipe->lr},
                   {"batch", recipe->batch},               {"epochs", recipe->epochs},
                   {"momentum", recipe->momentum},         {"labelSmoothing", recipe->label_smoothing},
                   {"weightDecay", recipe->weight_decay},  {"cosine", recipe->cosine},
                   {"warmupEpochs", recipe->warmup_epochs}, {"clipNorm", recipe->clip_norm},
                   {"augmentCropPad", recipe->augment_crop_pad}, {"augmentFlip", recipe->augment_flip}};
    // Only when set: the JSON of the specs without them (stored in every checkpoint) keeps its bytes.
    if (recipe->augment_resized_crop) j["recipe"]["augmentResizedCrop"] = true;
    if (recipe->normalize == "custom")
      j["recipe"]["normalize"] = {{"mean", recipe->normalize_mean}, {"std", recipe->normalize_std}};
    else if (recipe->normalize != "none")
      j["recipe"]["normalize"] = recipe->normalize;
    if (recipe->jitter_brightness > 0) j["recipe"]["colorJitterBrightness"] = recipe->jitter_brightness;
    if (recipe->jitter_contrast > 0) j["recipe"]["colorJitterContrast"] = recipe->jitter_contrast;
    if (recipe->jitter_saturation > 0) j["recipe"]["colorJitterSaturation"] = recipe->jitter_saturation;
    if (!recipe->dataset.empty()) j["recipe"]["dataset"] = recipe->dataset;
    if (recipe->adamw_decay != "after") j["recipe"]["adamwDecay"] = recipe->adamw_decay;
  }
  return j;
}

namespace {

constexpr size_t kMaxInputValues = size_t{1} << 28;  // values of the input image
constexpr size_t kMaxRepeat = 1024;
constexpr uint64_t kMaxNetSpecBytes = uint64_t{16} << 20;  // 16 MiB: a spec is a page of JSON

[[noreturn]] void fail(const std::string& source, const std::string& msg) { throw Error(source + ": " + msg); }

// a * b * ..., or nullopt when the product does not fit in 64 bits.
std::optional<size_t> checked_product(std::initializer_list<size_t> factors) {
  size_t p = 1;
  for (size_t f : factors)
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  return p;
}

}  // namespace

size_t read_repeat(graph::Fields& f) {
  const size_t times = f.size("times");
  if (times > kMaxRepeat) f.where().fail(fmt::format("field 'times' is {}, more than the limit of {}", times, kMaxRepeat));
  f.allow("layers");
  return times;
}

LayerSpec parse_layer(const json& jl, const std::string& source, const std::string& where) {
  if (!jl.is_object()) graph::Where{source, where + ": ", {}}.fail("must be a JSON object");
  // Errors name the layer by its index and, once known to be a string, its type: "layer 3 (conv2d): ...".
  const json* t = jl.contains("type") && jl.at("type").is_string() ? &jl.at("type") : nullptr;
  const graph::Where w{source, t ? fmt::format("{} ({}): ", where, t->get<std::string>()) : where + ": ", {}};
  graph::Fields f(jl, w, {"type", "name", "inputs"});
  LayerSpec l;
  l.type = f.str("type");
  l.name = f.str("name", "");
  if (jl.contains("name") &&
      (l.name.empty() || l.name == "input" || l.name == "blockInput" || l.name.find('.') != std::string::npos))
    w.fail(fmt::format("field 'name' must be a non-empty name without '.', other than \"input\" and \"blockInput\", "
                       "got \"{}\"",
                       l.name));
  if (jl.contains("inputs")) {
    const json& in = jl.at("inputs");
    if (!in.is_array() || in.empty()) w.fail("field 'inputs' must be a non-empty list of layer names");
    for (const json& x : in) {
      if (!x.is_string()) w.fail("field 'inputs' must be a list of layer names, got " + x.dump());
      l.inputs.push_back(x.get<std::string>());
    }
  }
  if (l.type == "repeat") {
    l.times = read_repeat(f);
  } else if (std::optional<json> block = parse_block(l.type, f)) {
    l.fields = *block;
  } else {
    const prims::OpDef* d = prims::find(l.type);
    if (!d || d->layer == graph::LayerUse::Internal)
      w.fail("unknown layer type '" + l.type + "' (supported: " + layer_types() + ")");
    std::shared_ptr<void> attrs = d->parse(f);
    d->to_json(attrs.get(), l.fields);
    if (d->activation) {
      const std::string act = f.str("activation", d->activation);
      check_activation(act, w, "activation");
      l.fields["activation"] = act;
    }
  }
  if (l.type == "repeat") {
    if (!jl.contains("layers") || !jl.at("layers").is_array() || jl.at("layers").empty()) w.fail("field 'layers' of a repeat must be a non-empty list of layers");
    const json& body = jl.at("layers");
    for (size_t i = 0; i < body.size(); ++i) l.body.push_back(parse_layer(body[i], source, fmt::format("{}.{}", where, i)));
  }
  f.finish();
  return l;
}

void validate(const NetSpec& s, const std::string& source) {
  if (s.name.empty()) fail(source, "field 'name' must not be empty");
  if (s.imageH == 0 || s.imageW == 0 || s.channels == 0)
    fail(source, fmt::format("image shape {}x{}x{} (channels x imageH x imageW) has a zero size", s.channels, s.imageH,
                             s.imageW));
  if (auto n = checked_product({s.channels, s.imageH, s.imageW}); !n || *n > kMaxInputValues)
    fail(source, fmt::format("image shape {}x{}x{} (channels x imageH x imageW) is absurdly large (more than {} values)",
                             s.channels, s.imageH, s.imageW, kMaxInputValues));
  if (s.layers.empty()) fail(source, "field 'layers' is empty: a network needs at least one dense layer");
  if (!(s.drop_path >= 0 && s.drop_path < 1))
    fail(source, fmt::format("field 'dropPath' must be in [0, 1) (the last residual block's drop probability), got {}",
                             s.drop_path));
  lower(s, source);
  if (s.recipe) {
    const Recipe& r = *s.recipe;
    if (r.optimizer != "sgd" && r.optimizer != "adam" && r.optimizer != "adamw")
      fail(source, "recipe.optimizer: '" + r.optimizer + "' is not supported (supported: sgd, adam, adamw)");
    if (!(r.weight_decay >= 0)) fail(source, fmt::format("recipe.weightDecay must be >= 0, got {}", r.weight_decay));
    if (!(r.warmup_epochs >= 0)) fail(source, fmt::format("recipe.warmupEpochs must be >= 0, got {}", r.warmup_epochs));
    if (!(r.clip_norm >= 0)) fail(source, fmt::format("recipe.clipNorm must be >= 0, got {}", r.clip_norm));
    if (r.adamw_decay != "after" && r.adamw_decay != "before")
      fail(source, "recipe.adamwDecay: '" + r.adamw_decay + "' is not supported (supported: after, before)");
    if (r.adamw_decay == "before" && r.optimizer != "adamw")
      fail(source, "recipe.adamwDecay: 'before' needs optimizer adamw, not " + r.optimizer);
    if (!(r.lr > 0) || !std::isfinite(r.lr)) fail(source, fmt::format("recipe.lr must be positive, got {}", r.lr));
    if (r.batch == 0) fail(source, "recipe.batch must be positive");
    if (r.epochs == 0) fail(source, "recipe.epochs must be positive");
    if (!(r.momentum >= 0 && r.momentum < 1)) fail(source, fmt::format("recipe.momentum must be in [0, 1), got {}", r.momentum));
    if (!(r.label_smoothing >= 0 && r.label_smoothing < 1))
      fail(source, fmt::format("recipe.labelSmoothing must be in [0, 1), got {}", r.label_smoothing));
    const std::set<std::string> rgb_presets = {"imagenet", "cifar10"}, grey_presets = {"mnist", "fashion-mnist"};
    if (r.normalize != "none" && r.normalize != "custom" && !rgb_presets.count(r.normalize) &&
        !grey_presets.count(r.normalize))
      fail(source, "recipe.normalize: '" + r.normalize +
                       "' is not supported (supported: none, imagenet, mnist, fashion-mnist, cifar10, or {\"mean\": [...], "
                       "\"std\": [...]})");
    if ((rgb_presets.count(r.normalize) && s.channels != 3) || (grey_presets.count(r.normalize) && s.channels != 1))
      fail(source, fmt::format("recipe.normalize: \"{}\" needs {} input (channels {}), but the network's input "
                               "has {} channel{}",
                               r.normalize, rgb_presets.count(r.normalize) ? "an RGB" : "a grey",
                               rgb_presets.count(r.normalize) ? 3 : 1, s.channels, s.channels == 1 ? "" : "s"));
    if (r.normalize == "custom") {
      if (r.normalize_mean.size() != s.channels || r.normalize_std.size() != s.channels)
        fail(source, fmt::format("recipe.normalize: {} mean and {} std values, but the network's input has {} channel{} "
                                 "(one of each per channel)",
                                 r.normalize_mean.size(), r.normalize_std.size(), s.channels, s.channels == 1 ? "" : "s"));
      for (size_t c = 0; c < s.channels; ++c) {
        if (!std::isfinite(r.normalize_mean[c]))
          fail(source, fmt::format("recipe.normalize: mean[{}] is {}, not a finite number", c, r.normalize_mean[c]));
        if (!(r.normalize_std[c] > 0) || !std::isfinite(r.normalize_std[c]))
          fail(source, fmt::format("recipe.normalize: std[{}] is {}; it must be a finite number > 0", c, r.normalize_std[c]));
      }
    }
    for (const auto& [key, v] : {std::pair<const char*, double>{"colorJitterBrightness", r.jitter_brightness},
                                 {"colorJitterContrast", r.jitter_contrast},
                                 {"colorJitterSaturation", r.jitter_saturation}})
      if (!(v >= 0) || !std::isfinite(v))
        fail(source, fmt::format("recipe.{} must be a finite number >= 0 (factors drawn from [max(0, 1 - x), 1 + x]), "
                                 "got {}",
                                 key, v));
    if (r.jitter_saturation > 0 && s.channels != 3)
      fail(source, fmt::format("recipe.colorJitterSaturation does not apply to a {}-channel input (saturation needs RGB)",
                               s.channels));
  }
}

namespace {

// The recipe's "normalize": {"mean": [...], "std": [...]} (validated against the channels by validate()).
void read_mean_std(const json& jn, const std::string& source, Recipe& r) {
  graph::Fields f(jn, graph::Where{source, "recipe.normalize: ", {}}, {"mean", "std"});
  f.finish();
  for (const char* key : {"mean", "std"}) {
    if (!jn.contains(key)) fail(source, fmt::format("recipe.normalize: missing field '{}' (a list, one number per channel)", key));
    const json& v = jn.at(key);
    if (!v.is_array() || v.empty()) fail(source, fmt::format("recipe.normalize: field '{}' must be a non-empty list of numbers, got {}", key, v.dump()));
    std::vector<double>& out = std::string(key) == "mean" ? r.normalize_mean : r.normalize_std;
    for (const json& x : v) {
      if (!x.is_number()) fail(source, fmt::format("recipe.normalize: field '{}' must be a list of numbers, got {}", key, x.dump()));
      out.push_back(x.get<double>());
    }
  }
}

Recipe parse_recipe(const json& jr, const std::string& source) {
  if (!jr.is_object()) fail(source, "field 'recipe' must be a JSON object");
  graph::Fields f(jr, graph::Where{source, "recipe: ", {}}, {});
  Recipe r = read_recipe(f);
  f.finish();
  return r;
}

}  // namespace

Recipe read_recipe(graph::Fields& f) {
  Recipe r;
  r.optimizer = f.choice("optimizer", {"sgd", "adam", "adamw"}, r.optimizer);
  r.lr = f.real("lr", r.lr);
  r.batch = f.size("batch", r.batch);
  r.epochs = f.size("epochs", r.epochs);
  r.momentum = f.real("momentum", r.momentum);
  r.label_smoothing = f.real("labelSmoothing", r.label_smoothing);
  r.weight_decay = f.real("weightDecay", r.weight_decay);
  r.warmup_epochs = f.real("warmupEpochs", r.warmup_epochs);
  r.clip_norm = f.real("clipNorm", r.clip_norm);
  r.adamw_decay = f.choice("adamwDecay", {"after", "before"}, r.adamw_decay);
  r.augment_crop_pad = static_cast<size_t>(f.integer("augmentCropPad", static_cast<long long>(r.augment_crop_pad), 0, 64));
  r.augment_flip = f.boolean("augmentFlip", r.augment_flip);
  r.augment_resized_crop = f.boolean("augmentResizedCrop", r.augment_resized_crop);
  if (f.has("normalize") && f.at("normalize").is_object()) {  // {"mean": [...], "std": [...]}
    r.normalize = "custom";
    read_mean_std(f.at("normalize"), f.where().source, r);
    f.allow("normalize");
  } else {
    r.normalize = f.choice("normalize", {"none", "imagenet", "mnist", "fashion-mnist", "cifar10"}, r.normalize);
  }
  r.jitter_brightness = f.real("colorJitterBrightness", r.jitter_brightness);
  r.jitter_contrast = f.real("colorJitterContrast", r.jitter_contrast);
  r.jitter_saturation = f.real("colorJitterSaturation", r.jitter_saturation);
  r.dataset = f.str("dataset", r.dataset);
  if (f.has("dataset") && r.dataset.empty())
    fail(f.where().source, "recipe.dataset must not be empty (leave it out for any dataset)");
  r.cosine = f.boolean("cosine", r.cosine);
  return r;
}

namespace {

// The top-level fields but the layers and the recipe (read by parse_netspec).
void read_top(graph::Fields& top, NetSpec& s) {
  s.name = top.str("name");
  s.imageH = top.size("imageH", 28);
  s.imageW = top.size("imageW", 28);
  s.channels = top.size("channels", 1);
  s.pad_style = top.choice("padStyle", {"xlaSame", "symmetric"}, "xlaSame") == "xlaSame" ? PadStyle::XlaSame
                                                                                          : PadStyle::Symmetric;
  s.conv_bn_activation = top.str("convBnActivation", "relu");
  if (!top.describing()) check_activation(s.conv_bn_activation, top.where(), "convBnActivation");
  s.drop_path = top.real("dropPath", 0.0);
  top.allow("layers");
  top.allow("recipe");
  top.allow("description");
}

}  // namespace

void describe_top(graph::Fields& f) {
  NetSpec s;
  read_top(f, s);
}

NetSpec parse_netspec(const std::string& text, const std::string& source) {
  if (json_nesting_depth(text) > kMaxJsonDepth)
    fail(source, fmt::format("malformed JSON: nested deeper than {} levels", kMaxJsonDepth));
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and numbers out of range (e.g. 1e400)
    // nlohmann's message already says "at line L, column C".
    std::string what = e.what();
    auto p = what.find("parse error");
    // The message quotes the bytes last read: invalid UTF-8 or control characters there are shown escaped.
    fail(source, "malformed JSON: " + printable(p == std::string::npos ? what : what.substr(p), 300));
  }
  if (!j.is_object()) fail(source, "a NetSpec must be a JSON object");
  graph::Fields top(j, graph::Where{source, "", {}}, {});
  // Unknown fields first (a misspelt field is the likeliest mistake), then the fields' values.
  {
    graph::Fields probe = graph::Fields::describe();
    describe_top(probe);
    std::set<std::string> known;
    for (const auto& u : probe.uses()) known.insert(u.key);
    graph::Fields(j, graph::Where{source, "", {}}, known).finish();
  }
  NetSpec s;
  read_top(top, s);
  if (!j.contains("layers") || !j["layers"].is_array()) fail(source, "missing field 'layers' (a list of layers)");
  for (size_t i = 0; i < j["layers"].size(); ++i)
    s.layers.push_back(parse_layer(j["layers"][i], source, fmt::format("layer {}", i)));
  if (j.contains("recipe")) s.recipe = parse_recipe(j["recipe"], source);
  validate(s, source);
  return s;
}

NetSpec load_netspec(const std::string& path) {
  const std::vector<uint8_t> bytes = read_whole_file(path, "NetSpec file", kMaxNetSpecBytes);
  return parse_netspec(std::string(bytes.begin(), bytes.end()), path);
}

NetBuilder& NetBuilder::layer(const std::string& type, json fields, std::string name, std::vector<std::string> inputs) {
  fields["type"] = type;
  if (!name.empty()) fields["name"] = name;
  if (!inputs.empty()) fields["inputs"] = inputs;
  spec_.layers.push_back(
      parse_layer(fields, "NetBuilder(" + spec_.name + ")", fmt::format("layer {}", spec_.layers.size())));
  return *this;
}

}  // namespace veridl::net
