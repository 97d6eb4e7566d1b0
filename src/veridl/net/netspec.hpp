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

enum class LayerKind { Flatten, Dense };
enum class Activation { Identity };

struct Layer {
  LayerKind kind = LayerKind::Dense;
  size_t fan_in = 0, fan_out = 0;
  Activation act = Activation::Identity;
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
};

struct NetSpec {
  std::string name;
  size_t imageH = 28, imageW = 28, channels = 1;
  std::vector<Layer> layers;
  std::optional<Recipe> recipe;

  size_t input_size() const { return imageH * imageW * channels; }
  size_t num_classes() const;   // fanOut of the last dense layer
  size_t param_count() const;
  nlohmann::json to_json() const;
};

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
    spec_.layers.push_back({LayerKind::Flatten, 0, 0, Activation::Identity});
    return *this;
  }
  NetBuilder& dense(size_t fan_in, size_t fan_out, Activation act = Activation::Identity) {
    spec_.layers.push_back({LayerKind::Dense, fan_in, fan_out, act});
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
