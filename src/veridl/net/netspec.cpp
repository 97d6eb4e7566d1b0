#include "veridl/net/netspec.hpp"

#include <fmt/core.h>

#include <fstream>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>

#include "veridl/ops/conv2d.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/json_depth.hpp"

namespace veridl::net {

using nlohmann::json;

const char* to_string(LayerKind k) {
  switch (k) {
    case LayerKind::Flatten: return "flatten";
    case LayerKind::Dense: return "dense";
    case LayerKind::Conv2d: return "conv2d";
    case LayerKind::ConvBn: return "convBn";
    case LayerKind::MaxPool: return "maxPool";
  }
  return "?";
}
const char* to_string(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Relu: return "relu";
  }
  return "?";
}

size_t NetSpec::num_classes() const {
  for (auto it = layers.rbegin(); it != layers.rend(); ++it)
    if (it->kind == LayerKind::Dense) return it->fan_out;
  return 0;
}

size_t NetSpec::param_count() const {
  size_t n = 0;
  for (const auto& l : layers) switch (l.kind) {
      case LayerKind::Dense: n += l.fan_in * l.fan_out + l.fan_out; break;
      case LayerKind::Conv2d: n += l.fan_out * l.fan_in * l.k * l.k + l.fan_out; break;
      case LayerKind::ConvBn: n += l.fan_out * l.fan_in * l.k * l.k + 2 * l.fan_out; break;
      case LayerKind::Flatten:
      case LayerKind::MaxPool: break;
    }
  return n;
}

json NetSpec::to_json() const {
  json j;
  j["name"] = name;
  j["imageH"] = imageH;
  j["imageW"] = imageW;
  j["channels"] = channels;
  j["padStyle"] = pad_style == PadStyle::XlaSame ? "xlaSame" : "symmetric";
  j["layers"] = json::array();
  for (const auto& l : layers) {
    json jl;
    jl["type"] = to_string(l.kind);
    switch (l.kind) {
      case LayerKind::Dense:
        jl["fanIn"] = l.fan_in;
        jl["fanOut"] = l.fan_out;
        jl["activation"] = to_string(l.act);
        break;
      case LayerKind::Conv2d:
      case LayerKind::ConvBn:
        jl["ic"] = l.fan_in;
        jl["oc"] = l.fan_out;
        jl["k"] = l.k;
        jl["stride"] = l.stride;
        jl["padding"] = l.same ? "same" : "valid";
        if (l.kind == LayerKind::Conv2d) jl["activation"] = to_string(l.act);
        break;
      case LayerKind::MaxPool:
        jl["size"] = l.k;
        jl["stride"] = l.stride;
        break;
      case LayerKind::Flatten: break;
    }
    j["layers"].push_back(jl);
  }
  if (recipe) {
    j["recipe"] = {{"optimizer", recipe->optimizer},       {"lr", recipe->lr},
                   {"batch", recipe->batch},               {"epochs", recipe->epochs},
                   {"momentum", recipe->momentum},         {"labelSmoothing", recipe->label_smoothing},
                   {"weightDecay", recipe->weight_decay},  {"cosine", recipe->cosine},
                   {"warmupEpochs", recipe->warmup_epochs}, {"clipNorm", recipe->clip_norm},
                   {"augmentCropPad", recipe->augment_crop_pad}, {"augmentFlip", recipe->augment_flip}};
  }
  return j;
}

namespace {

constexpr size_t kMaxSizeField = size_t{1} << 24;    // any one size field (channels, k, fanIn, batch, ...)
constexpr size_t kMaxActivation = size_t{1} << 28;   // features per example of any activation, and the input

[[noreturn]] void fail(const std::string& source, const std::string& msg) { throw Error(source + ": " + msg); }

void only_fields(const json& j, const std::set<std::string>& allowed, const std::string& source, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(source, fmt::format("{}unknown field '{}' (expected one of: {})", where, it.key(), list));
    }
}

size_t get_size(const json& j, const char* key, const std::string& source, const std::string& where, bool required,
                size_t dflt) {
  if (!j.contains(key)) {
    if (required) fail(source, fmt::format("{}missing field '{}'", where, key));
    return dflt;
  }
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<long long>() <= 0)
    fail(source, fmt::format("{}field '{}' must be a positive integer, got {}", where, key, v.dump()));
  // No size in a NetSpec comes near this; the cap keeps every product of a few sizes far from 64 bits.
  if (v.get<unsigned long long>() > kMaxSizeField)
    fail(source, fmt::format("{}field '{}' is {}, more than the limit of {}", where, key, v.dump(), kMaxSizeField));
  return v.get<size_t>();
}

// a * b * ..., or nullopt when the product does not fit in 64 bits.
std::optional<size_t> checked_product(std::initializer_list<size_t> factors) {
  size_t p = 1;
  for (size_t f : factors)
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  return p;
}

double get_real(const json& j, const char* key, const std::string& source, const std::string& where, double dflt) {
  if (!j.contains(key)) return dflt;
  const json& v = j.at(key);
  if (!v.is_number()) fail(source, fmt::format("{}field '{}' must be a number, got {}", where, key, v.dump()));
  return v.get<double>();
}

std::string get_string(const json& j, const char* key, const std::string& source, const std::string& where,
                       bool required, const std::string& dflt) {
  if (!j.contains(key)) {
    if (required) fail(source, fmt::format("{}missing field '{}'", where, key));
    return dflt;
  }
  if (!j.at(key).is_string()) fail(source, fmt::format("{}field '{}' must be a string, got {}", where, key, j.at(key).dump()));
  return j.at(key).get<std::string>();
}

Activation parse_activation(const std::string& a, const std::string& source, const std::string& where) {
  if (a == "identity") return Activation::Identity;
  if (a == "relu") return Activation::Relu;
  fail(source, where + "activation '" + a + "' is not supported (supported: identity, relu)");
}

}  // namespace

std::vector<LayerShape> infer_shapes(const NetSpec& s, const std::string& source) {
  std::vector<LayerShape> out;
  LayerShape cur{s.channels, s.imageH, s.imageW, true};
  const ops::PadStyle style = s.pad_style == PadStyle::XlaSame ? ops::PadStyle::XlaSame : ops::PadStyle::Symmetric;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const Layer& l = s.layers[i];
    const std::string where = fmt::format("layer {} ({}): ", i, to_string(l.kind));
    const std::string img = fmt::format("{}x{}x{}", cur.C, cur.H, cur.W);
    switch (l.kind) {
      case LayerKind::Flatten:
        if (!cur.spatial) fail(source, where + "flatten after the activation is already flat");
        cur = {cur.C * cur.H * cur.W, 1, 1, false};
        break;
      case LayerKind::Dense:
        if (l.fan_in == 0 || l.fan_out == 0) fail(source, where + "fanIn and fanOut must be positive");
        if (l.fan_in > (size_t{1} << 26) || l.fan_out > (size_t{1} << 26) || l.fan_in * l.fan_out > (size_t{1} << 31))
          fail(source, where + fmt::format("{}x{} weight is absurdly large", l.fan_in, l.fan_out));
        if (cur.spatial && !(cur.H == 1 && cur.W == 1 && l.fan_in == cur.C))
          fail(source, where + fmt::format("needs a flat input: add a flatten layer before it (the activation is a {} image)", img));
        if (l.fan_in != cur.C)
          fail(source, where + fmt::format("fanIn is {} but the incoming activation has {} features", l.fan_in, cur.C));
        cur = {l.fan_out, 1, 1, false};
        break;
      case LayerKind::Conv2d:
      case LayerKind::ConvBn: {
        if (!cur.spatial) fail(source, where + "needs an image input, but the activation is already flat");
        if (l.fan_in == 0 || l.fan_out == 0 || l.k == 0 || l.stride == 0)
          fail(source, where + "ic, oc, k and stride must be positive");
        if (l.fan_in != cur.C)
          fail(source, where + fmt::format("ic is {} but the incoming activation has {} channels ({} image)", l.fan_in, cur.C, img));
        if (auto n = checked_product({l.fan_out, l.fan_in, l.k, l.k}); !n || *n > (size_t{1} << 31))
          fail(source, where + fmt::format("the {}x{}x{}x{} kernel is absurdly large", l.fan_out, l.fan_in, l.k, l.k));
        const ops::Padding pad = l.same ? ops::Padding::Same : ops::Padding::Valid;
        const ops::Pads ph = ops::conv_pads(cur.H, l.k, l.stride, pad, style), pw = ops::conv_pads(cur.W, l.k, l.stride, pad, style);
        const size_t oh = ops::detail::out_extent(cur.H, ph.lo, ph.hi, l.k, l.stride);
        const size_t ow = ops::detail::out_extent(cur.W, pw.lo, pw.hi, l.k, l.stride);
        if (oh == 0 || ow == 0)
          fail(source, where + fmt::format("kernel {}x{} is larger than the padded {} input", l.k, l.k, img));
        cur = {l.fan_out, oh, ow, true};
        break;
      }
      case LayerKind::MaxPool: {
        if (!cur.spatial) fail(source, where + "needs an image input, but the activation is already flat");
        if (l.k == 0 || l.stride == 0) fail(source, where + "size and stride must be positive");
        const ops::Padding pad = l.k > l.stride ? ops::Padding::Same : ops::Padding::Valid;
        const ops::Pads ph = ops::conv_pads(cur.H, l.k, l.stride, pad, style), pw = ops::conv_pads(cur.W, l.k, l.stride, pad, style);
        const size_t oh = ops::detail::out_extent(cur.H, ph.lo, ph.hi, l.k, l.stride);
        const size_t ow = ops::detail::out_extent(cur.W, pw.lo, pw.hi, l.k, l.stride);
        if (oh == 0 || ow == 0)
          fail(source, where + fmt::format("window {}x{} is larger than the {} input", l.k, l.k, img));
        cur = {cur.C, oh, ow, true};
        break;
      }
    }
    if (auto n = checked_product({cur.C, cur.H, cur.W}); !n || *n > kMaxActivation)
      fail(source, where + fmt::format("its {}x{}x{} output is absurdly large (more than {} features per example)",
                                       cur.C, cur.H, cur.W, kMaxActivation));
    out.push_back(cur);
  }
  return out;
}

void validate(const NetSpec& s, const std::string& source) {
  if (s.name.empty()) fail(source, "field 'name' must not be empty");
  if (s.imageH == 0 || s.imageW == 0 || s.channels == 0)
    fail(source, fmt::format("image shape {}x{}x{} (channels x imageH x imageW) has a zero size", s.channels, s.imageH,
                             s.imageW));
  if (auto n = checked_product({s.channels, s.imageH, s.imageW}); !n || *n > kMaxActivation)
    fail(source, fmt::format("image shape {}x{}x{} (channels x imageH x imageW) is absurdly large (more than {} values)",
                             s.channels, s.imageH, s.imageW, kMaxActivation));
  if (s.layers.empty()) fail(source, "field 'layers' is empty: a network needs at least one dense layer");
  infer_shapes(s, source);
  if (s.layers.back().kind != LayerKind::Dense)
    fail(source, fmt::format("the last layer must be dense (it produces the logits), got {}", to_string(s.layers.back().kind)));
  if (s.num_classes() < 2) fail(source, fmt::format("the last dense layer has {} output(s); a classifier needs at least 2", s.num_classes()));
  if (s.recipe) {
    const Recipe& r = *s.recipe;
    if (r.optimizer != "sgd" && r.optimizer != "adam" && r.optimizer != "adamw")
      fail(source, "recipe.optimizer: '" + r.optimizer + "' is not supported (supported: sgd, adam, adamw)");
    if (!(r.weight_decay >= 0)) fail(source, fmt::format("recipe.weightDecay must be >= 0, got {}", r.weight_decay));
    if (!(r.warmup_epochs >= 0)) fail(source, fmt::format("recipe.warmupEpochs must be >= 0, got {}", r.warmup_epochs));
    if (!(r.clip_norm >= 0)) fail(source, fmt::format("recipe.clipNorm must be >= 0, got {}", r.clip_norm));
    if (!(r.lr > 0) || !std::isfinite(r.lr)) fail(source, fmt::format("recipe.lr must be positive, got {}", r.lr));
    if (r.batch == 0) fail(source, "recipe.batch must be positive");
    if (r.epochs == 0) fail(source, "recipe.epochs must be positive");
    if (!(r.momentum >= 0 && r.momentum < 1)) fail(source, fmt::format("recipe.momentum must be in [0, 1), got {}", r.momentum));
    if (!(r.label_smoothing >= 0 && r.label_smoothing < 1))
      fail(source, fmt::format("recipe.labelSmoothing must be in [0, 1), got {}", r.label_smoothing));
  }
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
    fail(source, "malformed JSON: " + (p == std::string::npos ? what : what.substr(p)));
  }
  if (!j.is_object()) fail(source, "a NetSpec must be a JSON object");
  only_fields(j, {"name", "imageH", "imageW", "channels", "padStyle", "layers", "recipe", "description"}, source, "");
  NetSpec s;
  s.name = get_string(j, "name", source, "", true, "");
  s.imageH = get_size(j, "imageH", source, "", false, 28);
  s.imageW = get_size(j, "imageW", source, "", false, 28);
  s.channels = get_size(j, "channels", source, "", false, 1);
  {
    std::string ps = get_string(j, "padStyle", source, "", false, "xlaSame");
    if (ps == "xlaSame") s.pad_style = PadStyle::XlaSame;
    else if (ps == "symmetric") s.pad_style = PadStyle::Symmetric;
    else fail(source, "field 'padStyle' must be \"xlaSame\" or \"symmetric\", got \"" + ps + "\"");
  }
  if (!j.contains("layers") || !j["layers"].is_array()) fail(source, "missing field 'layers' (a list of layers)");
  size_t i = 0;
  for (const json& jl : j["layers"]) {
    std::string where = fmt::format("layer {}: ", i);
    if (!jl.is_object()) fail(source, where + "must be a JSON object");
    std::string type = get_string(jl, "type", source, where, true, "");
    Layer l;
    if (type == "flatten") {
      only_fields(jl, {"type"}, source, where);
      l.kind = LayerKind::Flatten;
    } else if (type == "dense") {
      only_fields(jl, {"type", "fanIn", "fanOut", "activation"}, source, where);
      l.kind = LayerKind::Dense;
      l.fan_in = get_size(jl, "fanIn", source, where, true, 0);
      l.fan_out = get_size(jl, "fanOut", source, where, true, 0);
      l.act = parse_activation(get_string(jl, "activation", source, where, false, "identity"), source, where);
    } else if (type == "conv2d" || type == "convBn") {
      const bool bn = type == "convBn";
      if (bn) only_fields(jl, {"type", "ic", "oc", "k", "stride", "padding"}, source, where);
      else only_fields(jl, {"type", "ic", "oc", "k", "stride", "padding", "activation"}, source, where);
      l.kind = bn ? LayerKind::ConvBn : LayerKind::Conv2d;
      l.fan_in = get_size(jl, "ic", source, where, true, 0);
      l.fan_out = get_size(jl, "oc", source, where, true, 0);
      l.k = get_size(jl, "k", source, where, true, 0);
      l.stride = get_size(jl, "stride", source, where, false, 1);
      std::string pad = get_string(jl, "padding", source, where, false, "same");
      if (pad != "same" && pad != "valid") fail(source, where + "field 'padding' must be \"same\" or \"valid\", got \"" + pad + "\"");
      l.same = pad == "same";
      l.act = bn ? Activation::Relu : parse_activation(get_string(jl, "activation", source, where, false, "relu"), source, where);
    } else if (type == "maxPool") {
      only_fields(jl, {"type", "size", "stride"}, source, where);
      l.kind = LayerKind::MaxPool;
      l.k = get_size(jl, "size", source, where, true, 0);
      l.stride = get_size(jl, "stride", source, where, false, l.k);
    } else {
      fail(source, where + "unknown layer type '" + type + "' (supported: dense, conv2d, convBn, maxPool, flatten)");
    }
    s.layers.push_back(l);
    ++i;
  }
  if (j.contains("recipe")) {
    const json& jr = j["recipe"];
    if (!jr.is_object()) fail(source, "field 'recipe' must be a JSON object");
    only_fields(jr, {"optimizer", "lr", "batch", "epochs", "momentum", "labelSmoothing", "weightDecay", "cosine",
                     "warmupEpochs", "clipNorm", "augmentCropPad", "augmentFlip"},
                source, "recipe: ");
    Recipe r;
    r.optimizer = get_string(jr, "optimizer", source, "recipe: ", false, r.optimizer);
    r.lr = get_real(jr, "lr", source, "recipe: ", r.lr);
    r.batch = get_size(jr, "batch", source, "recipe: ", false, r.batch);
    r.epochs = get_size(jr, "epochs", source, "recipe: ", false, r.epochs);
    r.momentum = get_real(jr, "momentum", source, "recipe: ", r.momentum);
    r.label_smoothing = get_real(jr, "labelSmoothing", source, "recipe: ", r.label_smoothing);
    r.weight_decay = get_real(jr, "weightDecay", source, "recipe: ", r.weight_decay);
    r.warmup_epochs = get_real(jr, "warmupEpochs", source, "recipe: ", r.warmup_epochs);
    r.clip_norm = get_real(jr, "clipNorm", source, "recipe: ", r.clip_norm);
    if (jr.contains("augmentCropPad")) {
      const json& v = jr["augmentCropPad"];
      if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > 64)
        fail(source, "recipe: field 'augmentCropPad' must be an integer in [0, 64], got " + v.dump());
      r.augment_crop_pad = v.get<size_t>();
    }
    if (jr.contains("augmentFlip")) {
      if (!jr["augmentFlip"].is_boolean()) fail(source, "recipe: field 'augmentFlip' must be true or false, got " + jr["augmentFlip"].dump());
      r.augment_flip = jr["augmentFlip"].get<bool>();
    }
    if (jr.contains("cosine")) {
      if (!jr["cosine"].is_boolean()) fail(source, "recipe: field 'cosine' must be true or false, got " + jr["cosine"].dump());
      r.cosine = jr["cosine"].get<bool>();
    }
    s.recipe = r;
  }
  validate(s, source);
  return s;
}

NetSpec load_netspec(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open NetSpec file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_netspec(ss.str(), path);
}

}  // namespace veridl::net
