// veridl._core: the Python binding of the C++ library (nanobind). Thin by design: every computation is the
// library's (net::compile, train::train, train::evaluate, the executor, the checkpoint and StableHLO writers, the
// contract registry); this file converts arguments, holds a network's spec and parameters, releases the GIL while
// the library works, and turns veridl::Error into the Python exception veridl.Error with the same one-line message.
// The Python-facing API (veridl/__init__.py) wraps it; docs/python.md documents both.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "veridl/calculus/decisions.hpp"
#include "veridl/data/augment.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/cli.hpp"
#include "veridl/export/iree_target.hpp"
#include "veridl/export/onnx.hpp"
#include "veridl/export/stablehlo.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/verify_net.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/external_step.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/plumbing_fault.hpp"
#include "veridl/vjp/registry.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace veridl::py {

namespace {

// Images as they cross from numpy: N x C x H x W, C-contiguous, on the CPU; uint8 (0..255) or float32 (0..1).
using Images = nb::ndarray<nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using Labels = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Logits = nb::ndarray<float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

bool is_u8(const Images& x) { return x.dtype() == nb::dtype<uint8_t>(); }
bool is_f32(const Images& x) { return x.dtype() == nb::dtype<float>(); }

// A network: its spec, parameters and BatchNorm running statistics, the normalisation it was trained with, and what
// its checkpoint records about its training.
struct Net {
  net::NetSpec spec;
  train::Model model;
  data::Normalize normalize = data::Normalize::None;
  std::string data_name;  // the data of its last fit ("" before any)
  std::string config;     // its last fit's training config (train::config_json), "" before any
  size_t steps = 0;       // training steps so far (every fit; a loaded checkpoint's 'step')
};

net::Plan plan_of(const net::NetSpec& spec, size_t batch = 1) { return net::compile(spec, batch); }

// Fresh parameters: the He initialisation train() uses for `seed`, BatchNorm statistics at their initial values.
train::Model init_model(const net::NetSpec& spec, uint64_t seed) {
  return train::initial_model(plan_of(spec), seed);
}

Net make_net(const std::string& json_text, const std::string& source, uint64_t seed) {
  Net n;
  n.spec = net::parse_netspec(json_text, source);
  n.model = init_model(n.spec, seed);
  n.normalize = n.spec.recipe ? data::parse_normalize(n.spec.recipe->normalize, "recipe.normalize") : data::Normalize::None;
  return n;
}

std::string shape_str(const Images& x) {
  return fmt::format("{}x{}x{}x{}", x.shape(0), x.shape(1), x.shape(2), x.shape(3));
}

void check_images(const Images& x, const net::NetSpec& spec, const char* what) {
  if (!is_u8(x) && !is_f32(x))
    throw Error(fmt::format("{}: images must be uint8 (0..255) or float32 (0..1)", what));
  if (x.shape(1) != spec.channels || x.shape(2) != spec.imageH || x.shape(3) != spec.imageW)
    throw Error(fmt::format("{}: images are N x C x H x W = {}, but {} expects N x {}x{}x{}", what, shape_str(x), spec.name,
                            spec.channels, spec.imageH, spec.imageW));
}

// A dataset from arrays (one copy: uint8 images stay bytes, as the trainer keeps IDX files).
data::Dataset dataset_of(const Images& x, const Labels& y, const net::NetSpec& spec, size_t classes, const char* what) {
  check_images(x, spec, what);
  if (y.shape(0) != x.shape(0))
    throw Error(fmt::format("{}: {} images but {} labels", what, x.shape(0), y.shape(0)));
  data::Dataset ds;
  ds.n = x.shape(0);
  ds.C = spec.channels;
  ds.H = spec.imageH;
  ds.W = spec.imageW;
  ds.num_classes = classes;
  ds.source = what;
  const size_t count = ds.n * ds.image_size();
  if (is_u8(x)) {
    const auto* p = static_cast<const uint8_t*>(x.data());
    ds.pixels.assign(p, p + count);
  } else {
    const auto* p = static_cast<const float*>(x.data());
    ds.images.assign(p, p + count);
  }
  ds.labels.assign(y.data(), y.data() + ds.n);
  return ds;
}

nb::dict eval_dict(const train::EvalResult& e) {
  nb::dict d;
  const double total = static_cast<double>(e.total);
  d["loss"] = e.loss;
  d["top1"] = e.total ? static_cast<double>(e.correct) / total : 0.0;
  d["top5"] = e.total ? static_cast<double>(e.correct5) / total : 0.0;
  d["correct"] = e.correct;
  d["correct5"] = e.correct5;
  d["total"] = e.total;
  return d;
}

// The recipe of `spec` with `overrides` (a JSON object of recipe keys) applied, validated by the NetSpec reader: a
// bad key or value fails with its one-line message naming the field.
net::Recipe merged_recipe(const net::NetSpec& spec, const std::string& overrides) {
  nlohmann::json j = spec.to_json();
  nlohmann::json r = j.contains("recipe") ? j["recipe"] : nlohmann::json::object();
  const nlohmann::json o = nlohmann::json::parse(overrides);
  for (const auto& [k, v] : o.items()) r[k] = v;
  j["recipe"] = r;
  return *net::parse_netspec(j.dump(), "fit()").recipe;
}

// The checks `veridl train` makes of its flags, for the same fields given as fit()'s keyword arguments.
train::TrainConfig train_config(const net::NetSpec& spec, const net::Recipe& r, const nlohmann::json& given) {
  train::TrainConfig cfg;
  cfg.epochs = r.epochs;
  cfg.batch = r.batch;
  cfg.optim = train::optim_config(r);
  cfg.label_smoothing = r.label_smoothing;
  cfg.augment.pad = r.augment_crop_pad;
  cfg.augment.flip = r.augment_flip;
  cfg.augment.resized_crop = r.augment_resized_crop;
  cfg.normalize = data::parse_normalize(r.normalize, "normalize");
  const train::OptimConfig& o = cfg.optim;
  if (!(o.lr > 0)) throw Error(fmt::format("lr must be positive, got {}", o.lr));
  if (!(o.momentum >= 0 && o.momentum < 1)) throw Error(fmt::format("momentum must be in [0, 1), got {}", o.momentum));
  if (!(o.weight_decay >= 0)) throw Error(fmt::format("weight_decay must be >= 0, got {}", o.weight_decay));
  if (!(o.warmup_epochs >= 0)) throw Error(fmt::format("warmup_epochs must be >= 0, got {}", o.warmup_epochs));
  if (!(o.clip_norm >= 0)) throw Error(fmt::format("clip_norm must be >= 0, got {}", o.clip_norm));
  if (given.contains("momentum") && o.kind != "sgd")
    throw Error("momentum does not apply to " + o.kind + " (it is SGD's; Adam's betas are 0.9 and 0.999)");
  if (given.contains("adamwDecay") && o.kind != "adamw")
    throw Error("adamw_decay does not apply to " + o.kind + " (it orders AdamW's decoupled weight decay)");
  if (given.contains("warmupEpochs") && !o.cosine)
    throw Error("warmup_epochs does not apply without the cosine schedule (the schedule is a linear warmup, then "
                "cosine): add cosine=True");
  if (!(cfg.label_smoothing >= 0 && cfg.label_smoothing < 1))
    throw Error(fmt::format("label_smoothing must be in [0, 1), got {}", cfg.label_smoothing));
  if (cfg.normalize == data::Normalize::ImageNet && spec.channels != 3)
    throw Error(fmt::format("normalize: 'imagenet' needs an RGB input (channels 3), but {}'s input has {} channel{}",
                            spec.name, spec.channels, spec.channels == 1 ? "" : "s"));
  return cfg;
}

// Where the log lines go when verbose is off.
FILE* null_log() {
  static FILE* f = std::fopen("/dev/null", "w");
  return f;
}

nb::dict report_dict(const train::ProgressReport& r) {
  nb::dict d;
  d["kind"] = r.kind == train::ProgressReport::Kind::Step ? "step" : "epoch";
  d["epoch"] = r.epoch;
  d["epochs"] = r.epochs;
  d["batch"] = r.batch;
  d["batches"] = r.batches;
  d["step"] = r.step;
  d["loss"] = r.loss;
  d["lr"] = r.lr;
  if (r.kind == train::ProgressReport::Kind::Epoch) {
    d["accuracy"] = r.accuracy / 100.0;
    if (r.val) d["val"] = eval_dict(*r.val);
  }
  return d;
}


// ---- IREE devices (`veridl train --device iree:...`, fit(device=...)): python/veridl/iree.py compiles and runs the
// exported modules; the library runs everything else (train/external_step.hpp). This is the glue: the modules and
// their signatures go to veridl.iree.make_device, and train::ExternalDevice's calls become calls of its methods, with
// the tensors as numpy arrays in the modules' calling convention (parameters per tensor in plan order, optimizer
// state per slot and tensor).

// A Python object held by C++ code that runs without the GIL (train()): released with the GIL taken.
struct PyRef {
  nb::object o;
  explicit PyRef(nb::object obj) : o(std::move(obj)) {}
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  ~PyRef() {
    nb::gil_scoped_acquire locked;
    o.reset();
  }
};

// An owned numpy copy of the n = prod(shape) values at p (the array keeps its buffer alive through a capsule).
template <class T>
nb::object np_copy(const T* p, std::span<const size_t> shape) {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  auto* buf = new T[std::max<size_t>(n, 1)];
  std::copy(p, p + n, buf);
  nb::capsule owner(buf, [](void* q) noexcept { delete[] static_cast<T*>(q); });
  return nb::cast(nb::ndarray<nb::numpy, T>(buf, shape.size(), shape.data(), owner));
}
nb::object np_copy(const float* p, const std::vector<size_t>& shape) { return np_copy<float>(p, shape); }
nb::object np_copy_i32(const int32_t* p, size_t n) { return np_copy<int32_t>(p, std::span<const size_t>(&n, 1)); }

// A result from Python into `dst` (n float32 values).
void copy_out(nb::handle h, float* dst, size_t n, const std::string& what) {
  using Out = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
  Out a;
  if (!nb::try_cast(h, a)) throw Error("IREE device: " + what + " is not a float32 array");
  if (a.size() != n) throw Error(fmt::format("IREE device: {} has {} values, expected {}", what, a.size(), n));
  std::copy(a.data(), a.data() + n, dst);
}

std::vector<size_t> dims(const std::vector<int64_t>& s) { return std::vector<size_t>(s.begin(), s.end()); }

// A Python exception from the device as the one-line veridl::Error its message is (veridl.iree raises one-line
// errors; a traceback's further lines are dropped).
[[noreturn]] void rethrow_python(const nb::python_error& e) {
  std::string msg = nb::str(e.value()).c_str();
  msg = msg.substr(0, msg.find('\n'));
  const std::string type = nb::str(e.type().attr("__name__")).c_str();
  if (type != "Error") msg = type + " from the IREE device: " + msg;  // not one of veridl.iree's one-line errors
  throw Error(msg);
}

template <class F>
auto with_python(F&& f) {
  nb::gil_scoped_acquire locked;
  try {
    return f();
  } catch (nb::python_error& e) {
    rethrow_python(e);
  }
}

nb::list sig_list(const std::vector<hlo::TensorSig>& v) {
  nb::list l;
  for (const auto& t : v) l.append(nb::make_tuple(t.name, nb::tuple(nb::cast(t.shape)), t.dtype));
  return l;
}

// The engine of an IREE device for a run: exports the train step (with its logits) and the eval forward (at the
// training batch, evaluation's chunk), asks make_device (veridl.iree.make_device) for the compiled, loaded device,
// and wires its methods into a train::ExternalStep.
std::unique_ptr<train::StepEngine> python_engine(const std::shared_ptr<PyRef>& make_device, const net::Plan& plan,
                                                 const train::TrainConfig& cfg, const hlo::IreeTarget& target,
                                                 const std::string& cache) {
  hlo::ExportOptions to;
  to.logits = true;
  to.optim = cfg.optim;
  const std::string train_mlir = hlo::export_stablehlo(plan, to);
  const size_t eval_batch = plan.batch;  // evaluation's chunk: the training batch (the last chunk padded)
  const net::Plan eplan = net::compile(plan.spec, eval_batch, 0.0);
  hlo::ExportOptions eo;
  eo.eval = true;
  const std::string eval_mlir = hlo::export_stablehlo(eplan, eo);
  const hlo::Signature tsig = hlo::signature(plan, to), esig = hlo::signature(eplan, eo);
  std::fflush(cfg.log);
  std::shared_ptr<PyRef> dev = with_python([&] {
    return std::make_shared<PyRef>(make_device->o(
        "driver"_a = target.driver, "target"_a = target.target, "flags"_a = target.flags, "cache"_a = cache,
        "train_mlir"_a = train_mlir, "eval_mlir"_a = eval_mlir, "train_sig"_a = sig_list(tsig.inputs),
        "train_results"_a = sig_list(tsig.outputs), "eval_sig"_a = sig_list(esig.inputs),
        "eval_results"_a = sig_list(esig.outputs), "name"_a = plan.spec.name, "verbose"_a = cfg.log == stdout));
  });
  const size_t n_state = train::optimizer_state_tensors(cfg.optim);
  // The parameters (flat) as the module's per-tensor arrays, and back.
  auto split = [&plan](const std::vector<float>& flat) {
    nb::list l;
    for (const auto& t : plan.params) l.append(np_copy(flat.data() + t.offset, dims(t.shape)));
    return l;
  };
  auto join = [&plan](nb::handle seq, std::vector<float>& flat, const std::string& what) {
    flat.resize(plan.n_params);
    if (nb::len(seq) != plan.params.size())
      throw Error(fmt::format("IREE device: {} has {} tensors, expected {}", what, nb::len(seq), plan.params.size()));
    for (size_t k = 0; k < plan.params.size(); ++k)
      copy_out(seq[k], flat.data() + plan.params[k].offset, plan.params[k].size, what + " " + plan.params[k].name);
  };
  train::ExternalDevice d;
  d.eval_batch = eval_batch;
  d.load = [dev, split](const std::vector<float>& params, const std::vector<std::vector<float>>& state) {
    with_python([&] {
      nb::list st;
      for (const auto& s : state) st.append(split(s));
      dev->o.attr("load")(split(params), st);
      return 0;
    });
  };
  d.fetch = [dev, join, n_state](std::vector<float>& params, std::vector<std::vector<float>>& state) {
    with_python([&] {
      nb::tuple r = nb::cast<nb::tuple>(dev->o.attr("fetch")());
      join(r[0], params, "parameters");
      state.resize(n_state);
      for (size_t k = 0; k < n_state; ++k) join(r[1][k], state[k], "optimizer state");
      return 0;
    });
  };
  const std::vector<size_t> xshape = dims(tsig.inputs[plan.params.size() * (1 + n_state)].shape);
  const size_t B = plan.batch, K = plan.num_classes;
  d.step = [dev, xshape, B, K](const float* x, const int32_t* labels, float lr, size_t t,
                               std::vector<std::vector<float>>& stats, float* logits) {
    return with_python([&] {
      nb::tuple r = nb::cast<nb::tuple>(dev->o.attr("step")(np_copy(x, xshape), np_copy_i32(labels, B), lr, t));
      const float loss = nb::cast<float>(r[0]);
      nb::handle st = r[1];
      if (nb::len(st) != stats.size())
        throw Error(fmt::format("IREE device: the step returned {} batch statistics, expected {}", nb::len(st), stats.size()));
      for (size_t k = 0; k < stats.size(); ++k) copy_out(st[k], stats[k].data(), stats[k].size(), "a batch statistic");
      copy_out(r[2], logits, B * K, "the logits");
      return loss;
    });
  };
  const std::vector<size_t> exshape = dims(esig.inputs.back().shape);
  const std::vector<std::pair<std::string, size_t>> rt = train::running_stat_tensors(plan);
  d.forward = [dev, exshape, rt, eval_batch, K](const std::vector<std::vector<float>>& running, const float* x,
                                                float* logits) {
    with_python([&] {
      nb::list rs;
      for (size_t k = 0; k < running.size(); ++k) rs.append(np_copy(running[k].data(), {rt[k].second}));
      copy_out(dev->o.attr("forward")(rs, np_copy(x, exshape)), logits, eval_batch * K, "the eval logits");
      return 0;
    });
  };
  return std::make_unique<train::ExternalStep>(plan, cfg.optim, std::move(d));
}

// `veridl <argv...>` in this process, with IREE devices run through make_device (python/veridl/iree.py cli_main).
int run_cli(const std::vector<std::string>& args, nb::object make_device) {
  auto ref = std::make_shared<PyRef>(std::move(make_device));
  cli::set_external_engine([ref](const net::Plan& p, const train::TrainConfig& c, const hlo::IreeTarget& t,
                                 const std::string& cache) { return python_engine(ref, p, c, t, cache); });
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = 0;
  {
    nb::gil_scoped_release unlocked;
    rc = cli::run(static_cast<int>(copy.size()), argv.data());
    std::fflush(stdout);
  }
  cli::set_external_engine({});
  return rc;
}

// fit: trains with train::train on a named dataset / directory, or on arrays. Returns the history.
nb::dict fit(Net& net, const std::string& overrides, std::optional<std::string> data_name, std::optional<Images> x,
             std::optional<Labels> y, std::optional<Images> val_x, std::optional<Labels> val_y, double val_split,
             uint64_t seed, size_t eval_every, int threads, bool verbose, std::optional<nb::callable> progress,
             const std::string& device, const std::string& iree_target, const std::string& iree_cache,
             std::optional<nb::object> make_device, bool keep_subnormals) {
  const nlohmann::json given = nlohmann::json::parse(overrides);
  const net::Recipe r = merged_recipe(net.spec, overrides);
  train::TrainConfig cfg = train_config(net.spec, r, given);
  cfg.seed = seed;
  cfg.eval_every = eval_every;
  cfg.threads = threads;
  cfg.progress = false;  // no live line on stderr: the callback reports progress
  cfg.log = verbose ? stdout : null_log();
  cfg.flush_subnormals = !keep_subnormals;  // `veridl train --keep-subnormals` (kernels/fpenv.hpp)
  if (device != "native") {  // an IREE device: veridl.iree.make_device compiles and runs the modules
    const hlo::IreeTarget target = hlo::iree_target(device, iree_target);
    if (!make_device) throw Error("--device " + device + ": no IREE device maker given (veridl.Network.fit passes it)");
    auto ref = std::make_shared<PyRef>(std::move(*make_device));
    cfg.device = device;
    cfg.engine = [ref, target, iree_cache](const net::Plan& p, const train::TrainConfig& c) {
      return python_engine(ref, p, c, target, iree_cache);
    };
  }
  if (!(val_split >= 0 && val_split < 1))
    throw Error(fmt::format("val_split must be in [0, 1) (the fraction of the training data held out), got {}", val_split));
  const size_t classes = net.spec.num_classes();
  data::Split split;
  {
    nb::gil_scoped_release unlocked;
    if (data_name) {
      split = data::load_split(*data_name, data::ImageShape{net.spec.channels, net.spec.imageH, net.spec.imageW, classes},
                               cfg.augment.resized_crop ? data::TrainImages::Stored : data::TrainImages::Resized);
    } else {
      split.train = dataset_of(*x, *y, net.spec, classes, "fit(x, y)");
      split.name = "numpy";
      if (val_x) split.val = dataset_of(*val_x, *val_y, net.spec, classes, "fit(validation_data)");
    }
    if (split.val.n > 0) {
      if (val_split > 0)
        throw Error("val_split does not apply: the data has its own validation set (" + split.val.source + ")");
    } else if (val_split > 0) {
      data::hold_out_validation(split, val_split);
    }
  }
  cfg.val_split = split.val.n > 0 && !val_x ? val_split : 0.0;
  // The callback, and Ctrl-C: after every step the GIL is taken for a moment; a pending KeyboardInterrupt or an
  // exception from the callback stops the run (train::request_stop: the network keeps the last step's parameters)
  // and is raised once train() has returned.
  std::optional<nb::python_error> raised;
  cfg.on_progress = [&](const train::ProgressReport& rep) {
    nb::gil_scoped_acquire locked;
    if (raised) return;
    try {
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
      if (progress) (*progress)(report_dict(rep));
    } catch (nb::python_error& e) {
      raised.emplace(std::move(e));
      train::request_stop();
    }
  };
  train::ResumeState warm;  // from the network's current parameters, a fresh optimizer (trainer.hpp)
  warm.model = net.model;
  train::TrainResult res;
  {
    nb::gil_scoped_release unlocked;
    try {
      res = train::train(net.spec, cfg, split, &warm);
    } catch (...) {
      train::clear_stop_request();
      throw;
    }
    train::clear_stop_request();
  }
  // The parameters of the last step, whether the run ended or was stopped.
  net.model = res.model;
  net.normalize = cfg.normalize;
  if (data_name) net.data_name = split.name;  // (arrays: no dataset to name; `veridl eval` then takes --data)
  net.config = train::config_json(cfg).dump();
  net.steps += res.steps;
  if (raised) throw std::move(*raised);
  nb::dict h;
  h["loss"] = res.epoch_loss;
  std::vector<double> acc;
  for (double a : res.epoch_accuracy) acc.push_back(a / 100.0);
  h["accuracy"] = acc;
  h["val_epochs"] = res.val_epochs;
  nb::list vals;
  for (const auto& v : res.val_evals) vals.append(eval_dict(v));
  h["val"] = vals;
  h["test"] = res.final_eval.total ? nb::object(eval_dict(res.final_eval)) : nb::none();
  h["steps"] = res.steps;
  h["train_seconds"] = res.train_seconds;
  h["stopped_early"] = res.stopped_early;
  return h;
}

nb::dict evaluate(const Net& net, std::optional<std::string> data_name, std::optional<Images> x, std::optional<Labels> y,
                  const std::string& which, size_t batch) {
  const net::Plan plan = plan_of(net.spec, batch);
  train::EvalResult ev;
  {
    nb::gil_scoped_release unlocked;
    data::Dataset ds;
    if (data_name) {
      data::Split s = data::load_split(*data_name, data::ImageShape{net.spec.channels, net.spec.imageH, net.spec.imageW,
                                                                    plan.num_classes});
      if (which == "train") ds = std::move(s.train);
      else if (which == "test") ds = std::move(s.test);
      else throw Error("split: '" + which + "' is not supported (supported: train, test)");
    } else {
      ds = dataset_of(*x, *y, net.spec, plan.num_classes, "evaluate(x, y)");
    }
    ev = train::evaluate(plan, net.model, ds, net.normalize);
  }
  return eval_dict(ev);
}

// Logits (or probabilities) of every image of x into out (N x classes), `batch` images at a time, BatchNorm on its
// running statistics. The images are read in place, chunk by chunk, into the network's input buffer (uint8: p/255).
void predict(const Net& net, const Images& x, Logits out, bool probabilities, size_t batch) {
  check_images(x, net.spec, "predict(x)");
  const size_t N = x.shape(0);
  if (batch == 0) throw Error("batch must be positive");
  const net::Plan plan = plan_of(net.spec, std::max<size_t>(1, std::min(batch, N)));
  const size_t K = plan.num_classes, D = net.spec.input_size();
  if (out.shape(0) != N || out.shape(1) != K) throw Error("predict: the output array has the wrong shape");
  nb::gil_scoped_release unlocked;
  net::Executor<float, net::FastKernels> ex(plan, net::Purpose::Inference);
  ex.params() = net.model.params;
  auto rs = ex.running_stats();
  for (size_t k = 0; k < rs.size(); ++k) *rs[k] = net.model.running[k];
  Decisions live;
  for (size_t start = 0; start < N; start += plan.batch) {
    const size_t n = std::min(plan.batch, N - start);
    float* in = ex.input();
    if (is_u8(x)) {
      const auto* p = static_cast<const uint8_t*>(x.data()) + start * D;
      for (size_t i = 0; i < n * D; ++i) in[i] = static_cast<float>(p[i]) / 255.f;  // data::pixel_table's values
    } else {
      const auto* p = static_cast<const float*>(x.data()) + start * D;
      std::copy(p, p + n * D, in);
    }
    data::normalize_batch(in, n, net.spec.channels, net.spec.imageH * net.spec.imageW, net.normalize);
    const float* z = ex.forward(in, n, live, net::Mode::Eval);
    float* o = out.data() + start * K;
    std::copy(z, z + n * K, o);
    if (probabilities)
      for (size_t b = 0; b < n; ++b) {
        float* row = o + b * K;
        const float m = *std::max_element(row, row + K);
        double sum = 0;
        for (size_t k = 0; k < K; ++k) sum += row[k] = std::exp(row[k] - m);
        for (size_t k = 0; k < K; ++k) row[k] = static_cast<float>(row[k] / sum);
      }
  }
}

train::Checkpoint checkpoint_of(const Net& net) {
  std::map<std::string, std::string> meta = {{"weights_only", "true"}, {"step", std::to_string(net.steps)}};
  if (!net.data_name.empty()) meta["data"] = net.data_name;
  if (!net.config.empty()) meta["config"] = net.config;
  return train::make_checkpoint(plan_of(net.spec), net.model, meta);
}

Net from_checkpoint(const train::Checkpoint& ck, const std::string& path, std::optional<std::string> spec_json) {
  train::check_checkpoint_format(ck, path, false);
  Net n;
  if (spec_json) {
    n.spec = net::parse_netspec(*spec_json, "spec");
  } else {
    auto it = ck.metadata.find("spec");
    if (it == ck.metadata.end()) throw Error(path + ": checkpoint has no 'spec' metadata; pass spec=...");
    n.spec = net::parse_netspec(it->second, path + " (metadata 'spec')");
  }
  n.model = train::model_from_checkpoint(plan_of(n.spec), ck, path);
  n.normalize = train::checkpoint_normalization(ck, n.spec, path);
  if (auto it = ck.metadata.find("data"); it != ck.metadata.end()) n.data_name = it->second;
  if (auto it = ck.metadata.find("config"); it != ck.metadata.end()) n.config = it->second;
  if (auto it = ck.metadata.find("step"); it != ck.metadata.end()) {
    char* end = nullptr;
    const unsigned long long s = std::strtoull(it->second.c_str(), &end, 10);
    if (end != it->second.c_str() && *end == 0) n.steps = static_cast<size_t>(s);
  }
  return n;
}

// Every tensor of the checkpoint format (parameters in plan order, then the running statistics), as float32 arrays
// of their checkpoint shapes (copies).
nb::dict tensors(const Net& net) {
  const train::Checkpoint ck = checkpoint_of(net);
  nb::dict d;
  for (const train::Tensor& t : ck.tensors) {
    const std::vector<size_t> shape(t.shape.begin(), t.shape.end());
    d[t.name.c_str()] = np_copy(t.data.data(), shape);
  }
  return d;
}

using F32Array = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

// Replaces every tensor (all must be given, with the checkpoint's shapes: model_from_checkpoint's checks).
void set_tensors(Net& net, const std::map<std::string, F32Array>& given) {
  train::Checkpoint ck;
  const train::Checkpoint mine = checkpoint_of(net);
  for (const auto& [name, a] : given) {
    train::Tensor t;
    t.name = name;
    for (size_t i = 0; i < a.ndim(); ++i) t.shape.push_back(static_cast<int64_t>(a.shape(i)));
    t.data.assign(a.data(), a.data() + a.size());
    ck.tensors.push_back(std::move(t));
  }
  for (const auto& [name, a] : given)
    if (!mine.find(name)) throw Error("set_tensors: '" + name + "' is not a tensor of " + net.spec.name);
  net.model = train::model_from_checkpoint(plan_of(net.spec), ck, "set_tensors");
}

nb::list verify(std::optional<std::vector<std::string>> names, std::optional<int> chapter, bool mutants, uint64_t seed,
                int trials, bool production) {
  RunOptions opt;
  opt.seed = seed;
  opt.trials = trials;
  opt.production = production;
  const Registry& reg = builtin_contracts();
  std::vector<const Contract*> selected;
  if (names)
    for (const auto& n : *names)
      if (!reg.find(n)) throw Error("contract: no contract named '" + n + "' (veridl.verify() lists them all)");
  for (const auto& c : reg.all()) {
    if (names && std::find(names->begin(), names->end(), c.name) == names->end()) continue;
    if (chapter && c.chapter != *chapter) continue;
    selected.push_back(&c);
  }
  if (selected.empty()) throw Error("no contract matches the selection");
  nb::list out;
  if (mutants) {
    std::vector<MutantResult> rs;
    {
      nb::gil_scoped_release unlocked;
      for (const Contract* c : selected)
        for (const auto& m : c->mutants) rs.push_back(run_mutant(*c, m, opt));
    }
    for (const MutantResult& r : rs) {
      nb::dict d;
      d["contract"] = r.contract->name;
      d["mutant"] = r.mutant->name;
      d["description"] = r.mutant->description;
      d["rejected"] = r.killed;
      d["rejected_by"] = r.killed_by;
      out.append(d);
    }
    return out;
  }
  std::vector<ContractResult> rs;
  {
    nb::gil_scoped_release unlocked;
    for (const Contract* c : selected) rs.push_back(run_contract(*c, opt));
  }
  for (size_t i = 0; i < rs.size(); ++i) {
    const Contract& c = *selected[i];
    const ContractResult& r = rs[i];
    nb::list rejections;
    for (const auto& cs : r.cases)
      if (!cs.check.pass) {
        nb::dict j;
        j["config"] = cs.config;
        j["tape"] = cs.tape;
        j["failure"] = cs.check.failure;
        rejections.append(j);
      }
    nb::dict d;
    d["contract"] = c.name;
    d["chapter"] = c.chapter;
    d["statement"] = c.statement;
    d["configs"] = r.configs;
    d["trials"] = r.trials;
    d["verified"] = r.pass;
    d["seconds"] = r.seconds;
    d["rejections"] = rejections;
    out.append(d);
  }
  return out;
}

nb::dict verify_network(const Net& net, size_t batch, uint64_t seed, int trials) {
  const double eps = net.spec.recipe ? net.spec.recipe->label_smoothing : 0.0;
  NetCheckReport rep;
  {
    nb::gil_scoped_release unlocked;
    rep = verify_plan(net::compile(net.spec, batch, eps), seed, trials);
  }
  nb::dict d;
  d["network"] = rep.network;
  d["batch"] = rep.batch;
  d["inputs"] = rep.inputs;
  d["params"] = rep.params;
  d["trials"] = rep.trials;
  d["verified"] = rep.pass;
  d["seconds"] = rep.seconds;
  d["failure"] = rep.failure;
  return d;
}

// The StableHLO module of `veridl export` (train step, or with eval the evaluation forward) at `batch`, with the
// optimizer of the spec's recipe; written to `path` atomically when given, and returned.
std::string export_stablehlo(const Net& net, std::optional<std::string> path, size_t batch, bool eval) {
  hlo::ExportOptions opt;
  opt.eval = eval;
  const net::Recipe r = net.spec.recipe.value_or(net::Recipe{});
  opt.optim = train::optim_config(r);
  if (!eval) train::validate(opt.optim);
  std::string text;
  {
    nb::gil_scoped_release unlocked;
    text = hlo::export_stablehlo(net::compile(net.spec, batch, eval ? 0.0 : r.label_smoothing), opt);
    if (path) write_text_atomic(*path, text);
  }
  return text;
}

// The ONNX model of the network's inference graph (`veridl export --onnx`, docs/onnx.md: opset 17, input "x"
// [N, C, H, W], output "logits"), with the current parameters and running statistics, written atomically to `path`.
void export_onnx(const Net& net, const std::string& path) {
  nb::gil_scoped_release unlocked;
  onnx_export::OnnxOptions opt;
  opt.doc = fmt::format("{} from the VeriDL Python package", net.spec.name);
  onnx_export::write_onnx(net::compile(net.spec, 1), net.model.params, net.model.running, path, opt);
}

// A dataset's splits as numpy arrays (copies): images N x C x H x W (uint8 when the files hold bytes: IDX, CIFAR-10;
// float32 for image folders, resized to `shape`), labels int32.
nb::object images_array(const data::Dataset& ds) {
  const size_t shape[4] = {ds.n, ds.C, ds.H, ds.W};
  if (ds.has_bytes()) return np_copy<uint8_t>(ds.pixels.data(), shape);
  const std::vector<float> f = ds.floats();
  return np_copy<float>(f.data(), shape);
}

nb::object labels_array(const data::Dataset& ds) { return np_copy_i32(ds.labels.data(), ds.n); }

nb::dict load_data(const std::string& name, std::optional<std::vector<size_t>> shape) {
  data::Split s;
  {
    nb::gil_scoped_release unlocked;
    std::optional<data::ImageShape> is;
    if (shape) {
      if (shape->size() != 3) throw Error("shape: expected (C, H, W)");
      is = data::ImageShape{(*shape)[0], (*shape)[1], (*shape)[2], 0};
    }
    s = data::load_split(name, is);
  }
  nb::dict d;
  d["train"] = nb::make_tuple(images_array(s.train), labels_array(s.train));
  d["test"] = nb::make_tuple(images_array(s.test), labels_array(s.test));
  if (s.val.n) d["val"] = nb::make_tuple(images_array(s.val), labels_array(s.val));
  d["name"] = s.name;
  return d;
}

}  // namespace

}  // namespace veridl::py

NB_MODULE(_core, m) {
  using namespace veridl;
  using namespace veridl::py;
  m.doc() = "VeriDL's C++ library (nanobind binding); use the package `veridl`, which wraps it.";
  nb::exception<Error>(m, "Error");

  nb::class_<Net>(m, "Net", "A network: its NetSpec, parameters and BatchNorm running statistics.")
      .def_static(
          "from_json",
          [](const std::string& text, const std::string& source, uint64_t seed) { return make_net(text, source, seed); },
          "text"_a, "source"_a, "seed"_a = 42, "A network from NetSpec JSON text, He-initialised as train() does.")
      .def_static(
          "from_file",
          [](const std::string& path, uint64_t seed) {
            Net n;
            n.spec = net::load_netspec(path);
            n.model = init_model(n.spec, seed);
            n.normalize = n.spec.recipe ? data::parse_normalize(n.spec.recipe->normalize, "recipe.normalize")
                                        : data::Normalize::None;
            return n;
          },
          "path"_a, "seed"_a = 42, "A network from a NetSpec file.")
      .def_static(
          "load",
          [](const std::string& path, std::optional<std::string> spec_json) {
            return from_checkpoint(train::load_safetensors(path), path, spec_json);
          },
          "path"_a, "spec_json"_a = nb::none(), "A network from a safetensors checkpoint (the CLI's or save()'s).")
      .def("save", [](const Net& n, const std::string& path) { train::save_safetensors(path, checkpoint_of(n)); },
           "path"_a, "Writes a weights-only checkpoint (atomically), as the CLI's run folder does.")
      .def_prop_ro("spec_json", [](const Net& n) { return n.spec.to_json().dump(); }, "The NetSpec, normalised, as JSON.")
      .def_prop_ro("name", [](const Net& n) { return n.spec.name; })
      .def_prop_ro("param_count", [](const Net& n) { return plan_of(n.spec).n_params; })
      .def_prop_ro("num_classes", [](const Net& n) { return plan_of(n.spec).num_classes; })
      .def_prop_ro("input_shape",
                   [](const Net& n) { return std::vector<size_t>{n.spec.channels, n.spec.imageH, n.spec.imageW}; })
      .def_prop_ro("normalize", [](const Net& n) { return std::string(data::to_string(n.normalize)); })
      .def_prop_ro("steps", [](const Net& n) { return n.steps; })
      .def_prop_ro("data", [](const Net& n) { return n.data_name; })
      .def_prop_ro("recipe_batch", [](const Net& n) { return n.spec.recipe ? n.spec.recipe->batch : size_t{128}; })
      .def("fit", &fit, "overrides"_a, "data"_a.none(), "x"_a.none(), "y"_a.none(), "val_x"_a.none(), "val_y"_a.none(),
           "val_split"_a, "seed"_a, "eval_every"_a, "threads"_a, "verbose"_a, "progress"_a.none(),
           "device"_a = "native", "iree_target"_a = "", "iree_cache"_a = "", "make_device"_a = nb::none(),
           "keep_subnormals"_a = false,
           "Trains (train::train) from the current parameters; overrides: a JSON object of recipe keys.")
      .def("evaluate", &evaluate, "data"_a.none(), "x"_a.none(), "y"_a.none(), "split"_a, "batch"_a,
           "Top-1, top-5 and mean loss (train::evaluate).")
      .def("predict", &predict, "x"_a, "out"_a, "probabilities"_a, "batch"_a, "Logits or probabilities into out.")
      .def("tensors", &tensors, "The checkpoint's tensors by name (copies).")
      .def("set_tensors", &set_tensors, "tensors"_a, "Replaces every tensor (names and shapes checked).")
      .def("verify", &verify_network, "batch"_a, "seed"_a, "trials"_a, "The whole-network contract at this batch.")
      .def("export_stablehlo", &export_stablehlo, "path"_a.none(), "batch"_a, "eval"_a,
           "The StableHLO module of `veridl export`.")
      .def("export_onnx", &export_onnx, "path"_a, "The ONNX model of `veridl export --onnx` (inference graph).");

  m.def("verify", &verify, "contracts"_a.none(), "chapter"_a.none(), "mutants"_a, "seed"_a, "trials"_a, "production"_a,
        "Runs the contract registry (or its mutants): one dict per contract (or mutant).");
  m.def("load_data", &load_data, "name"_a, "shape"_a.none(),
        "A dataset's splits as numpy arrays, read by the library's loaders (data::load_split).");
  m.def("run_cli", &run_cli, "argv"_a, "make_device"_a,
        "Runs the veridl command line (argv[0] the program name) in this process, IREE devices made by make_device; "
        "returns its exit status.");
  m.def(
      "iree_compile_flags",
      [](const std::string& device, const std::string& target) { return hlo::iree_target(device, target).flags; },
      "device"_a, "target"_a = "",
      "iree-compile's flags for --device iree:<driver> and --iree-target (export/iree_target.hpp).");
  // Tests only (tests/iree_train.py): a deliberate plumbing fault for the rest of the process (util/plumbing_fault.hpp).
  m.def(
      "_set_plumbing_fault",
      [](const std::string& name) {
        static std::unique_ptr<ScopedPlumbingFault> held;
        held.reset();
        if (name == "none") return;
        const std::map<std::string, PlumbingFault> known = {
            {"external_skips_running_update", PlumbingFault::ExternalSkipsRunningUpdate},
            {"external_stale_lr", PlumbingFault::ExternalStaleLr},
            {"lr_at_zero_based_step", PlumbingFault::LrAtZeroBasedStep}};
        auto it = known.find(name);
        if (it == known.end()) throw Error("_set_plumbing_fault: unknown fault '" + name + "'");
        held = std::make_unique<ScopedPlumbingFault>(it->second);
      },
      "name"_a, "Tests only: sets a deliberate plumbing fault (or 'none').");
  m.def("kernel_variant", [] { return std::string(kernels::isa_name(kernels::active_isa())); },
        "The kernel variant in use (portable, avx2, avx512): chosen at run time from the CPU.");
}
