// veridl export: the fused train step (or the evaluation forward) as a StableHLO module.
#include <fmt/core.h>

#include <cstdio>

#include "veridl/cli.hpp"
#include "veridl/export/stablehlo.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::cli {

namespace {
const char* kExportHelp = R"(usage: veridl export --spec FILE [--batch B] [--eval] [--out FILE.mlir] [options]
Writes the network's fused train step as a StableHLO module (MLIR text) with one function @main:
  inputs   the parameters (plan order, real shapes), the optimizer state, x [B,C,H,W] f32,
           labels [B] i32, lr f32 scalar, step i32 scalar (1-based)
  results  the updated parameters and optimizer state, the loss, and per BatchNorm layer the batch
           mean and biased variance
The backward is the native plan's closed-form VJP sequence; each op cites its contract. The module's
header lists every input and result; docs/gpu.md compiles it with IREE for CPUs and GPUs.
  --spec FILE        the NetSpec (JSON)
  --batch B          the batch size the module is compiled for (default: the recipe's)
  --eval             the evaluation forward instead: inputs the parameters, the BatchNorm running
                     statistics (mean, var per layer) and x; result the logits
  --out FILE         where to write the module (default: standard output)
  --optimizer sgd|adam|adamw  --momentum X  --weight-decay X  --clip-norm X  --label-smoothing X
                     override the spec's recipe (the learning rate is an input of the module)
)";
}  // namespace

int cmd_export(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fmt::print("{}", kExportHelp);
      return 0;
    }
  Args a(argc, argv, 2,
         {"--spec", "--batch", "--out", "--optimizer", "--momentum", "--weight-decay", "--clip-norm",
          "--label-smoothing"},
         {"--eval"});
  auto spec_path = a.get("--spec");
  if (!spec_path) throw Error("--spec FILE is required (e.g. specs/mnist_linear.json)");
  const net::NetSpec spec = net::load_netspec(*spec_path);
  const net::Recipe r = spec.recipe.value_or(net::Recipe{});
  const size_t batch = static_cast<size_t>(a.integer("--batch", static_cast<long long>(r.batch), 1, 1 << 20));
  hlo::ExportOptions opt;
  opt.eval = a.has("--eval");
  if (opt.eval)  // the evaluation forward has no optimizer and no loss: a training option would be ignored
    for (const char* f : {"--optimizer", "--momentum", "--weight-decay", "--clip-norm", "--label-smoothing"})
      if (a.has(f)) throw Error(std::string(f) + " does not apply to export --eval (the evaluation forward has no optimizer or loss)");
  train::OptimConfig& o = opt.optim;
  o = train::optim_config(r);
  o.kind = a.str("--optimizer", r.optimizer);
  if (a.has("--momentum") && o.kind != "sgd")
    throw Error("--momentum does not apply to " + o.kind + " (it is SGD's; Adam's betas are 0.9 and 0.999)");
  o.momentum = a.real("--momentum", r.momentum);
  o.weight_decay = a.real("--weight-decay", r.weight_decay);
  o.clip_norm = a.real("--clip-norm", r.clip_norm);
  const double smoothing = opt.eval ? 0.0 : a.real("--label-smoothing", r.label_smoothing);
  if (!(smoothing >= 0 && smoothing < 1))
    throw Error(fmt::format("--label-smoothing must be in [0, 1), got {}", smoothing));
  if (!opt.eval) train::validate(o);
  const net::Plan plan = net::compile(spec, batch, smoothing);
  const std::string text = hlo::export_stablehlo(plan, opt);
  const auto out = a.get("--out");
  if (!out) {
    fmt::print("{}", text);
    return 0;
  }
  try {
    write_text_atomic(*out, text);  // temp file + rename: an existing module is never left half-written
  } catch (const Error& e) {
    throw Error(std::string("--out: ") + e.what());
  }
  const hlo::Signature sig = hlo::signature(plan, opt);
  fmt::print(stderr, "{}: wrote the {} of {} at batch {} ({} inputs, {} results; {} parameters{})\n", *out,
             opt.eval ? "evaluation forward" : "train step", spec.name, batch, sig.inputs.size(), sig.outputs.size(),
             plan.n_params, opt.eval ? "" : fmt::format(", optimizer {}", o.kind));
  return 0;
}

}  // namespace veridl::cli
