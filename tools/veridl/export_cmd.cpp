// veridl export: the fused train step (or the evaluation forward) as a StableHLO module.
#include <fmt/core.h>

#include <cstdio>

#include "veridl/cli.hpp"
#include "veridl/export/onnx.hpp"
#include "veridl/export/stablehlo.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"
#include "veridl/train/checkpoint.hpp"
#include "veridl/train/optimizer.hpp"
#include "veridl/train/trainer.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::cli {

namespace {
const char* kExportHelp = R"(usage: veridl export --spec FILE [--batch B] [--eval] [--out FILE.mlir] [options]
       veridl export --onnx --checkpoint FILE --out FILE.onnx [--spec FILE]
--onnx: a trained network's inference graph as an ONNX model (opset 17; docs/onnx.md): input x [N,C,H,W]
  float32 (N any; the images normalised as evaluation does), output logits [N, classes]; BatchNorm on its
  running statistics, dropout and dropPath as the identity; the parameters are the checkpoint's. The NetSpec
  is the checkpoint's (metadata 'spec') unless --spec is given.
Without --onnx:
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
  --logits           the train step also returns the forward's logits [B, classes] (its last result;
                     what veridl train --device iree:... counts the training accuracy from)
  --out FILE         where to write the module (default: standard output)
  --optimizer sgd|adam|adamw  --momentum X  --weight-decay X  --clip-norm X  --label-smoothing X
                     override the spec's recipe (the learning rate is an input of the module)
)";

// veridl export --onnx: the checkpoint's inference graph as an ONNX model.
int export_onnx(const Args& a) {
  for (const char* f : {"--batch", "--optimizer", "--momentum", "--weight-decay", "--clip-norm", "--label-smoothing", "--eval", "--logits"})
    if (a.has(f)) throw Error(std::string(f) + " does not apply to export --onnx (the inference graph, any batch size)");
  const auto ck_path = a.get("--checkpoint");
  if (!ck_path) throw Error("--onnx needs --checkpoint FILE (a checkpoint written by veridl train)");
  const auto out = a.get("--out");
  if (!out) throw Error("--onnx needs --out FILE.onnx");
  const train::Checkpoint ck = train::load_safetensors(*ck_path);
  train::check_checkpoint_format(ck, *ck_path, false);
  const net::NetSpec spec = checkpoint_spec(ck, *ck_path, a);
  const net::Plan plan = net::compile(spec, 1);
  const train::Model model = train::model_from_checkpoint(plan, ck, *ck_path);
  onnx_export::OnnxOptions opt;
  opt.doc = fmt::format("{} from the VeriDL checkpoint {}", spec.name, *ck_path);
  try {
    onnx_export::write_onnx(plan, model.params, model.running, *out, opt);
  } catch (const Error& e) {
    if (std::string(e.what()).rfind("cannot write", 0) == 0) throw Error(std::string("--out: ") + e.what());
    throw;
  }
  fmt::print(stderr, "{}: wrote the inference graph of {} as ONNX (opset {}; {} parameters; input x [N,{},{},{}], output logits [N,{}])\n",
             *out, spec.name, onnx_export::kOpset, plan.n_params, spec.channels, spec.imageH, spec.imageW, plan.num_classes);
  return 0;
}

}  // namespace

int cmd_export(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fmt::print("{}", kExportHelp);
      return 0;
    }
  Args a(argc, argv, 2,
         {"--spec", "--batch", "--out", "--optimizer", "--momentum", "--weight-decay", "--clip-norm",
          "--label-smoothing", "--checkpoint"},
         {"--eval", "--onnx", "--logits"});
  if (a.has("--onnx")) return export_onnx(a);
  if (a.has("--checkpoint")) throw Error("--checkpoint applies to export --onnx (the StableHLO module takes the parameters as inputs)");
  auto spec_path = a.get("--spec");
  if (!spec_path) throw Error("--spec FILE is required (e.g. specs/mnist_linear.json)");
  const net::NetSpec spec = net::load_netspec(*spec_path);
  const net::Recipe r = spec.recipe.value_or(net::Recipe{});
  const size_t batch = static_cast<size_t>(a.integer("--batch", static_cast<long long>(r.batch), 1, 1 << 20));
  hlo::ExportOptions opt;
  opt.eval = a.has("--eval");
  if (opt.eval && a.has("--logits")) throw Error("--logits applies to the train step (the --eval forward returns only the logits)");
  opt.logits = a.has("--logits");
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
