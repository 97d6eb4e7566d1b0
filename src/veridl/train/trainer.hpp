// The training loop (book ch. 2, "the loop never changes"):
//   init (He, seeded) -> per epoch: shuffle (seed epoch + seed, cumulative, as the original) ->
//   per batch: one fused train step (forward, softmax-CE, closed-form backward, SGD update) ->
//   log -> evaluate the validation set (if any) every eval_every epochs and after the last -> checkpoint;
//   after the last epoch, the WHOLE test set.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "veridl/data/augment.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/dist.hpp"
#include "veridl/train/optimizer.hpp"

namespace veridl::train {

// A trained model: parameters and BatchNorm running statistics ({mean, var} per BatchNorm step).
struct Model {
  std::vector<float> params;
  std::vector<std::vector<float>> running;
};

struct EvalResult;
struct TrainConfig;
class StepEngine;

// What a training run reports to TrainConfig::on_progress: after every step (kind Step: that step's loss and lr), and
// after every epoch (kind Epoch: the epoch's mean loss, its training accuracy and, when the validation set was
// evaluated, its result). The Python package's progress callback receives it (python/src/module.cpp).
struct ProgressReport {
  enum class Kind { Step, Epoch } kind = Kind::Step;
  size_t epoch = 0, epochs = 0;    // 1-based
  size_t batch = 0, batches = 0;   // Step: the batch of the epoch (1-based); batches per epoch
  size_t step = 0;                 // the global step (1-based)
  double loss = 0.0, lr = 0.0;
  double accuracy = 0.0;           // Epoch: the training accuracy of the epoch's batches (percent)
  const EvalResult* val = nullptr; // Epoch: the validation result, when it was evaluated
};

struct TrainConfig {
  size_t epochs = 12;
  size_t batch = 128;
  OptimConfig optim;      // optimizer, base lr, schedule, weight decay, clipping
  double label_smoothing = 0.0;
  data::AugmentConfig augment;  // seeded per batch with epoch * 10000 + batch (as the original)
  data::Normalize normalize = data::Normalize::None;  // of every batch, after augmentation, and of evaluation's
  // The dataset the spec's recipe names ("" = any): train() refuses data of another name (Split::name) unless
  // data_mismatch_ok (check_dataset).
  std::string dataset;
  bool data_mismatch_ok = false;
  uint64_t seed = 42;     // He init uses seed, seed+1, ... per layer; the shuffle of epoch e uses e + seed
  int threads = 0;        // 0 = OpenMP default (all cores)
  // Subnormal floats flushed to zero in the training and evaluation threads for the run (kernels/fpenv.hpp: an x86
  // core takes a slow microcode assist for each). false: IEEE subnormals (`veridl train --keep-subnormals`).
  bool flush_subnormals = true;
  size_t eval_every = 1;     // epochs between evaluations of the validation set (Split::val); 0: after the last only
  double val_split = 0.0;    // the fraction the caller held out as Split::val (recorded in checkpoints for --resume)
  std::string out;        // checkpoint path ("" = do not save)
  size_t checkpoint_every = 10;  // also save (resumably) every N epochs; 0 = only at the end
  // Keep the last K epoch checkpoints: each checkpoint written at an epoch's end (every checkpoint_every epochs and
  // the last) is also written to epoch_checkpoint_path(out, epoch); once it is safely in place, the older epoch files
  // of `out` beyond the newest K are deleted. 0: none (only `out`, overwritten).
  size_t keep_last = 0;
  // Divergence: a step whose loss exceeds diverge_factor x ln(classes) (the loss of a uniform guess, where training
  // starts) stops the run as a non-finite loss does, keeping the last good checkpoint. 0: only non-finite stops it.
  double diverge_factor = 1000;
  // The run folder ("" = none): metrics.csv (one row per epoch) and metrics.jsonl (a line per step, per epoch and
  // for the test result) are appended there; weights.safetensors (the final model, weights only) is written at the
  // end and best.safetensors whenever the validation metric improves (docs/data.md, "Run folders").
  std::string run_dir;
  std::string best_metric = "val_accuracy";  // or "val_loss": what best.safetensors and early stopping follow
  size_t patience = 0;  // stop after this many validations without improvement (0: never); then the test set
  bool progress = false;  // a live progress line (rate, ETA) on stderr
  FILE* log = stdout;     // the book's log lines
  // Data-parallel training over MPI (docs/distributed.md): the process group, nullptr for this process alone. Each rank
  // runs its shard of every global batch of `batch` examples (dist::shard_of), the gradients are all-reduced in buckets
  // of about bucket_bytes as the backward produces them, and only rank 0 writes: checkpoints (out), the run folder's
  // files (run_dir). sync_bn: BatchNorm normalises with the global batch's statistics (synchronized BatchNorm; its
  // backward's sums all-reduced too); otherwise each rank's BatchNorm uses its shard's statistics, and the model's
  // running statistics are rank 0's.
  dist::Group* dist = nullptr;
  bool sync_bn = false;
  size_t bucket_bytes = size_t(4) << 20;
  // Called after every step with the global step; tests use it to request a stop deterministically.
  std::function<void(size_t)> on_step;
  // Called after every step and every epoch with the figures of ProgressReport (after on_step). It may call
  // request_stop() to end the run as an interrupt does (train() then returns with interrupted set).
  std::function<void(const ProgressReport&)> on_progress;
  // What runs the steps and evaluations (StepEngine below): empty, this process's native engine (TrainStep); else a
  // factory called once with the run's plan and config, before the first step (train/external_step.hpp: the exported
  // StableHLO modules on an IREE device, `veridl train --device iree:...`). Everything else is train()'s either way.
  std::function<std::unique_ptr<StepEngine>(const net::Plan&, const TrainConfig&)> engine;
  std::string device = "native";  // what runs the steps, as `veridl train --device` names it (logged)
};

// Where an interrupted run stands: everything needed to continue it bit for bit.
// A ResumeState at epoch 0, batch 0, step 0 with a model and no optimizer state is a warm start: training from
// that model with a fresh optimizer and schedule (the Python package's second fit()).
struct ResumeState {
  size_t epoch = 0, batch = 0, step = 0;  // next batch to run: (epoch, batch); steps done so far
  double epoch_loss = 0.0;                // loss sum of the batches of `epoch` already run
  Model model;
  std::vector<std::vector<float>> optim_state;  // in Optimizer::state() order
  // Early stopping and best.safetensors: the best validation metric so far, its epoch (0: none yet) and the
  // validations since it. Saved (metadata best_epoch, best_value, since_best) by runs with a validation set;
  // stopping_state says whether the checkpoint had them (a checkpoint of an older VeriDL has not: the resumed run
  // then starts them afresh and says so).
  size_t best_epoch = 0;
  double best_value = 0.0;
  size_t since_best = 0;
  bool stopping_state = false;
  std::string run_dir;  // the run folder holding that best.safetensors (metadata run_dir; "" when none)
};

// The epoch checkpoint of `out` for `epoch` (--keep-last): out without its ".safetensors" suffix, then
// ".epoch-<epoch>.safetensors" (runs/m.safetensors, 3 -> runs/m.epoch-3.safetensors).
std::string epoch_checkpoint_path(const std::string& out, size_t epoch);
// The --out a run resumed from `path` writes by default: `path` itself, or for an epoch checkpoint
// (<stem>.epoch-<N>.safetensors) the <stem>.safetensors it was kept beside.
std::string resume_out_path(const std::string& path);

// Ask a running train() to stop after the current step and save a resumable checkpoint (async-signal
// safe: the SIGINT/SIGTERM handlers of the CLI call it).
void request_stop();
bool stop_requested();
// Withdraws a request that no train() consumed (one made during the last step of a run).
void clear_stop_request();

struct EvalResult {
  size_t correct = 0, total = 0;
  double loss = 0.0;
  size_t correct5 = 0;            // examples whose label is among the 5 highest logits (ties: the lower class first)
  size_t classes = 0;
  std::vector<size_t> confusion;  // classes x classes counts: row = the true label, column = the prediction
  double accuracy() const { return total ? 100.0 * static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
  double top5() const { return total ? 100.0 * static_cast<double>(correct5) / static_cast<double>(total) : 0.0; }
  // Per class: the share of its examples classified right (percent; -1 for a class with no examples).
  std::vector<double> per_class() const;
};

// Where a data-parallel run's step time went (each rank's own figures): compute (forward, backward, optimizer), and
// the communication the compute did not hide (blocked waiting for the gradient buckets and the step's loss).
struct DistTimes {
  int ranks = 1;
  size_t steps = 0, buckets = 0, grad_floats = 0;
  double compute_seconds = 0.0, exposed_comm_seconds = 0.0;
};

struct TrainResult {
  std::vector<double> epoch_loss, epoch_seconds, step_loss;
  std::vector<double> step_lr;  // the lr each step of this call used (step_loss's steps)
  double train_seconds = 0.0;  // training steps only (no data loading, no evaluation)
  size_t steps = 0, batches_per_epoch = 0, train_images = 0;
  EvalResult final_eval;                                 // the test set, after the last epoch
  std::vector<double> epoch_accuracy;                      // training accuracy (percent) of each epoch's batches
  bool stopped_early = false;                              // by --patience
  size_t best_epoch = 0;                                   // the epoch of the best validation metric (0: none)
  std::vector<size_t> val_epochs;                         // the epochs (1-based) whose validation set was evaluated
  std::vector<EvalResult> val_evals;                      // and its results
  Model model;
  bool interrupted = false;  // stopped by request; the checkpoint at cfg.out is resumable
  DistTimes dist;            // a data-parallel run's step times (ranks 1 otherwise)
};

// He initialisation of the original (Irwin-Hall(3) from xorshift64, variance scale^2 with scale =
// sqrt(2 / fanIn)); seed + k for the k-th weight tensor; biases and BatchNorm / LayerNorm beta zero, their
// gamma one; Init::Const tensors (LayerScale's gamma) the value their primitive declared.
void he_init(const net::Plan& plan, uint64_t seed, float* params);

// The original's Fisher-Yates (lean_f32_shuffle) applied to an index permutation, in place.
void shuffle_indices(std::vector<uint32_t>& idx, uint64_t seed);

// What runs train()'s steps and evaluations: the native engine (TrainStep, the CPU kernels of this process) or an
// external device (train/external_step.hpp: the exported StableHLO train step and eval forward on IREE). Everything
// else of a run is train()'s own code, the same for both: the data, the seeded shuffle and augmentation, the learning
// rate per step, the progress, metrics, early stopping, checkpoints and run folder, and (for an external device) the
// BatchNorm running statistics, the training accuracy and evaluation's scoring.
class StepEngine {
 public:
  virtual ~StepEngine() = default;
  virtual float* input() = 0;  // where train() gathers the batch (B x C x H x W floats)
  // One fused train step: forward, loss, backward, optimizer update; t is the 1-based global step. The mean loss.
  virtual float step(const float* x, const int32_t* labels, float lr, size_t t) = 0;
  // How many examples of the last step's batch the forward classified right (its logits' first maximum).
  virtual size_t last_correct() const = 0;
  virtual Model model() = 0;  // a copy of the parameters and running statistics
  virtual void set_model(const Model& m) = 0;
  // The optimizer state, named and ordered as Optimizer::state() (checkpoints); valid until the next step.
  virtual std::vector<std::pair<std::string, const std::vector<float>*>> optimizer_state() = 0;
  virtual void set_optimizer_state(const std::vector<std::vector<float>>& state) = 0;
  // The whole of ds with BatchNorm on its running statistics (evaluate(), below).
  virtual EvalResult evaluate(const data::Dataset& ds, const data::Normalize& norm) = 0;
  // The native executor (the VERIDL_TEST_DECISIONS hook reads the saved decisions from it); nullptr elsewhere.
  virtual net::Executor<float, net::FastKernels>* executor_or_null() { return nullptr; }
};

// One fused train step per call: forward, loss, backward, optimizer update. No allocation.
class TrainStep : public StepEngine {
 public:
  // noise_seed: the run's seed; step t's random decisions (dropout, dropPath) are drawn under (noise_seed, t).
  TrainStep(const net::Plan& plan, const OptimConfig& optim, uint64_t noise_seed = 0);
  net::Executor<float, net::FastKernels>& executor() { return ex_; }
  std::vector<float>& params() { return ex_.params(); }
  Model model() override;                  // a copy of the parameters and running statistics
  void set_model(const Model& m) override;
  Optimizer& optimizer() { return opt_; }
  float* input() override { return ex_.input(); }
  // x may be input() (already gathered there). t is the 1-based global step. Returns the mean loss (of the global
  // batch, in a data-parallel run).
  float step(const float* x, const int32_t* labels, float lr, size_t t) override;
  // How many examples of the last step's batch the forward classified right (its logits' first maximum; of the global
  // batch in a data-parallel run).
  size_t last_correct() const override { return last_correct_; }
  std::vector<std::pair<std::string, const std::vector<float>*>> optimizer_state() override;
  void set_optimizer_state(const std::vector<std::vector<float>>& state) override;
  EvalResult evaluate(const data::Dataset& ds, const data::Normalize& norm) override;
  net::Executor<float, net::FastKernels>* executor_or_null() override { return &ex_; }
  // Data-parallel (docs/distributed.md): this step runs examples [first, first + count) of global batches of `global`
  // examples; gradients are all-reduced over `g` in buckets of about bucket_bytes; with sync_bn BatchNorm's statistics
  // are the global batch's. The plan's batch must be at least count.
  // reduce = false: no gradient all-reduce (a test's deliberate fault only).
  void distribute(dist::Group& g, size_t first, size_t count, size_t global, bool sync_bn, size_t bucket_bytes,
                  bool reduce = true);
  // A request to stop this step (request_stop) seen on any rank stops every rank at the same step: the last step's
  // all-reduce carries it. Without a group: stop_requested().
  bool stop_agreed() const { return stop_agreed_; }
  // The running statistics of rank 0 on every rank (before evaluating or saving with per-rank BatchNorm).
  void share_running_stats();
  const DistTimes& dist_times() const { return times_; }

 private:
  net::Executor<float, net::FastKernels> ex_;
  Optimizer opt_;
  std::vector<float> grads_;
  Decisions live_;
  uint64_t noise_seed_ = 0;
  size_t last_correct_ = 0;
  size_t n_ = 0;  // examples per step (the plan's batch, or a rank's shard)
  dist::Group* group_ = nullptr;
  std::unique_ptr<dist::GradReducer> reducer_;
  bool stop_agreed_ = false;
  DistTimes times_;
};

// The model a fresh run starts from: he_init(plan, seed), the running statistics at their declared initial values.
Model initial_model(const net::Plan& plan, uint64_t seed);
// The running statistics alone at their declared initial values, one vector per state of each node in plan order.
std::vector<std::vector<float>> initial_running(const net::Plan& plan);

// Accuracy (first maximum wins) and mean loss over every example of `ds` (no dropped tail), with
// BatchNorm in evaluation mode (running statistics), the images normalised as `norm` says (the training run's).
// Chunks of max(training batch, 128) examples, in an inference executor (no gradient buffers).
EvalResult evaluate(const net::Plan& plan, const Model& model, const data::Dataset& ds,
                    const data::Normalize& norm = data::Normalize::None);
// The same result, computed in the training step's own executor when its batch is that chunk size (so a
// training run holds one set of activations, not two); the training that follows is unaffected.
EvalResult evaluate(TrainStep& ts, const data::Dataset& ds, const data::Normalize& norm = data::Normalize::None);
// The scoring of both: `ds` in chunks of `chunk` examples, each gathered (and normalised) into `input`
// (chunk x ds.image_size() floats) and passed to forward(n), which returns the logits of the chunk's first n rows
// (n < chunk only for the last chunk). An external device's evaluation (external_step.hpp) scores through it too.
EvalResult evaluate_chunks(size_t classes, size_t chunk, float* input,
                           const std::function<const float*(size_t n)>& forward, const data::Dataset& ds,
                           const data::Normalize& norm);

// Trains from scratch, or continues `resume` (from load_resume_state). Checkpoints at cfg.out are
// written atomically (temporary file + rename): at the end, every checkpoint_every epochs, and on a stop
// request. A NaN or Inf loss stops training with an error naming the step and leaves the last good
// checkpoint in place.
TrainResult train(const net::NetSpec& spec, const TrainConfig& cfg, const data::Split& data,
                  const ResumeState* resume = nullptr);

// The data-parallel settings of a run (cfg.dist, cfg.sync_bn, cfg.batch, cfg.engine), each fault one line: --sync-bn
// without mpirun, a batch smaller than the rank count, an external device (--device iree:...) under mpirun. train()
// checks them; `veridl train` calls this as soon as they are set, before it reads any data.
void check_data_parallel(const TrainConfig& cfg);

// What a training run allocates, planned from the spec and config before anything large is allocated (bytes).
struct RunMemory {
  uint64_t params = 0;       // parameters and their gradients
  uint64_t optimizer = 0;    // momentum or Adam's moments
  uint64_t activations = 0;  // the training step's buffers at the batch (Plan::train, shared by liveness)
  uint64_t evaluation = 0;   // evaluation's inference buffers (0 when it runs in the training executor)
  uint64_t checkpoint = 0;   // the copies a checkpoint is assembled from while it is saved (0 without --out)
  uint64_t total() const { return params + optimizer + activations + evaluation + checkpoint; }
};
// test_images: the size of the evaluation set when known (it bounds evaluation's chunk), else SIZE_MAX.
RunMemory plan_run_memory(const net::Plan& plan, const TrainConfig& cfg, size_t test_images = SIZE_MAX);
// The size of the checkpoint file a run of `plan` writes, from above (tensors, optimizer state, metadata).
uint64_t checkpoint_bytes(const net::Plan& plan, const OptimConfig& optim);

// The training config as a checkpoint's metadata 'config' records it (what load_resume_state and
// checkpoint_normalization read back).
nlohmann::json config_json(const TrainConfig& c);

// Reads a checkpoint written by train(): its NetSpec, training config and resume state.
struct Resumable {
  net::NetSpec spec;
  TrainConfig cfg;
  ResumeState state;
  std::string data;
  bool complete = false;  // the run had finished
  int ranks = 1;          // the data-parallel run's rank count (cfg.sync_bn: its BatchNorm mode)
};
Resumable load_resume_state(const std::string& path);

// The normalisation a recipe asks for (its "normalize": a preset or explicit per-channel lists).
data::Normalize recipe_normalize(const net::Recipe& r);
// The recipe's colour jitter, as augmentation settings.
void recipe_jitter(const net::Recipe& r, data::AugmentConfig& a);

// A spec whose recipe names a dataset (`spec_dataset`, "" = any) trains on that one: data named otherwise
// (`data_name`: a known name or a directory) is refused with "--data '<x>' is not the dataset <spec> names in its
// recipe ('<y>') ..." unless `mismatch_ok`.
void check_dataset(const std::string& spec_dataset, const std::string& data_name, bool mismatch_ok,
                   const std::string& spec_name);

// The normalisation a checkpoint's model was trained with, for evaluating it: its training config's (metadata
// 'config', written by train()), or the spec's recipe when the checkpoint has no config.
data::Normalize checkpoint_normalization(const Checkpoint& ck, const net::NetSpec& spec, const std::string& path);

// The format this VeriDL writes (metadata 'format'); check_checkpoint_format refuses any other value
// ("<path>: checkpoint format 'veridl-checkpoint-999' is not one this VeriDL reads (veridl-checkpoint-1) ..."). A
// safetensors file without a 'format' entry is taken as plain tensors (eval with --spec); resuming needs the format.
inline constexpr const char* kCheckpointFormat = "veridl-checkpoint-1";
void check_checkpoint_format(const Checkpoint& ck, const std::string& path, bool required);

// Checkpoints: parameter tensors named as in the plan, then the running statistics
// ("layers.<i>.bn.running_mean" / "running_var"); metadata {format, spec, config, epoch, step, ...}.
Checkpoint make_checkpoint(const net::Plan& plan, const Model& model, const std::map<std::string, std::string>& metadata);
// Loads the model for `plan` from a checkpoint (check_checkpoint_format first, a missing format allowed); every
// tensor must be present with the plan's shape
// (tensors named "optimizer.*" are optimizer state and ignored here).
Model model_from_checkpoint(const net::Plan& plan, const Checkpoint& ck, const std::string& path);
// Names and shapes of the running-statistics tensors of a plan, in Executor::running_stats() order.
std::vector<std::pair<std::string, size_t>> running_stat_tensors(const net::Plan& plan);

}  // namespace veridl::train
