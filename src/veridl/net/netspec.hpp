// NetSpec: a network described as layers, from JSON or from C++ (NetBuilder). Validation gives one-line
// errors naming the file, layer and field at fault.
//
// Chain form (specs/mnist_linear.json is the book's mnistLinear): each layer consumes the previous one.
//   { "name": "MNIST-Linear", "imageH": 28, "imageW": 28, "channels": 1,
//     "layers": [ {"type": "flatten"},
//                 {"type": "dense", "fanIn": 784, "fanOut": 10, "activation": "identity"} ],
//     "recipe": { "optimizer": "sgd", "lr": 0.1, "batch": 128, "epochs": 12 } }
// Graph form: the same list, where a layer may carry a "name" and "inputs" (names of earlier layers, or
// "input" for the image); without "inputs" a layer consumes the previous layer. A {"type": "repeat",
// "times": N, "layers": [...]} layer repeats its body N times (names inside are local to a repetition).
// specs/mnist_resnet_tiny.json is a residual network in that form.
//
// Layer types: every primitive of the table (prims/all.hpp) that is a NetSpec layer (dense, conv2d,
// batchNorm, relu, relu6, sigmoid, swish, hardSwish, gelu, geluErf, layerNorm, layerScale, maxPool, avgPool,
// globalAvgPool, flatten, add, mul), and the blocks of
// net/lower.cpp (convBn, residualBlock, bottleneckBlock, invertedResidual; "convBnActivation" sets the
// activation of their conv-BN pairs). "recipe" is optional: the training defaults for this network
// (command-line flags override it).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "veridl/graph/ir.hpp"

namespace veridl::net {

using PadStyle = graph::PadStyle;  // how "same" pads a strided window (original-system.md §9.4.6)

// One NetSpec layer. `fields` are its own fields, normalised (defaults filled in): what to_json writes.
struct LayerSpec {
  std::string type;
  std::string name;                 // "" = "layers.<i>"
  std::vector<std::string> inputs;  // empty = the previous layer
  nlohmann::json fields = nlohmann::json::object();
  size_t times = 0;                 // type "repeat": the body, `times` times
  std::vector<LayerSpec> body;
};

struct Recipe {
  std::string optimizer = "sgd";  // sgd | adam | adamw (see train/optimizer.hpp)
  double lr = 0.1;
  size_t batch = 128;
  size_t epochs = 12;
  double momentum = 0.0;
  double label_smoothing = 0.0;
  double weight_decay = 0.0;
  bool cosine = false;
  double warmup_epochs = 0.0;
  double clip_norm = 0.0;
  std::string adamw_decay = "after";  // adamw: "after" the Adam step (the original) or "before" (torch.optim.AdamW)
  size_t augment_crop_pad = 0;  // random crop with this zero padding (0: none)
  bool augment_flip = false;    // random horizontal flip
  bool augment_resized_crop = false;  // random-resized-crop (scale 0.08-1, ratio 3/4-4/3) to the input size
  // The input's mean/std normalisation (training and evaluation): "none", a preset ("imagenet", "mnist",
  // "fashion-mnist", "cifar10"; data/augment.hpp), or "custom" with the lists below ({"mean": [...], "std": [...]}).
  std::string normalize = "none";
  std::vector<double> normalize_mean, normalize_std;  // "custom" only: one per channel
  // Colour jitter of the training images (torchvision's ColorJitter without hue; data/augment.hpp): each factor is
  // drawn from [max(0, 1 - x), 1 + x]; 0: off.
  double jitter_brightness = 0, jitter_contrast = 0, jitter_saturation = 0;
  // The dataset the spec is meant for ("" = any): `veridl train --data` defaults to it, and another one is refused
  // unless forced (--data-mismatch-ok).
  std::string dataset;
};

struct NetSpec {
  std::string name;
  size_t imageH = 28, imageW = 28, channels = 1;
  PadStyle pad_style = PadStyle::XlaSame;
  // The activation of every convBn (and of the convBn-built blocks) that does not name its own: "relu",
  // "relu6" for MobileNetV2, "swish" for EfficientNet (the original's convBnAct); any table activation.
  std::string conv_bn_activation = "relu";
  // Stochastic depth: a dropPath node on the branch of every residual block (residualBlock, bottleneckBlock,
  // invertedResidual, mbConv, convNextStage), its rate ramping linearly from 0 at the net's first block to
  // this at its last (rate_i = dropPath * i / (blocks - 1), counting every block of those stages, with or without
  // a skip connection: the original's dropKeeps, timm's linspace). 0: none (no node).
  double drop_path = 0.0;
  std::vector<LayerSpec> layers;
  std::optional<Recipe> recipe;

  size_t input_size() const { return imageH * imageW * channels; }
  // Both lower the spec (net/lower.hpp) on every call: call them once, not in a loop.
  size_t num_classes() const;   // the width of the network's output
  size_t param_count() const;   // trainable parameters (BatchNorm running statistics not included)
  nlohmann::json to_json() const;
};

// Parse and validate. `source` names the file (or "<string>") in error messages.
NetSpec parse_netspec(const std::string& json_text, const std::string& source = "<string>");
NetSpec load_netspec(const std::string& path);
// Throws veridl::Error naming `source`, the layer and the field at fault.
void validate(const NetSpec& spec, const std::string& source = "<spec>");

// One layer from its JSON object (type, name, inputs and its own fields), normalised. `where` is the
// layer's place for messages ("layer 3").
LayerSpec parse_layer(const nlohmann::json& j, const std::string& source, const std::string& where);
// The readers parse_netspec uses, for the NetSpec reference (net/reference.hpp), which runs them on
// graph::Fields::describe(): a repeat's fields (returns times), the recipe, the top-level fields.
size_t read_repeat(graph::Fields& f);
Recipe read_recipe(graph::Fields& f);
void describe_top(graph::Fields& f);

enum class Activation { Identity, Relu };
const char* to_string(Activation a);

// The C++ way to describe the same thing; build() validates.
class NetBuilder {
 public:
  explicit NetBuilder(std::string name) { spec_.name = std::move(name); }
  NetBuilder& image(size_t h, size_t w, size_t channels = 1) {
    spec_.imageH = h;
    spec_.imageW = w;
    spec_.channels = channels;
    return *this;
  }
  // Any layer type of the table, with its fields; `name` and `inputs` for the graph form.
  NetBuilder& layer(const std::string& type, nlohmann::json fields = nlohmann::json::object(), std::string name = "",
                    std::vector<std::string> inputs = {});
  NetBuilder& flatten() { return layer("flatten"); }
  NetBuilder& dense(size_t fan_in, size_t fan_out, Activation act = Activation::Identity) {
    return layer("dense", {{"fanIn", fan_in}, {"fanOut", fan_out}, {"activation", to_string(act)}});
  }
  NetBuilder& conv2d(size_t ic, size_t oc, size_t k, Activation act = Activation::Relu, size_t stride = 1,
                     bool same = true) {
    return layer("conv2d", {{"ic", ic}, {"oc", oc}, {"k", k}, {"stride", stride}, {"padding", same ? "same" : "valid"},
                            {"activation", to_string(act)}});
  }
  NetBuilder& conv_bn(size_t ic, size_t oc, size_t k, size_t stride = 1, bool same = true) {
    return layer("convBn", {{"ic", ic}, {"oc", oc}, {"k", k}, {"stride", stride}, {"padding", same ? "same" : "valid"}});
  }
  NetBuilder& max_pool(size_t size, size_t stride) { return layer("maxPool", {{"size", size}, {"stride", stride}}); }
  NetBuilder& conv_bn_activation(std::string act) {
    spec_.conv_bn_activation = std::move(act);
    return *this;
  }
  NetBuilder& drop_path(double rate) {
    spec_.drop_path = rate;
    return *this;
  }
  NetBuilder& pad_style(PadStyle p) {
    spec_.pad_style = p;
    return *this;
  }
  NetBuilder& recipe(Recipe r) {
    spec_.recipe = r;
    return *this;
  }
  NetSpec build() const {
    validate(spec_, "NetBuilder(" + spec_.name + ")");
    return spec_;
  }

 private:
  NetSpec spec_;
};

}  // namespace veridl::net
