#include "veridl/train/trainer.hpp"

#include "veridl/kernels/fpenv.hpp"

#include <fmt/core.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <utility>
#include <nlohmann/json.hpp>

#include "veridl/kernels/parallel.hpp"
#include "veridl/prims/softmaxCE/kernel.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/json_depth.hpp"
#include "veridl/util/plumbing_fault.hpp"
#include "veridl/util/text.hpp"

namespace veridl::train {

using Clock = std::chrono::steady_clock;

void he_init(const net::Plan& plan, uint64_t seed, float* params) {
  uint64_t k = 0;
  for (const auto& t : plan.params) {
    if (t.init != graph::Init::He) {  // biases, beta: 0; BatchNorm / LayerNorm gamma: 1; Const: its value
      const float v = t.init == graph::Init::One ? 1.0f : t.init == graph::Init::Const ? t.value : 0.0f;
      std::fill_n(params + t.offset, t.size, v);
      continue;
    }
    const float scale = std::sqrt(2.0f / static_cast<float>(t.fan_in));
    uint64_t s = seed + k + 1;
    ++k;
    for (size_t i = 0; i < t.size; ++i) {
      float acc = 0.0f;
      for (int r = 0; r < 3; ++r) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        acc += static_cast<float>(s) / static_cast<float>(UINT64_MAX) - 0.5f;
      }
      params[t.offset + i] = acc * 2.0f * scale;
    }
  }
}

void shuffle_indices(std::vector<uint32_t>& idx, uint64_t seed) {
  uint64_t rng = seed ^ 0x5DEECE66Dull;
  for (size_t i = idx.size(); i-- > 1;) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    size_t j = static_cast<size_t>((rng >> 16) % (i + 1));
    std::swap(idx[i], idx[j]);
  }
}

TrainStep::TrainStep(const net::Plan& plan, const OptimConfig& optim, uint64_t noise_seed)
    : ex_(plan), opt_(plan, optim), noise_seed_(noise_seed), n_(plan.batch) {}

void TrainStep::distribute(dist::Group& g, size_t first, size_t count, size_t global, bool sync_bn,
                           size_t bucket_bytes, bool reduce) {
  if (count == 0 || count > ex_.plan().batch) throw Error("distribute: the shard does not fit the plan's batch");
  group_ = &g;
  n_ = count;
  ex_.set_shard(first, global, sync_bn ? &g : nullptr);
  reducer_ = std::make_unique<dist::GradReducer>(ex_.plan(), g, ex_.mutable_grads().data(), bucket_bytes);
  if (reduce)
    ex_.set_backward_hook([](void* r, size_t node) { static_cast<dist::GradReducer*>(r)->node_done(node); },
                          reducer_.get());
  else
    reducer_.reset();  // a test's deliberate fault (VERIDL_TEST_DIST_FAULT=no-grad-allreduce)
  times_.ranks = g.size();
  times_.buckets = reducer_ ? reducer_->buckets() : 0;
  times_.grad_floats = reducer_ ? reducer_->floats() : 0;
}

void TrainStep::share_running_stats() {
  if (!group_) return;
  for (auto* r : ex_.running_stats()) group_->broadcast(r->data(), r->size());
}

namespace {
// The predicted class of one row of logits: the first maximum (training and evaluation count accuracy alike).
size_t first_max(const float* z, size_t K) {
  size_t best = 0;
  for (size_t k = 1; k < K; ++k)
    if (z[k] > z[best]) best = k;
  return best;
}
}  // namespace

float TrainStep::step(const float* x, const int32_t* labels, float lr, size_t t) {
  const size_t B = n_;
  const auto t0 = group_ ? Clock::now() : Clock::time_point{};  // data-parallel runs time compute and communication
  ex_.set_running_momentum(ops::running_stat_momentum(t));
  ex_.set_noise(noise_seed_, t);
  float loss = ex_.forward_loss(x, labels, B, live_, net::Mode::Train);
  // Training accuracy (first maximum wins, as evaluation counts), from the logits before backward reuses them.
  const size_t K = ex_.plan().num_classes;
  const float* z = ex_.logits_data();
  last_correct_ = 0;
  for (size_t b = 0; b < B; ++b) last_correct_ += static_cast<int32_t>(first_max(z + b * K, K)) == labels[b];
  if (!group_) {
    ex_.backward(1.0f);
    opt_.step(ex_.params().data(), ex_.mutable_grads().data(), lr, t);
    stop_agreed_ = stop_requested();
    return loss;
  }
  // Data-parallel: this rank's loss is its share of the global mean (the loss node averages over the global batch),
  // and its gradients its share of the global gradient; the buckets are posted by the backward hook as they complete.
  if (reducer_) reducer_->begin_step();
  ex_.backward(1.0f);
  const auto t1 = Clock::now();
  if (reducer_) reducer_->wait();
  double sums[3] = {static_cast<double>(loss), static_cast<double>(last_correct_), stop_requested() ? 1.0 : 0.0};
  group_->sum(sums, 3);
  const auto t2 = Clock::now();
  opt_.step(ex_.params().data(), ex_.mutable_grads().data(), lr, t);
  const auto t3 = Clock::now();
  last_correct_ = static_cast<size_t>(sums[1]);
  stop_agreed_ = sums[2] > 0;
  ++times_.steps;
  times_.compute_seconds += std::chrono::duration<double>((t1 - t0) + (t3 - t2)).count();
  times_.exposed_comm_seconds += std::chrono::duration<double>(t2 - t1).count();
  return static_cast<float>(sums[0]);
}

Model TrainStep::model() {
  Model m{ex_.params(), {}};
  for (auto* r : ex_.running_stats()) m.running.push_back(*r);
  return m;
}

void TrainStep::set_model(const Model& m) {
  ex_.params() = m.params;
  auto rs = ex_.running_stats();
  if (rs.size() != m.running.size()) throw Error("model: running statistics do not match the network");
  for (size_t k = 0; k < rs.size(); ++k) *rs[k] = m.running[k];
}

std::vector<std::pair<std::string, const std::vector<float>*>> TrainStep::optimizer_state() {
  std::vector<std::pair<std::string, const std::vector<float>*>> r;
  for (auto& [name, buf] : opt_.state()) r.push_back({name, buf});
  return r;
}

void TrainStep::set_optimizer_state(const std::vector<std::vector<float>>& state) {
  auto mine = opt_.state();
  if (mine.size() != state.size()) throw Error("resume: optimizer state does not match the optimizer");
  for (size_t k = 0; k < state.size(); ++k) *mine[k].second = state[k];
}

EvalResult TrainStep::evaluate(const data::Dataset& ds, const data::Normalize& norm) {
  return train::evaluate(*this, ds, norm);
}

Model initial_model(const net::Plan& plan, uint64_t seed) {
  Model m;
  m.params.assign(plan.n_params, 0.0f);
  he_init(plan, seed, m.params.data());
  m.running = initial_running(plan);
  return m;
}

std::vector<std::vector<float>> initial_running(const net::Plan& plan) {
  std::vector<std::vector<float>> running;
  for (const auto& n : plan.nodes)
    for (const auto& st : n.decl.state) running.emplace_back(st.size, static_cast<float>(st.init));
  return running;
}

namespace {

// A test hook (tests/torch_conformance.py): with the environment variable VERIDL_TEST_DECISIONS set to a file name,
// train() writes to that file, per training step, one JSON line with the batch and every random decision the step
// applied, so that an independent reference can apply the same decisions through its own implementation of the
// operations:
//   {"step": t, "epoch": e, "batch": k, "examples": [training-set index of each batch position],
//    "boxes": [[x0, y0, w, h] per example] (random-resized-crop on), "crops": [[dy, dx] per example] (crop-pad on;
//    offsets into the zero-padded image), "flips": [0/1 per example] (flip on), "jitters": [[o0, o1, o2, brightness,
//    contrast, saturation] per example: the colour jitter's order (0 brightness, 1 contrast, 2 saturation) and
//    factors] (colour jitter on),
//    "keep": {"<node>": "0110..." (each dropout / dropPath node: its saved decisions, batch-major, 1 = kept)}}
// The boxes and offsets are the values the gather and augment_batch drew and used; the keep strings are the bytes the
// node's forward saved for its backward. Unset (always, outside that test), nothing is allocated, drawn or written.
class DecisionDump {
 public:
  DecisionDump(size_t batch, bool native) {
    const char* path = std::getenv("VERIDL_TEST_DECISIONS");
    if (!path || !*path || batch == 0) return;
    if (!native) throw Error("VERIDL_TEST_DECISIONS: the decision dump reads the native engine's executor; unset it");
    f_ = std::fopen(path, "w");
    if (!f_) throw Error(fmt::format("VERIDL_TEST_DECISIONS: cannot write '{}': {}", path, std::strerror(errno)));
    boxes_.resize(batch);
    drawn_.resize(batch);
  }
  ~DecisionDump() {
    if (f_) std::fclose(f_);
  }
  DecisionDump(const DecisionDump&) = delete;
  DecisionDump& operator=(const DecisionDump&) = delete;
  data::CropBox* box(size_t b) { return f_ ? &boxes_[b] : nullptr; }
  data::AugmentDraw* drawn() {
    if (!f_) return nullptr;
    std::fill(drawn_.begin(), drawn_.end(), data::AugmentDraw{});
    return drawn_.data();
  }
  void write(size_t step, size_t epoch, size_t batch, const uint32_t* examples, const data::AugmentConfig& aug,
             net::Executor<float, net::FastKernels>* ex) {
    if (!f_) return;
    const size_t B = boxes_.size();
    std::string line = fmt::format(R"({{"step": {}, "epoch": {}, "batch": {}, "examples": [)", step, epoch, batch);
    for (size_t b = 0; b < B; ++b) line += fmt::format("{}{}", b ? ", " : "", examples[b]);
    line += "]";
    if (aug.resized_crop) {
      line += R"(, "boxes": [)";
      for (size_t b = 0; b < B; ++b)
        line += fmt::format("{}[{}, {}, {}, {}]", b ? ", " : "", boxes_[b].x0, boxes_[b].y0, boxes_[b].w, boxes_[b].h);
      line += "]";
    }
    if (aug.pad > 0) {
      line += R"(, "crops": [)";
      for (size_t b = 0; b < B; ++b) line += fmt::format("{}[{}, {}]", b ? ", " : "", drawn_[b].dy, drawn_[b].dx);
      line += "]";
    }
    if (aug.flip) {
      line += R"(, "flips": [)";
      for (size_t b = 0; b < B; ++b) line += fmt::format("{}{}", b ? ", " : "", drawn_[b].flip ? 1 : 0);
      line += "]";
    }
    if (aug.jitter()) {
      line += R"(, "jitters": [)";
      for (size_t b = 0; b < B; ++b) {
        const data::JitterDraw& j = drawn_[b].jitter;
        line += fmt::format("{}[{}, {}, {}, {:.17g}, {:.17g}, {:.17g}]", b ? ", " : "", j.order[0], j.order[1], j.order[2],
                            j.brightness, j.contrast, j.saturation);
      }
      line += "]";
    }
    line += R"(, "keep": {)";
    bool first = true;
    const net::Plan& plan = ex->plan();  // (train() refuses the hook with an external device: no executor)
    for (size_t k = 0; k < plan.nodes.size(); ++k) {
      const size_t per = plan.nodes[k].decl.keep_per_example;
      if (per == 0) continue;
      const uint8_t* keep = ex->saved8(k, 0);
      line += fmt::format(R"({}"{}": ")", first ? "" : ", ", plan.nodes[k].name);
      for (size_t i = 0; i < B * per; ++i) line += keep[i] ? '1' : '0';
      line += '"';
      first = false;
    }
    line += "}}\n";
    if (std::fputs(line.c_str(), f_) < 0) throw Error("VERIDL_TEST_DECISIONS: write failed");
  }

 private:
  std::FILE* f_ = nullptr;
  std::vector<data::CropBox> boxes_;
  std::vector<data::AugmentDraw> drawn_;
};

// Evaluation runs in chunks of the training batch, at least 128 (fewer when the data is smaller).
size_t eval_chunk(size_t train_batch, size_t n) {
  return std::min(std::max<size_t>(train_batch, 128), std::max<size_t>(n, 1));
}

}  // namespace

EvalResult evaluate_chunks(size_t K, size_t chunk, float* input, const std::function<const float*(size_t n)>& forward,
                           const data::Dataset& ds, const data::Normalize& norm) {
  std::vector<float> probs(chunk * K);
  EvalResult r;
  r.classes = K;
  r.confusion.assign(K * K, 0);
  double loss_sum = 0;
  for (size_t start = 0; start < ds.n; start += chunk) {
    const size_t n = std::min(chunk, ds.n - start);
    ds.copy_images(start, n, input);
    data::normalize_batch(input, n, ds.C, ds.H * ds.W, norm);  // as the training batches were
    const float* z = forward(n);
    const int32_t* labels = ds.labels.data() + start;
    const float l = kernels::softmax_ce_forward(ops::SoftmaxShape{n, K}, 0.0f, labels, z, probs.data());
    loss_sum += static_cast<double>(l) * static_cast<double>(n);
    for (size_t b = 0; b < n; ++b) {
      const float* zb = z + b * K;
      const size_t best = first_max(zb, K);
      const size_t label = static_cast<size_t>(labels[b]);
      if (labels[b] < 0 || label >= K)
        throw Error(fmt::format("{}: label {} of example {} is outside the network's {} classes", ds.source, labels[b],
                                start + b, K));
      r.correct += best == label;
      // The label's rank: classes above it, a tie counting for the lower class (as the first maximum wins).
      size_t rank = 0;
      for (size_t k = 0; k < K; ++k) rank += zb[k] > zb[label] || (k < label && zb[k] == zb[label]);
      r.correct5 += rank < 5;
      ++r.confusion[label * K + best];
    }
  }
  r.total = ds.n;
  r.loss = ds.n ? loss_sum / static_cast<double>(ds.n) : 0.0;
  return r;
}

namespace {
// Evaluates `ds` with `ex` as it stands (parameters, running statistics), Mode::Eval, in chunks of its
// batch. The loss is the plain cross-entropy (no label smoothing), whatever the executor's plan says.
EvalResult evaluate_with(net::Executor<float, net::FastKernels>& ex, const data::Dataset& ds, const data::Normalize& norm) {
  const net::Plan& plan = ex.plan();
  if (ds.n > 0 && ds.image_size() != plan.input_width())
    throw Error(fmt::format("evaluate: the data's images have {} values ({}x{}x{}), the network takes {}", ds.image_size(),
                            ds.C, ds.H, ds.W, plan.input_width()));
  Decisions live;
  return evaluate_chunks(plan.num_classes, plan.batch, ex.input(),
                         [&](size_t n) { return ex.forward(ex.input(), n, live, net::Mode::Eval); }, ds, norm);
}
}  // namespace

std::vector<double> EvalResult::per_class() const {
  std::vector<double> acc(classes, -1.0);
  for (size_t c = 0; c < classes; ++c) {
    size_t n = 0;
    for (size_t p = 0; p < classes; ++p) n += confusion[c * classes + p];
    if (n) acc[c] = 100.0 * static_cast<double>(confusion[c * classes + c]) / static_cast<double>(n);
  }
  return acc;
}

EvalResult evaluate(const net::Plan& train_plan, const Model& model, const data::Dataset& ds, const data::Normalize& norm) {
  // An inference executor (no gradient buffers) of at most the training batch's activation memory.
  net::Plan plan = net::compile(train_plan.spec, eval_chunk(train_plan.batch, ds.n), 0.0);
  net::Executor<float, net::FastKernels> ex(plan, net::Purpose::Inference);
  ex.params() = model.params;
  auto rs = ex.running_stats();
  if (rs.size() != model.running.size()) throw Error("evaluate: running statistics do not match the network");
  for (size_t k = 0; k < rs.size(); ++k) *rs[k] = model.running[k];
  return evaluate_with(ex, ds, norm);
}

EvalResult evaluate(TrainStep& ts, const data::Dataset& ds, const data::Normalize& norm) {
  // The training executor itself when its batch is the evaluation chunk (a training batch of 128 or more):
  // no second set of activations. Its next training step recomputes everything the evaluation overwrote.
  net::Executor<float, net::FastKernels>& ex = ts.executor();
  if (ex.plan().batch == eval_chunk(ex.plan().batch, ds.n)) return evaluate_with(ex, ds, norm);
  return evaluate(ex.plan(), ts.model(), ds, norm);
}

std::vector<std::pair<std::string, size_t>> running_stat_tensors(const net::Plan& plan) {
  std::vector<std::pair<std::string, size_t>> r;
  for (const auto& n : plan.nodes)
    for (const auto& s : n.decl.state) r.push_back({n.name + "." + s.name, s.size});
  return r;
}

Checkpoint make_checkpoint(const net::Plan& plan, const Model& model, const std::map<std::string, std::string>& metadata) {
  Checkpoint ck;
  for (const auto& t : plan.params)
    ck.tensors.push_back({t.name, t.shape,
                          std::vector<float>(model.params.begin() + static_cast<std::ptrdiff_t>(t.offset),
                                             model.params.begin() + static_cast<std::ptrdiff_t>(t.offset + t.size))});
  auto rt = running_stat_tensors(plan);
  if (rt.size() != model.running.size()) throw Error("checkpoint: running statistics do not match the network");
  for (size_t k = 0; k < rt.size(); ++k) ck.tensors.push_back({rt[k].first, {int64_t(rt[k].second)}, model.running[k]});
  ck.metadata = metadata;
  ck.metadata["format"] = kCheckpointFormat;
  ck.metadata["spec"] = plan.spec.to_json().dump();
  return ck;
}

void check_checkpoint_format(const Checkpoint& ck, const std::string& path, bool required) {
  auto it = ck.metadata.find("format");
  if (it == ck.metadata.end()) {
    if (required) throw Error(path + ": not a resumable VeriDL checkpoint (no 'format' metadata)");
    return;
  }
  if (it->second != kCheckpointFormat)
    throw Error(fmt::format("{}: checkpoint format '{}' is not one this VeriDL reads ({}){}", path, printable(it->second, 80),
                            kCheckpointFormat,
                            it->second.rfind("veridl-checkpoint-", 0) == 0 ? ": written by another version of VeriDL?" : ""));
}

Model model_from_checkpoint(const net::Plan& plan, const Checkpoint& ck, const std::string& path) {
  check_checkpoint_format(ck, path, false);
  auto shp = [](const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
  };
  auto fetch = [&](const std::string& name, const std::vector<int64_t>& shape) -> const Tensor& {
    const Tensor* src = ck.find(name);
    if (!src) throw Error(path + ": checkpoint has no tensor '" + name + "' (is it a checkpoint of " + plan.spec.name + "?)");
    if (src->shape != shape)
      throw Error(path + ": tensor '" + name + "' has shape " + shp(src->shape) + ", the network expects " + shp(shape));
    return *src;
  };
  Model m;
  m.params.resize(plan.n_params);
  for (const auto& t : plan.params) {
    const Tensor& src = fetch(t.name, t.shape);
    std::copy(src.data.begin(), src.data.end(), m.params.begin() + static_cast<std::ptrdiff_t>(t.offset));
  }
  auto rt = running_stat_tensors(plan);
  for (const auto& [name, c] : rt) m.running.push_back(fetch(name, {int64_t(c)}).data);
  size_t model_tensors = 0;
  for (const auto& t : ck.tensors) model_tensors += t.name.rfind("optimizer.", 0) != 0;
  if (model_tensors != plan.params.size() + rt.size())
    throw Error(path + fmt::format(": checkpoint has {} model tensors, {} expects {}", model_tensors, plan.spec.name,
                                   plan.params.size() + rt.size()));
  return m;
}

RunMemory plan_run_memory(const net::Plan& plan, const TrainConfig& cfg, size_t test_images) {
  RunMemory m;
  const uint64_t n = plan.n_params, f = sizeof(float);
  const uint64_t state = optimizer_state_tensors(cfg.optim);
  uint64_t running = 0;
  for (const auto& [name, c] : running_stat_tensors(plan)) running += c;
  m.params = 2 * n * f + running * f;
  m.optimizer = state * n * f;
  m.activations = plan.train.bytes(sizeof(float)) + plan.batch * plan.input_width() * f;  // + the gathered batch
  const size_t chunk = eval_chunk(plan.batch, test_images);
  if (chunk != plan.batch)
    m.evaluation = net::compile(plan.spec, chunk, 0.0).infer.bytes(sizeof(float)) + 2 * (n + running) * f;
  if (!cfg.out.empty()) m.checkpoint = (n + running + state * n) * f + n * f;  // the tensors, and the model copy
  return m;
}

uint64_t checkpoint_bytes(const net::Plan& plan, const OptimConfig& optim) {
  uint64_t floats = plan.n_params * (1 + optimizer_state_tensors(optim)), entries = plan.params.size() + 2;
  for (const auto& [name, c] : running_stat_tensors(plan)) {
    floats += c;
    ++entries;
  }
  // The header: one JSON entry per tensor (name, dtype, shape, offsets: under 256 bytes each), the spec and the
  // training config (the spec's JSON is what the NetSpec printer writes), the other metadata.
  const uint64_t header = 8 + 256 * entries + plan.spec.to_json().dump().size() * 2 + 4096;
  return floats * sizeof(float) + header;
}

namespace {

std::atomic<bool> g_stop{false};

// metrics.csv and metrics.jsonl of a run folder, appended (a resumed run continues them). Lines are formatted on
// the stack (fmt's inline buffer): a step line allocates nothing.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& dir) {
    if (dir.empty()) return;
    const std::string csv_path = dir + "/metrics.csv", jsonl_path = dir + "/metrics.jsonl";
    const bool fresh = empty(csv_path);
    csv_ = open(csv_path);
    jsonl_ = open(jsonl_path);
    if (fresh)
      fmt::print(csv_, "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,lr,images_per_second,seconds\n");
  }
  ~MetricsLog() {
    for (FILE* f : {csv_, jsonl_})
      if (f) std::fclose(f);
  }
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void step(size_t epoch, size_t step, double loss, double lr) {
    if (jsonl_) fmt::print(jsonl_, "{{\"type\":\"step\",\"epoch\":{},\"step\":{},\"loss\":{},\"lr\":{}}}\n", epoch, step, loss, lr);
  }
  void epoch(size_t epoch, size_t step, double loss, double acc, const EvalResult* val, double lr, double rate,
             double secs) {
    if (!csv_) return;
    fmt::print(csv_, "{},{},{},{},{},{},{},{},{}\n", epoch, step, loss, acc, val ? fmt::format("{}", val->loss) : "",
               val ? fmt::format("{}", val->accuracy()) : "", lr, rate, secs);
    fmt::print(jsonl_,
               "{{\"type\":\"epoch\",\"epoch\":{},\"step\":{},\"train_loss\":{},\"train_accuracy\":{},{}\"lr\":{},"
               "\"images_per_second\":{},\"seconds\":{}}}\n",
               epoch, step, loss, acc,
               val ? fmt::format("\"val_loss\":{},\"val_accuracy\":{},\"val_top5\":{},", val->loss, val->accuracy(),
                                 val->top5())
                   : "",
               lr, rate, secs);
    flush();
  }
  void test(const EvalResult& t) {
    if (!jsonl_) return;
    fmt::print(jsonl_, "{{\"type\":\"test\",\"loss\":{},\"accuracy\":{},\"top5\":{},\"correct\":{},\"total\":{}}}\n",
               t.loss, t.accuracy(), t.top5(), t.correct, t.total);
    flush();
  }
  void flush() {
    for (FILE* f : {csv_, jsonl_})
      if (f) std::fflush(f);
  }

 private:
  static bool empty(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) return true;
    const bool e = std::fgetc(f) == EOF;
    std::fclose(f);
    return e;
  }
  static FILE* open(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "a");
    if (!f) throw Error(fmt::format("cannot write metrics '{}': {}", path, std::strerror(errno)));
    return f;
  }
  FILE* csv_ = nullptr;
  FILE* jsonl_ = nullptr;
};

// Metadata 'classes': the data's class names as a JSON array of strings (veridl predict prints them), when known.
void add_classes(std::map<std::string, std::string>& meta, const data::Split& data) {
  if (!data.classes.empty()) meta["classes"] = nlohmann::json(data.classes).dump();
}

// A weights-only checkpoint (parameters and running statistics, no optimizer state): `veridl eval` reads it,
// `--resume` refuses it (no position).
void save_weights(const std::string& path, const net::Plan& plan, StepEngine& ts, const data::Split& data,
                  const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> meta = {{"data", data.name}, {"weights_only", "true"}};
  add_classes(meta, data);
  for (const auto& [k, v] : extra) meta[k] = v;
  save_safetensors(path, make_checkpoint(plan, ts.model(), meta));
}

// A preset by name ("imagenet"), explicit lists as {"mean": [...], "std": [...]}.
nlohmann::json normalize_json(const data::Normalize& n) {
  if (n.name != "custom") return n.name;
  std::vector<double> m(n.mean.begin(), n.mean.end()), s(n.std.begin(), n.std.end());
  return {{"mean", m}, {"std", s}};
}
data::Normalize normalize_from_json(const nlohmann::json& j, const std::string& what) {
  if (j.is_string()) return data::parse_normalize(j.get<std::string>(), what);
  return data::normalize_mean_std(j.at("mean").get<std::vector<double>>(), j.at("std").get<std::vector<double>>(), what);
}
}  // namespace

nlohmann::json config_json(const TrainConfig& c) {
  const OptimConfig& o = c.optim;
  nlohmann::json j = {{"optimizer", o.kind},          {"lr", o.lr},
                      {"momentum", o.momentum},       {"beta1", o.beta1},
                      {"beta2", o.beta2},             {"eps", o.eps},
                      {"weightDecay", o.weight_decay}, {"cosine", o.cosine},
                      {"warmupEpochs", o.warmup_epochs}, {"clipNorm", o.clip_norm},
                      {"batch", c.batch},             {"epochs", c.epochs},
                      {"labelSmoothing", c.label_smoothing}, {"seed", c.seed},
                      {"evalEvery", c.eval_every},    {"checkpointEvery", c.checkpoint_every},
                      {"augmentCropPad", c.augment.pad}, {"augmentFlip", c.augment.flip}};
  // Written only when on, so that the checkpoints of runs without them keep their bytes (tests/test_bitpin.cpp).
  if (c.augment.resized_crop) j["augmentResizedCrop"] = true;
  if (!c.normalize.none()) j["normalize"] = normalize_json(c.normalize);
  if (c.augment.brightness > 0) j["colorJitterBrightness"] = c.augment.brightness;
  if (c.augment.contrast > 0) j["colorJitterContrast"] = c.augment.contrast;
  if (c.augment.saturation > 0) j["colorJitterSaturation"] = c.augment.saturation;
  if (!c.dataset.empty()) j["dataset"] = c.dataset;
  if (c.data_mismatch_ok) j["dataMismatchOk"] = true;
  if (o.adamw_decay != "after") j["adamwDecay"] = o.adamw_decay;
  if (c.val_split > 0) j["valSplit"] = c.val_split;
  if (c.keep_last > 0) j["keepLast"] = c.keep_last;
  if (c.patience > 0) j["patience"] = c.patience;
  if (c.best_metric != "val_accuracy") j["bestMetric"] = c.best_metric;
  // A data-parallel run's (docs/distributed.md): --resume continues it with the same rank count and BatchNorm mode.
  if (c.dist && c.dist->size() > 1) j["ranks"] = c.dist->size();
  if (c.sync_bn) j["syncBatchNorm"] = true;
  if (!c.flush_subnormals) j["keepSubnormals"] = true;
  return j;
}

namespace {

// Where a run stands: the live line on a terminal, a log line otherwise.
struct Progress {
  size_t epoch, epochs, batch, bpe;
  double loss, accuracy;  // running over the epoch's batches so far
  double elapsed, rate, eta;
};
void progress_line(const Progress& p) {
  fmt::print(stderr, "\r  epoch {}/{}  batch {}/{}  loss {:.4f}  acc {:.1f}%  {:.0f} img/s  elapsed {:.1f}s  ETA {:.1f}s   ",
             p.epoch, p.epochs, p.batch, p.bpe, p.loss, p.accuracy, p.rate, p.elapsed, p.eta);
  std::fflush(stderr);
}
void progress_log(FILE* log, const Progress& p) {
  fmt::print(log, "  progress: epoch {}/{} batch {}/{}, running loss {:.6f}, accuracy {:.2f}%, {:.0f} img/s, elapsed {:.1f}s, "
             "ETA {:.1f}s\n",
             p.epoch, p.epochs, p.batch, p.bpe, p.loss, p.accuracy, p.rate, p.elapsed, p.eta);
}

// A checkpoint that can also be resumed: parameters, optimizer state, position, config, spec; with a validation set
// (validating), the early-stopping state too. Written to cfg.out and, for an epoch's end under --keep-last, to its
// epoch file first (so cfg.out is never newer than the newest epoch file).
void save_state(const TrainConfig& cfg, const net::Plan& plan, StepEngine& ts, const ResumeState& st, bool complete,
                const data::Split& data, bool validating, bool epoch_end, const EvalResult* ev,
                const EvalResult* val = nullptr) {
  std::map<std::string, std::string> meta = {{"config", config_json(cfg).dump()},
                                             {"data", data.name},
                                             {"epoch", std::to_string(st.epoch)},
                                             {"batch", std::to_string(st.batch)},
                                             {"step", std::to_string(st.step)},
                                             {"epoch_loss", fmt::format("{:a}", st.epoch_loss)},
                                             {"complete", complete ? "true" : "false"}};
  add_classes(meta, data);
  if (ev) meta["test_accuracy"] = fmt::format("{:.4f}", ev->accuracy());
  if (val) meta["val_accuracy"] = fmt::format("{:.4f}", val->accuracy());
  // Only with a validation set: the checkpoints of runs without one keep their bytes (tests/test_bitpin.cpp).
  if (validating) {
    meta["best_epoch"] = std::to_string(st.best_epoch);
    meta["best_value"] = fmt::format("{:a}", st.best_value);
    meta["since_best"] = std::to_string(st.since_best);
    if (!cfg.run_dir.empty()) meta["run_dir"] = cfg.run_dir;  // where best.safetensors is: a resumed run continues it
  }
  Checkpoint ck = make_checkpoint(plan, ts.model(), meta);
  for (auto& [name, buf] : ts.optimizer_state()) ck.tensors.push_back({name, {int64_t(plan.n_params)}, *buf});
  if (epoch_end && cfg.keep_last > 0) save_safetensors(epoch_checkpoint_path(cfg.out, st.epoch), ck);
  save_safetensors(cfg.out, ck);
}

// The epoch checkpoints of `out` on disk: {epoch, path} for every <stem>.epoch-<N>.safetensors beside it.
std::vector<std::pair<size_t, std::string>> epoch_checkpoints(const std::string& out) {
  namespace fs = std::filesystem;
  const fs::path probe(epoch_checkpoint_path(out, 0));
  const std::string name = probe.filename().string();
  const std::string head = name.substr(0, name.size() - std::string("0.safetensors").size()), tail = ".safetensors";
  const fs::path dir = probe.parent_path().empty() ? fs::path(".") : probe.parent_path();
  std::vector<std::pair<size_t, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string f = it->path().filename().string();
    if (f.size() <= head.size() + tail.size() || f.compare(0, head.size(), head) != 0 ||
        f.compare(f.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    const std::string digits = f.substr(head.size(), f.size() - head.size() - tail.size());
    if (digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;
    found.push_back({std::stoul(digits), (probe.parent_path() / f).string()});
  }
  return found;
}

// --keep-last: deletes the epoch checkpoints of cfg.out older than the newest keep_last up to `epoch` (epoch files
// of later epochs, left by another run on the same --out, are left alone: this run overwrites them when it gets
// there). Returns the paths removed.
std::vector<std::string> prune_epoch_checkpoints(const TrainConfig& cfg, size_t epoch) {
  std::vector<std::pair<size_t, std::string>> kept = epoch_checkpoints(cfg.out);
  std::erase_if(kept, [&](const auto& e) { return e.first > epoch; });
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> removed;
  for (size_t k = cfg.keep_last; k < kept.size(); ++k) {
    std::error_code ec;
    if (std::filesystem::remove(kept[k].second, ec)) removed.push_back(kept[k].second);
  }
  return removed;
}

size_t meta_size(const Checkpoint& ck, const std::string& key, const std::string& path) {
  auto it = ck.metadata.find(key);
  if (it == ck.metadata.end()) throw Error(path + ": not a resumable VeriDL checkpoint (no '" + key + "' metadata)");
  try {
    size_t pos = 0;
    unsigned long long v = std::stoull(it->second, &pos);
    if (pos != it->second.size()) throw std::invalid_argument("trailing characters");
    return static_cast<size_t>(v);
  } catch (const std::exception&) {
    throw Error(path + ": metadata '" + key + "' is not a number: '" + it->second + "'");
  }
}

}  // namespace

std::string epoch_checkpoint_path(const std::string& out, size_t epoch) {
  const std::string ext = ".safetensors";
  const bool has_ext = out.size() > ext.size() && out.compare(out.size() - ext.size(), ext.size(), ext) == 0;
  return (has_ext ? out.substr(0, out.size() - ext.size()) : out) + ".epoch-" + std::to_string(epoch) + ext;
}

std::string resume_out_path(const std::string& path) {
  const std::string ext = ".safetensors", mark = ".epoch-";
  if (path.size() <= ext.size() || path.compare(path.size() - ext.size(), ext.size(), ext) != 0) return path;
  const std::string stem = path.substr(0, path.size() - ext.size());
  const size_t at = stem.rfind(mark);
  if (at == std::string::npos || at == 0 || stem[at - 1] == '/' || stem.find('/', at) != std::string::npos) return path;
  const std::string digits = stem.substr(at + mark.size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return path;
  return stem.substr(0, at) + ext;
}

data::Normalize recipe_normalize(const net::Recipe& r) {
  if (r.normalize == "custom") return data::normalize_mean_std(r.normalize_mean, r.normalize_std, "recipe.normalize");
  return data::parse_normalize(r.normalize, "recipe.normalize");
}

void recipe_jitter(const net::Recipe& r, data::AugmentConfig& a) {
  a.brightness = r.jitter_brightness;
  a.contrast = r.jitter_contrast;
  a.saturation = r.jitter_saturation;
}

void check_dataset(const std::string& spec_dataset, const std::string& data_name, bool mismatch_ok,
                   const std::string& spec_name) {
  if (spec_dataset.empty() || mismatch_ok || data_name == spec_dataset) return;
  throw Error(fmt::format("--data '{}' is not the dataset {} names in its recipe ('{}'): leave --data out to train on "
                          "'{}', or add --data-mismatch-ok to train on '{}' anyway",
                          printable(data_name, 200), spec_name, printable(spec_dataset, 200), printable(spec_dataset, 200),
                          printable(data_name, 200)));
}

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(false); }

Resumable load_resume_state(const std::string& path) {
  Checkpoint ck = load_safetensors(path);
  check_checkpoint_format(ck, path, true);
  Resumable r;
  auto get = [&](const std::string& key) -> const std::string& {
    auto it = ck.metadata.find(key);
    if (it == ck.metadata.end()) throw Error(path + ": not a resumable VeriDL checkpoint (no '" + key + "' metadata)");
    return it->second;
  };
  r.spec = net::parse_netspec(get("spec"), path + " (metadata 'spec')");
  nlohmann::json c;
  try {
    if (json_nesting_depth(get("config")) > kMaxJsonDepth) throw Error("nested deeper than the JSON depth limit");
    c = nlohmann::json::parse(get("config"));
    OptimConfig& o = r.cfg.optim;
    o.kind = c.at("optimizer").get<std::string>();
    o.lr = c.at("lr").get<double>();
    o.momentum = c.at("momentum").get<double>();
    o.beta1 = c.at("beta1").get<double>();
    o.beta2 = c.at("beta2").get<double>();
    o.eps = c.at("eps").get<double>();
    o.weight_decay = c.at("weightDecay").get<double>();
    o.cosine = c.at("cosine").get<bool>();
    o.warmup_epochs = c.at("warmupEpochs").get<double>();
    o.clip_norm = c.at("clipNorm").get<double>();
    o.adamw_decay = c.value("adamwDecay", std::string("after"));
    r.cfg.batch = c.at("batch").get<size_t>();
    r.cfg.epochs = c.at("epochs").get<size_t>();
    r.cfg.label_smoothing = c.at("labelSmoothing").get<double>();
    r.cfg.seed = c.at("seed").get<uint64_t>();
    r.cfg.eval_every = c.at("evalEvery").get<size_t>();
    r.cfg.checkpoint_every = c.at("checkpointEvery").get<size_t>();
    r.cfg.augment.pad = c.at("augmentCropPad").get<size_t>();
    r.cfg.augment.flip = c.at("augmentFlip").get<bool>();
    r.cfg.augment.resized_crop = c.value("augmentResizedCrop", false);
    r.cfg.normalize = normalize_from_json(c.value("normalize", nlohmann::json("none")), "normalize");
    r.cfg.augment.brightness = c.value("colorJitterBrightness", 0.0);
    r.cfg.augment.contrast = c.value("colorJitterContrast", 0.0);
    r.cfg.augment.saturation = c.value("colorJitterSaturation", 0.0);
    r.cfg.dataset = c.value("dataset", std::string());
    r.cfg.data_mismatch_ok = c.value("dataMismatchOk", false);
    r.cfg.val_split = c.value("valSplit", 0.0);
    r.cfg.keep_last = c.value("keepLast", size_t{0});
    r.cfg.patience = c.value("patience", size_t{0});
    r.cfg.best_metric = c.value("bestMetric", std::string("val_accuracy"));
    r.ranks = c.value("ranks", 1);
    r.cfg.sync_bn = c.value("syncBatchNorm", false);
    r.cfg.flush_subnormals = !c.value("keepSubnormals", false);
  } catch (const std::exception& e) {
    throw Error(path + ": metadata 'config' is not a VeriDL training config: " + std::string(e.what()));
  }
  r.data = get("data");
  r.complete = get("complete") == "true";
  r.state.epoch = meta_size(ck, "epoch", path);
  r.state.batch = meta_size(ck, "batch", path);
  r.state.step = meta_size(ck, "step", path);
  r.state.epoch_loss = std::strtod(get("epoch_loss").c_str(), nullptr);
  // The early-stopping state (absent from the checkpoints of runs without a validation set, and of older VeriDLs).
  if (ck.metadata.count("best_epoch")) {
    r.state.best_epoch = meta_size(ck, "best_epoch", path);
    r.state.since_best = meta_size(ck, "since_best", path);
    const std::string& v = get("best_value");
    char* end = nullptr;
    r.state.best_value = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0') throw Error(path + ": metadata 'best_value' is not a number: '" + printable(v, 80) + "'");
    if (r.state.best_epoch > r.state.epoch)
      throw Error(fmt::format("{}: metadata 'best_epoch' {} is after the checkpoint's epoch {}", path, r.state.best_epoch,
                              r.state.epoch));
    r.state.stopping_state = true;
    if (ck.metadata.count("run_dir")) r.state.run_dir = get("run_dir");
  }
  net::Plan plan = net::compile(r.spec, r.cfg.batch, r.cfg.label_smoothing);
  r.state.model = model_from_checkpoint(plan, ck, path);
  validate(r.cfg.optim);
  Optimizer probe(plan, r.cfg.optim);
  for (auto& [name, buf] : probe.state()) {
    const Tensor* t = ck.find(name);
    if (!t || t->data.size() != plan.n_params)
      throw Error(path + ": the run's " + r.cfg.optim.kind + " optimizer needs a tensor '" + name +
                  "' of " + std::to_string(plan.n_params) + " values, which the checkpoint lacks");
    r.state.optim_state.push_back(t->data);
  }
  return r;
}

data::Normalize checkpoint_normalization(const Checkpoint& ck, const net::NetSpec& spec, const std::string& path) {
  auto it = ck.metadata.find("config");
  if (it == ck.metadata.end())
    return spec.recipe ? recipe_normalize(*spec.recipe) : data::Normalize::None;
  try {
    if (json_nesting_depth(it->second) > kMaxJsonDepth) throw Error("nested deeper than the JSON depth limit");
    const nlohmann::json c = nlohmann::json::parse(it->second);
    if (!c.is_object()) throw Error("not a JSON object");
    return normalize_from_json(c.value("normalize", nlohmann::json("none")), "normalize");
  } catch (const std::exception& e) {
    throw Error(path + ": metadata 'config' is not a VeriDL training config: " + std::string(e.what()));
  }
}

void check_data_parallel(const TrainConfig& cfg) {
  const dist::Group* const group = cfg.dist;
  if (cfg.sync_bn && !group)
    throw Error("--sync-bn: synchronized BatchNorm needs a data-parallel run (mpirun -np N veridl train ...)");
  if (group && cfg.batch < static_cast<size_t>(group->size()))
    throw Error(fmt::format("--batch {} is smaller than the {} ranks: every rank needs at least one example of each batch",
                            cfg.batch, group->size()));
  if (group && cfg.engine)
    throw Error(fmt::format("--device {}: a data-parallel run (mpirun) runs on the native engine only", cfg.device));
}

TrainResult train(const net::NetSpec& spec, const TrainConfig& cfg_in, const data::Split& data, const ResumeState* resume) {
  // Data-parallel (docs/distributed.md): every rank runs this function on its shard; only rank 0 writes files.
  TrainConfig cfg = cfg_in;
  dist::Group* const group = cfg.dist;
  if (group && group->rank() != 0) {
    cfg.out.clear();
    cfg.run_dir.clear();
    cfg.keep_last = 0;
  }
  const data::Dataset& tr = data.train;
  if (cfg.batch == 0) throw Error("--batch must be positive");
  check_data_parallel(cfg);
  if (cfg.epochs == 0) throw Error("--epochs must be positive");
  validate(cfg.optim);
  if (tr.image_size() != spec.input_size())
    throw Error(fmt::format("{}: images are {}x{}x{} but {} expects {}x{}x{}", tr.source, tr.C, tr.H, tr.W, spec.name,
                            spec.channels, spec.imageH, spec.imageW));
  check_normalize_channels(cfg.normalize, tr.C, "normalize");
  check_dataset(cfg.dataset, data.name, cfg.data_mismatch_ok, spec.name);
  if (cfg.augment.saturation > 0 && tr.C != 3)
    throw Error(fmt::format("colour jitter: saturation needs RGB images, but the images of {} have {} channel{}",
                            tr.source, tr.C, tr.C == 1 ? "" : "s"));
  if (tr.n < cfg.batch)
    throw Error(fmt::format("{}: {} training images is fewer than one batch of {}", tr.source, tr.n, cfg.batch));
  const size_t classes = spec.num_classes();  // lowers the spec: once, not per label
  if (tr.num_classes > classes)
    throw Error(fmt::format("{}: the data has {} classes but {}'s last layer has {} outputs (fanOut)", tr.source,
                            tr.num_classes, spec.name, classes));
  if (data.val.n > 0 && data.val.image_size() != tr.image_size())
    throw Error(fmt::format("{}: validation images are {}x{}x{} but the training images are {}x{}x{}", data.val.source,
                            data.val.C, data.val.H, data.val.W, tr.C, tr.H, tr.W));
  for (const auto* ds : {&data.train, &data.val, &data.test})
    for (size_t i = 0; i < ds->n; ++i)
      if (ds->labels[i] < 0 || static_cast<size_t>(ds->labels[i]) >= classes)
        throw Error(fmt::format("{}: label {} of example {} is outside the network's {} classes", ds->source, ds->labels[i],
                                i, classes));
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const kernels::FlushSubnormals flush(cfg.flush_subnormals);  // until the run returns (kernels/fpenv.hpp)

  // (a test's deliberate mutant drops the smoothing here: util/plumbing_fault.hpp)
  const bool no_smoothing = plumbing_fault() == PlumbingFault::PlanWithoutLabelSmoothing;
  // A rank's shard of every global batch (the first B mod N ranks take one more example); every rank compiles the same
  // plan, at the largest shard.
  dist::Shard shard = group ? dist::shard_of(cfg.batch, group->size(), group->rank()) : dist::Shard{0, cfg.batch};
  const size_t plan_batch = group ? (cfg.batch + size_t(group->size()) - 1) / size_t(group->size()) : cfg.batch;
  net::Plan plan = net::compile(spec, plan_batch, no_smoothing ? 0.0 : cfg.label_smoothing);
  // The engine: the native TrainStep, or the external device cfg.engine makes (it compiles and opens it here, before
  // any step: its errors are one line before training). A data-parallel run is native (refused above otherwise).
  std::unique_ptr<StepEngine> engine =
      cfg.engine ? cfg.engine(plan, cfg) : std::make_unique<TrainStep>(plan, cfg.optim, cfg.seed);
  StepEngine& ts = *engine;
  TrainStep* const native = group ? static_cast<TrainStep*>(engine.get()) : nullptr;
  if (group) {
    // A test hook (tests/distributed.py --mode self-test): VERIDL_TEST_DIST_FAULT injects a data-parallel bug that the
    // comparison with the one-process run must catch: "no-grad-allreduce" (each rank steps on its own shard's
    // gradient), "local-mean" (the loss averaged over the shard, not the global batch), "same-shard" (every rank on
    // the first shard). Unset (always, outside that test), nothing changes.
    const char* f = std::getenv("VERIDL_TEST_DIST_FAULT");
    const std::string fault = f ? f : "";
    if (!fault.empty() && fault != "no-grad-allreduce" && fault != "local-mean" && fault != "same-shard")
      throw Error("VERIDL_TEST_DIST_FAULT: unknown fault '" + fault + "'");
    if (fault == "same-shard") shard.first = 0;
    native->distribute(*group, shard.first, shard.count, fault == "local-mean" ? shard.count : cfg.batch, cfg.sync_bn,
                       cfg.bucket_bytes, fault != "no-grad-allreduce");
  }
  ResumeState st;
  if (resume) {
    st = *resume;
    ts.set_model(st.model);
    const bool warm_start = st.step == 0 && st.optim_state.empty();  // a model, a fresh optimizer (trainer.hpp)
    if (!warm_start) ts.set_optimizer_state(st.optim_state);
  } else {
    st.stopping_state = true;  // a fresh run starts the early-stopping state itself
    ts.set_model(initial_model(plan, cfg.seed));
  }

  TrainResult res;
  res.train_images = tr.n;
  const size_t bpe = tr.n / cfg.batch;  // the ragged tail of each epoch is dropped (as the original)
  res.batches_per_epoch = bpe;
  res.step_loss.reserve(cfg.epochs * bpe);  // the step loop allocates nothing
  res.step_lr.reserve(cfg.epochs * bpe);
  const bool lr_mutant = plumbing_fault() == PlumbingFault::LrAtZeroBasedStep;  // a test's (util/plumbing_fault.hpp)
  if (resume && (st.epoch > cfg.epochs || st.batch > bpe))
    throw Error(fmt::format("resume position epoch {} batch {} does not fit this run ({} epochs of {} batches)", st.epoch,
                            st.batch, cfg.epochs, bpe));
  const size_t D = tr.image_size();
  FILE* log = cfg.log;
  fmt::print(log, "{}: {} params\n", spec.name, plan.n_params);
  fmt::print(log, "  train: {} images ({} floats/image), {}test: {}, from {}\n", tr.n, D,
             data.val.n ? fmt::format("validation: {} images, ", data.val.n) : std::string(),
             data.test.n ? fmt::format("{} images", data.test.n) : std::string("none"), data.name);
  const OptimConfig& oc = cfg.optim;
  std::string opt_name = oc.kind == "sgd" ? (oc.momentum > 0 ? fmt::format("SGD+momentum {}", oc.momentum) : "SGD")
                                          : (oc.kind == "adam" ? "Adam" : "AdamW");
  fmt::print(log, "training: {} batches/epoch, batch={}, {}, lr={:.6f}{}{}{}{}\n", bpe, cfg.batch, opt_name, oc.lr,
             oc.cosine ? fmt::format(", cosine warmup={}", oc.warmup_epochs) : "",
             cfg.label_smoothing > 0 ? fmt::format(", label_smooth={}", cfg.label_smoothing) : "",
             oc.weight_decay > 0 ? fmt::format(", wd={}", oc.weight_decay) : "",
             oc.clip_norm > 0 ? fmt::format(", clip={}", oc.clip_norm) : "");
  if (cfg.engine) fmt::print(log, "  device: {} (the exported StableHLO train step and eval forward)\n", cfg.device);
  if (data.val.n) fmt::print(log, "  validation set: {}\n", data.val.source);
  if (cfg.augment.enabled())
    fmt::print(log, "  augmentation: random crop pad {}, horizontal flip {}{}\n", cfg.augment.pad,
               cfg.augment.flip ? "on" : "off",
               cfg.augment.resized_crop
                   ? fmt::format(", random-resized-crop (scale 0.08-1, ratio 3/4-4/3) from {}", tr.has_stored()
                                     ? fmt::format("images stored at shorter side <= {}", data::stored_side(tr.H, tr.W))
                                     : fmt::format("the {}x{} images", tr.H, tr.W))
                   : "");
  if (!cfg.normalize.none()) {
    std::string m, sd;
    for (size_t c = 0; c < cfg.normalize.mean.size(); ++c) {
      m += fmt::format(" {}", cfg.normalize.mean[c]);
      sd += fmt::format(" {}", cfg.normalize.std[c]);
    }
    fmt::print(log, "  normalization: {} (mean{}, std{}), training and evaluation\n",
               cfg.normalize.name == "custom" ? "per-channel" : cfg.normalize.name, m, sd);
  }
  if (cfg.augment.jitter())
    fmt::print(log, "  colour jitter: brightness {}, contrast {}, saturation {} (torchvision's ColorJitter, random order)\n",
               cfg.augment.brightness, cfg.augment.contrast, cfg.augment.saturation);
  if (group)
    fmt::print(log, "data-parallel: rank {} of {}, examples {}-{} of each batch of {}, {} BatchNorm{}\n", group->rank(),
               group->size(), shard.first, shard.first + shard.count - 1, cfg.batch,
               running_stat_tensors(plan).empty() ? "no" : cfg.sync_bn ? "synchronized" : "per-rank",
               group->rank() == 0 ? "; rank 0 writes the checkpoints" : "");
  if (resume && (st.step > 0 || !st.optim_state.empty()))
    fmt::print(log, "resuming at epoch {} batch {} (step {})\n", st.epoch + 1, st.batch, st.step);
  else if (resume)
    fmt::print(log, "starting from the given parameters (fresh optimizer and schedule)\n");
  std::fflush(log);

  // The data order: the cumulative shuffle of every epoch so far, replayed (cheap, and exact).
  std::vector<uint32_t> order(tr.n);
  for (size_t i = 0; i < tr.n; ++i) order[i] = static_cast<uint32_t>(i);
  for (size_t e = 0; e < st.epoch; ++e) shuffle_indices(order, e + cfg.seed);
  std::vector<int32_t> labels(cfg.batch);
  std::vector<float> aug_scratch(cfg.augment.enabled() ? D : 0);
  // a test hook, off unless VERIDL_TEST_DECISIONS is set (one process only)
  DecisionDump dump(group ? 0 : cfg.batch, ts.executor_or_null() != nullptr);
  std::vector<std::exception_ptr> gather_error(cfg.batch);  // by the first example of a thread's chunk
  const bool show_progress = cfg.progress && isatty(fileno(stderr));
  const bool log_progress = cfg.progress && !show_progress;
  const double st_epoch_loss0 = st.epoch_loss;  // a resumed epoch's loss sum before the resume
  if (cfg.best_metric != "val_accuracy" && cfg.best_metric != "val_loss")
    throw Error("--best-metric: '" + cfg.best_metric + "' is not supported (supported: val_accuracy, val_loss)");
  const bool by_loss = cfg.best_metric == "val_loss";
  // The early-stopping state continues a resumed run's (saved in its checkpoint), so that best.safetensors and the stop
  // come at the epochs the uninterrupted run's would.
  double best_value = st.best_value;
  size_t since_best = st.since_best;
  res.best_epoch = st.best_epoch;
  const bool validating = data.val.n > 0;
  if (resume && validating && !st.stopping_state)
    fmt::print(log, "  note: the checkpoint has no early-stopping state (written by an older VeriDL): the best {} and "
               "the --patience count start afresh at this epoch\n", cfg.best_metric);
  // Where the run stands, with the early-stopping state, for a checkpoint.
  auto position = [&](size_t epoch, size_t batch, double loss) {
    ResumeState p;
    p.epoch = epoch;
    p.batch = batch;
    p.step = st.step;
    p.epoch_loss = loss;
    p.best_epoch = res.best_epoch;
    p.best_value = best_value;
    p.since_best = since_best;
    p.stopping_state = true;
    return p;
  };
  MetricsLog metrics(cfg.run_dir);
  // ln C is the cross-entropy of equal logits, where training starts (at least 1: a one- or two-class net too).
  const double diverge_limit = cfg.diverge_factor * std::max(1.0, std::log(static_cast<double>(classes)));
  double lr = oc.lr;
  auto run_start = Clock::now();
  const size_t first_epoch = st.epoch;
  for (size_t epoch = first_epoch; epoch < cfg.epochs; ++epoch) {
    // Cumulative: shuffles the previous epoch's order. A resumed epoch gets the same order and then
    // skips the batches already run.
    shuffle_indices(order, epoch + cfg.seed);
    auto t0 = Clock::now();
    double epoch_loss = (epoch == first_epoch) ? st.epoch_loss : 0.0;
    const size_t first_batch = (epoch == first_epoch) ? st.batch : 0;
    size_t epoch_correct = 0;  // of the batches this call runs (a resumed epoch: those after the resume)
    for (size_t bi = first_batch; bi < bpe; ++bi) {
      // Data-parallel: the stop every rank agreed on in the last step's all-reduce, so that all stop at this batch.
      if (group ? native->stop_agreed() : g_stop.load()) {
        g_stop.store(false);  // consumed: a later train() in this process starts clean
        st = position(epoch, bi, epoch_loss);
        res.interrupted = true;
        if (group && !cfg.sync_bn) native->share_running_stats();
        if (show_progress) fmt::print(stderr, "\r\033[K");
        if (!cfg.out.empty()) {
          save_state(cfg, plan, ts, st, false, data, validating, false, nullptr);
          fmt::print(log, "interrupted at epoch {} batch {} (step {}): saved a resumable checkpoint to {}\n", epoch + 1,
                     bi, st.step, cfg.out);
        } else {
          fmt::print(log, "interrupted at epoch {} batch {} (step {}); no --out given, nothing saved\n", epoch + 1, bi,
                     st.step);
        }
        std::fflush(log);
        res.steps = st.step;
        res.model = ts.model();
        if (native) res.dist = native->dist_times();
        return res;
      }
      auto s0 = Clock::now();
      float* xin = ts.input();
      // The batch gather reads rows scattered over the whole training set (memory-bound): both cores share it.
      // Dataset::copy_images converts from the raw bytes when the dataset has them (order[] is a permutation
      // of [0, n), so it never throws here).
      // With random-resized-crop, each example is cropped from its stored image as it is gathered (its own seeded
      // stream: the same crops for any thread count); that resampling allocates its small buffers, so an
      // exception (out of memory) is carried out of the parallel region and rethrown here.
      const uint64_t batch_seed = epoch * 10000 + bi;
      // A data-parallel rank gathers its shard: examples [shard.first, shard.first + shard.count) of the batch, each
      // with the random draws it has in the whole batch.
      kernels::for_chunks(shard.count, shard.count * D, [&](size_t b0, size_t b1) {
        try {
          constexpr size_t kAhead = 4;  // rows whose loads are in flight while one converts
          const uint32_t* rows = order.data() + bi * cfg.batch + shard.first;
          for (size_t b = b0; b < std::min(b1, b0 + kAhead); ++b) tr.prefetch(rows[b]);
          for (size_t b = b0; b < b1; ++b) {
            if (b + kAhead < b1) tr.prefetch(rows[b + kAhead]);
            const size_t src = rows[b];
            data::gather_example(tr, src, cfg.augment, batch_seed, shard.first + b, xin + b * D, dump.box(b));
            labels[b] = tr.labels[src];
          }
        } catch (...) {
          gather_error[b0] = std::current_exception();
        }
      });
      for (std::exception_ptr& e : gather_error)
        if (e) std::rethrow_exception(std::exchange(e, nullptr));
      if (cfg.augment.enabled())
        data::augment_batch(xin, shard.count, tr.C, tr.H, tr.W, cfg.augment, batch_seed, aug_scratch.data(), dump.drawn(),
                            shard.first);
      data::normalize_batch(xin, shard.count, tr.C, tr.H * tr.W, cfg.normalize);
      ++st.step;
      lr = lr_at(oc, lr_mutant ? st.step - 1 : st.step, bpe, cfg.epochs);
      float loss = ts.step(xin, labels.data(), static_cast<float>(lr), st.step);
      dump.write(st.step, epoch, bi, order.data() + bi * cfg.batch, cfg.augment, ts.executor_or_null());
      // A loss that is not finite, or that has exploded (far above a uniform guess's ln C, where training starts)
      // stops the run before the step's parameters reach a checkpoint.
      const std::string kept = cfg.out.empty() ? "" : "; the last good checkpoint (if any) at '" + cfg.out + "' is kept";
      if (!std::isfinite(loss))
        throw Error(fmt::format("loss is {} at step {} (epoch {}, batch {}): training stopped{}", std::fabs(loss), st.step,
                                epoch + 1, bi, kept));
      if (cfg.diverge_factor > 0 && loss > diverge_limit)
        throw Error(fmt::format("loss is {:.4g} at step {} (epoch {}, batch {}), above the divergence limit {:.4g} "
                                "({:g} x ln {} classes, a uniform guess's loss): training stopped{} (lower --lr or add "
                                "--clip-norm; --diverge-factor 0 trains on regardless)",
                                loss, st.step, epoch + 1, bi, diverge_limit, cfg.diverge_factor, classes, kept));
      epoch_loss += loss;
      epoch_correct += ts.last_correct();
      res.step_loss.push_back(loss);
      res.step_lr.push_back(lr);
      metrics.step(epoch + 1, st.step, loss, lr);
      if (bi < 3 || bi % 100 == 0) {
        if (show_progress) fmt::print(stderr, "\r\033[K");
        fmt::print(log, "  step {}/{}: loss={:.6f} ({}us)\n", bi, bpe, loss,
                   std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - s0).count());
      }
      // On a terminal the live line every 20 batches; otherwise (a log file, a pipe) a log line every 50 batches
      // and at the epoch's end, with the same figures.
      const bool live_due = show_progress && (bi % 20 == 0 || bi + 1 == bpe);
      const bool log_due = log_progress && ((bi + 1) % 50 == 0 || bi + 1 == bpe);
      if (live_due || log_due) {
        const double el = std::chrono::duration<double>(Clock::now() - run_start).count();
        const double done =
            static_cast<double>((epoch - first_epoch) * bpe + bi + 1 - (epoch == first_epoch ? first_batch : 0));
        const double left = static_cast<double>(cfg.epochs * bpe - (epoch * bpe + bi + 1));
        const double ran_here = static_cast<double>(bi + 1 - first_batch);
        const Progress p{epoch + 1,
                         cfg.epochs,
                         bi + 1,
                         bpe,
                         (epoch_loss - (epoch == first_epoch ? st_epoch_loss0 : 0.0)) / ran_here,
                         100.0 * static_cast<double>(epoch_correct) / (ran_here * static_cast<double>(cfg.batch)),
                         el,
                         el > 0 ? done * static_cast<double>(cfg.batch) / el : 0.0,
                         el / done * left};
        if (live_due) progress_line(p);
        if (log_due) progress_log(log, p);
      }
      if (cfg.on_step) cfg.on_step(st.step);
      if (cfg.on_progress) {
        ProgressReport r;
        r.kind = ProgressReport::Kind::Step;
        r.epoch = epoch + 1;
        r.epochs = cfg.epochs;
        r.batch = bi + 1;
        r.batches = bpe;
        r.step = st.step;
        r.loss = loss;
        r.lr = lr;
        cfg.on_progress(r);
      }
    }
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (show_progress) fmt::print(stderr, "\r\033[K");
    res.epoch_seconds.push_back(secs);
    res.epoch_loss.push_back(epoch_loss / static_cast<double>(bpe));
    res.train_seconds += secs;
    fmt::print(log, "Epoch {:2d}/{}: loss={:.6f} lr={:.6f} ({:.0f}ms)\n", epoch + 1, cfg.epochs, res.epoch_loss.back(),
               lr, secs * 1000);
    const size_t ran = (bpe - first_batch) * cfg.batch;
    res.epoch_accuracy.push_back(ran ? 100.0 * static_cast<double>(epoch_correct) / static_cast<double>(ran) : 0.0);
    bool last = epoch + 1 == cfg.epochs;
    // The validation set every eval_every epochs and after the last; the test set once, after the last.
    EvalResult val, test;
    const bool validated = data.val.n > 0 && ((cfg.eval_every > 0 && (epoch + 1) % cfg.eval_every == 0) || last);
    if (group) {
      // Every rank holds the same model from here on: rank 0's running statistics (per-rank BatchNorm), and the
      // parameters, which the identical all-reduced updates keep equal (checked).
      if (!cfg.sync_bn) native->share_running_stats();
      dist::check_same(*group, {{fmt::format("the parameters after epoch {}", epoch + 1),
                                 dist::hash_bytes(native->params().data(), native->params().size() * sizeof(float))}});
    }
    if (validated) {
      val = ts.evaluate(data.val, cfg.normalize);
      fmt::print(log, "  val accuracy: {}/{} = {:.2f}%, loss {:.6f}\n", val.correct, val.total, val.accuracy(), val.loss);
      res.val_epochs.push_back(epoch + 1);
      res.val_evals.push_back(val);
      // The best so far by the chosen metric: best.safetensors; early stopping counts validations without one.
      const double m = by_loss ? val.loss : val.accuracy();
      if (res.best_epoch == 0 || (by_loss ? m < best_value : m > best_value)) {
        best_value = m;
        res.best_epoch = epoch + 1;
        since_best = 0;
        if (!cfg.run_dir.empty())
          save_weights(cfg.run_dir + "/best.safetensors", plan, ts, data,
                       {{"epoch", std::to_string(epoch + 1)}, {"best_metric", cfg.best_metric},
                        {"best_value", fmt::format("{}", m)}});
      } else if (cfg.patience > 0 && ++since_best >= cfg.patience && !last) {
        fmt::print(log, "early stopping: {} has not improved for {} validations (best {:.6g} at epoch {})\n",
                   cfg.best_metric, since_best, best_value, res.best_epoch);
        res.stopped_early = true;
        last = true;
      }
    }
    metrics.epoch(epoch + 1, st.step, res.epoch_loss.back(), res.epoch_accuracy.back(), validated ? &val : nullptr, lr,
                  secs > 0 ? static_cast<double>(ran) / secs : 0.0, secs);
    if (cfg.on_progress) {
      ProgressReport r;
      r.kind = ProgressReport::Kind::Epoch;
      r.epoch = epoch + 1;
      r.epochs = cfg.epochs;
      r.batches = bpe;
      r.step = st.step;
      r.loss = res.epoch_loss.back();
      r.lr = lr;
      r.accuracy = res.epoch_accuracy.back();
      r.val = validated ? &val : nullptr;
      cfg.on_progress(r);
    }
    if (last && data.test.n == 0) {  // a single image folder, or numpy arrays from Python without a test set
      fmt::print(log, "  test set: {}\n", data.test.source.empty() ? "none" : data.test.source);
    } else if (last) {
      test = ts.evaluate(data.test, cfg.normalize);
      fmt::print(log, "  test accuracy: {}/{} = {:.2f}% (whole test set)\n", test.correct, test.total, test.accuracy());
      fmt::print(log, "  test top-5 accuracy: {}/{} = {:.2f}%\n", test.correct5, test.total, test.top5());
      res.final_eval = test;
      metrics.test(test);
    }
    if (last) {
      if (!cfg.run_dir.empty())
        save_weights(cfg.run_dir + "/weights.safetensors", plan, ts, data, {{"epoch", std::to_string(epoch + 1)}});
    }
    st = position(epoch + 1, 0, 0.0);
    if (!cfg.out.empty() && (last || (cfg.checkpoint_every > 0 && (epoch + 1) % cfg.checkpoint_every == 0))) {
      save_state(cfg, plan, ts, st, last, data, validating, true, last ? &test : nullptr, validated ? &val : nullptr);
      if (cfg.keep_last > 0) {
        const std::vector<std::string> removed = prune_epoch_checkpoints(cfg, epoch + 1);
        std::string gone;
        for (const std::string& r : removed) gone += (gone.empty() ? "" : ", ") + r;
        fmt::print(log, "Saved params to {} and {} (keeping the last {}{}{})\n", cfg.out,
                   epoch_checkpoint_path(cfg.out, epoch + 1), cfg.keep_last, gone.empty() ? "" : "; removed ", gone);
      } else {
        fmt::print(log, "Saved params to {}\n", cfg.out);
      }
    }
    std::fflush(log);
    if (last) break;  // the last epoch, or early stopping
  }
  res.steps = st.step;
  res.model = ts.model();
  if (native) res.dist = native->dist_times();
  if (group && res.dist.steps > 0) {
    const double n = static_cast<double>(res.dist.steps);
    fmt::print(log, "data-parallel: {} ranks, {} steps: compute {:.3f} ms/step, exposed communication {:.3f} ms/step; "
               "{:.2f} MB of gradients all-reduced per step in {} buckets\n",
               group->size(), res.dist.steps, 1e3 * res.dist.compute_seconds / n, 1e3 * res.dist.exposed_comm_seconds / n,
               static_cast<double>(res.dist.grad_floats) * 4e-6, res.dist.buckets);
    std::fflush(log);
  }
  return res;
}

}  // namespace veridl::train
