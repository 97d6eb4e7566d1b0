// NetSpec: a network as a list of layers, from JSON or from C++ (NetBuilder). Validation gives one-line
// errors naming the file, layer index and field at fault.
//
// JSON form (specs/mnist_linear.json is the book's mnistLinear):
//   { "name": "MNIST-Linear", "imageH": 28, "imageW": 28, "channels": 1,
//     "layers": [ {"type": "flatten"},
//                 {"type": "dense", "fanIn": 784, "fanOut": 10, "activation": "identity"} ],
//     "recipe": { "optimizer": "sgd", "lr": 0.1, "batch": 128, "epochs": 12 } }
// "recipe" is optional: the training defaults for this network (command-line flags override it).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace veridl::net {

enum class LayerKind { Flatten, Dense, Conv2d, ConvBn, MaxPool };
enum class Activation { Identity, Relu };
enum class PadStyle { XlaSame, Symmetric };  // how "same" pads a strided conv (original-system.md §9.4.6)

// One NetSpec layer (the original's constructors):
//   flatten                              [B,C,H,W] -> [B,C*H*W] (C order)
//   dense   fanIn fanOut activation      y = act(x W + b), W [fanIn, fanOut]
//   conv2d  ic oc k stride padding act   y = act(conv(x, W) + b), W [oc, ic, k, k]
//   convBn  ic oc k stride padding       conv (no bias) -> BatchNorm -> ReLU
//   maxPool size stride                  max-pool; "same"-style padding when size > stride
struct Layer {
  LayerKind kind = LayerKind::Dense;
  size_t fan_in = 0, fan_out = 0;  // dense: fanIn/fanOut; conv2d/convBn: ic/oc
  Activation act = Activation::Identity;
  size_t k = 0, stride = 1;        // conv kernel / pool window, stride
  bool same = true;                // conv padding: "same" (true) or "valid"
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
  size_t augment_crop_pad = 0;  // random crop with this zero padding (0: none)
  bool augment_flip = false;    // random horizontal flip
};

struct NetSpec {
  std::string name;
  size_t imageH = 28, imageW = 28, channels = 1;
  PadStyle pad_style = PadStyle::XlaSame;
  std::vector<Layer> layers;
  std::optional<Recipe> recipe;

  size_t input_size() const { return imageH * imageW * channels; }
  size_t num_classes() const;   // fanOut of the last dense layer
  size_t param_count() const;   // trainable parameters (BatchNorm running statistics not included)
  nlohmann::json to_json() const;
};

// The activation shape after each layer: C x H x W while spatial, C features (H = W = 1) once flat.
struct LayerShape {
  size_t C = 0, H = 1, W = 1;
  bool spatial = true;
  size_t size() const { return C * H * W; }
};
std::vector<LayerShape> infer_shapes(const NetSpec& spec, const std::string& source = "<spec>");

// Parse and validate. `source` names the file (or "<string>") in error messages.
NetSpec parse_netspec(const std::string& json_text, const std::string& source = "<string>");
NetSpec load_netspec(const std::string& path);
// Throws veridl::Error naming `source`, the layer index and the field at fault.
void validate(const NetSpec& spec, const std::string& source = "<spec>");

const char* to_string(LayerKind k);
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
  NetBuilder& flatten() {
    spec_.layers.push_back({LayerKind::Flatten, 0, 0, Activation::Identity, 0, 1, false});
    return *this;
  }
  NetBuilder& dense(size_t fan_in, size_t fan_out, Activation act = Activation::Identity) {
    spec_.layers.push_back({LayerKind::Dense, fan_in, fan_out, act});
    return *this;
  }
  NetBuilder& conv2d(size_t ic, size_t oc, size_t k, Activation act = Activation::Relu, size_t stride = 1,
                     bool same = true) {
    spec_.layers.push_back({LayerKind::Conv2d, ic, oc, act, k, stride, same});
    return *this;
  }
  NetBuilder& conv_bn(size_t ic, size_t oc, size_t k, size_t stride = 1, bool same = true) {
    spec_.layers.push_back({LayerKind::ConvBn, ic, oc, Activation::Relu, k, stride, same});
    return *this;
  }
  NetBuilder& max_pool(size_t size, size_t stride) {
    spec_.layers.push_back({LayerKind::MaxPool, 0, 0, Activation::Identity, size, stride, false});
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
