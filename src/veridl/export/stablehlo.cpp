// The StableHLO exporter: see stablehlo.hpp for the calling convention and docs/gpu.md for its use.
//
// Structure, mirroring net::Executor line for line:
//   forward   for each node in plan order: its primitive's forward emitter (prims/<name>.cpp)
//   loss      the loss node (softmax cross-entropy, label smoothing), its backward seeded with dL = 1
//   backward  for each node in reverse order: its primitive's backward emitter (parameter gradients
//             written, input gradients written or added as the plan's edges say; none for the image batch)
//   update    the optimizer of train/optimizer.cpp, elementwise, with the same float formulas
// Values saved by a forward for its backward (ReLU mask, max-pool arg-max, BatchNorm r and xhat) are SSA
// values of the one function: nothing is recomputed in the backward ("same atoms").
#include "veridl/export/stablehlo.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/hlo/builder.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"

namespace veridl::hlo {

namespace {

using graph::Emission;

int64_t i64(size_t v) { return static_cast<int64_t>(v); }

// ---- the optimizer (train/optimizer.cpp, elementwise) --------------------------------------------

// The sum of every element of x in float32, as a tree of 32-wide partial sums (pad with zeros to a multiple of
// 32, sum each row of 32, repeat on the row sums): each level adds at most 32 terms, so the rounding error grows
// with log32(n) levels instead of with the run of one flat reduce (which an IREE CPU build accumulates nearly
// sequentially). The native engine sums the same squares in double (train::global_norm); float64 is not used here
// because IREE demotes it to float32 by default and not every GPU has it.
Val tree_sum(Builder& b, Val x) {
  constexpr int64_t kWidth = 32;
  int64_t n = 1;
  for (int64_t d : x.shape) n *= d;
  x = b.reshape(x, {n});
  while (n > kWidth) {
    const int64_t rows = (n + kWidth - 1) / kWidth;
    if (rows * kWidth != n) x = b.pad(x, 0.0f, {0}, {rows * kWidth - n}, {0});
    x = b.sum(b.reshape(x, {rows, kWidth}), {1});
    n = rows;
  }
  return b.sum(x, {0});
}

struct Update {
  std::vector<Val> params, state;
};

Update optimizer(Emission& e, const net::Plan& plan, const train::OptimConfig& o, const std::vector<Val>& state_in,
                 const Val& lr, const Val& step) {
  Builder& b = e.b;
  const size_t P = e.params.size();
  std::vector<Val> g = e.grads;
  b.blank();
  if (o.clip_norm > 0) {
    b.comment(fmt::format("optimizer: global-norm clipping g *= min(1, {} / (||g||_2 + 1e-6)), the squares summed "
                          "as a tree of 32-wide partial sums per tensor",
                          o.clip_norm));
    Val sq;
    for (size_t t = 0; t < P; ++t) {
      Shape all;
      for (size_t d = 0; d < g[t].shape.size(); ++d) all.push_back(i64(d));
      const Val squares = b.mul(g[t], g[t]);
      const Val part = e.fault == ExportFault::FlatClipSum ? b.sum(squares, all) : tree_sum(b, squares);
      sq = t == 0 ? part : b.add(sq, part);
    }
    const Val norm = b.sqrt(sq);
    const Val scale = b.min(b.cst(1.0f, {}), b.div(b.cst(static_cast<float>(o.clip_norm), {}), b.add(norm, 1e-6f)));
    for (size_t t = 0; t < P; ++t) g[t] = b.mul(g[t], b.broadcast(scale, {}, g[t].shape));
  }
  const float wd = static_cast<float>(o.weight_decay);
  auto decayed = [&](size_t t) { return wd > 0 && graph::weight_decayed(plan.params[t]); };  // weights only
  auto scalar = [&](const Val& s, const Val& like) { return b.broadcast(s, {}, like.shape); };
  Update u;
  if (o.kind == "sgd") {
    const float mu = static_cast<float>(o.momentum);
    b.comment(fmt::format("optimizer: sgd, momentum {}, weight decay {} (coupled, weights only)", o.momentum,
                          o.weight_decay));
    for (size_t t = 0; t < P; ++t) {
      const Val& p = e.params[t];
      Val gi = decayed(t) ? b.add(g[t], b.mul(p, wd)) : g[t];
      if (mu > 0) {
        gi = b.add(b.mul(state_in[t], mu), gi);  // v = mu v + g
        u.state.push_back(gi);
      }
      u.params.push_back(b.sub(p, b.mul(scalar(lr, p), gi)));  // theta -= lr v
    }
    return u;
  }
  const bool coupled = o.kind == "adam", before = !coupled && o.adamw_decay == "before";
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2), eps = static_cast<float>(o.eps);
  // 1 - beta computed in double, then rounded (PyTorch's constants: 1 - 0.999f in float is 0.00099998713).
  const float omb1 = static_cast<float>(1.0 - o.beta1), omb2 = static_cast<float>(1.0 - o.beta2);
  b.comment(fmt::format("optimizer: {}, beta1 {}, beta2 {}, eps {}, weight decay {} ({}, weights only)", o.kind,
                        o.beta1, o.beta2, o.eps, o.weight_decay,
                        coupled ? "coupled L2" : before ? "decoupled, before the step" : "decoupled"));
  // Bias corrections 1 - beta^t = -expm1(t log beta), accurate in f32 for every step t.
  const Val tf = b.convert(step, DType::F32);
  const Val bc1 = b.neg(b.expm1(b.mul(tf, static_cast<float>(std::log(o.beta1)))));
  const Val bc2 = b.neg(b.expm1(b.mul(tf, static_cast<float>(std::log(o.beta2)))));
  const Val step_size = b.div(lr, bc1), isb2 = b.rsqrt(bc2);
  std::vector<Val> ms, vs;
  for (size_t t = 0; t < P; ++t) {
    const Val& p0 = e.params[t];
    // torch.optim.AdamW's order: p *= 1 - lr wd (the factor rounded to float once), then the step.
    const Val p = before && decayed(t) ? b.mul(p0, scalar(b.sub(b.cst(1.0f, {}), b.mul(lr, b.cst(wd, {}))), p0)) : p0;
    const Val gi = coupled && decayed(t) ? b.add(g[t], b.mul(p, wd)) : g[t];
    const Val m = b.add(b.mul(state_in[t], b1), b.mul(gi, omb1));
    const Val v = b.add(b.mul(state_in[P + t], b2), b.mul(b.mul(gi, omb2), gi));
    // theta -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), as train/optimizer.cpp computes it.
    Val np = b.sub(p, b.div(b.mul(scalar(step_size, p), m), b.add(b.mul(b.sqrt(v), scalar(isb2, v)), eps)));
    if (!coupled && !before && decayed(t)) np = b.sub(np, b.mul(scalar(b.mul(lr, b.cst(wd, {})), np), np));  // p -= lr wd p
    u.params.push_back(np);
    ms.push_back(m);
    vs.push_back(v);
  }
  u.state = ms;
  u.state.insert(u.state.end(), vs.begin(), vs.end());
  return u;
}

std::vector<TensorSig> state_sigs(const net::Plan& plan, const train::OptimConfig& o) {
  std::vector<TensorSig> r;
  auto add = [&](const char* prefix) {
    for (const auto& t : plan.params) r.push_back({fmt::format("{}.{}", prefix, t.name), t.shape, "f32"});
  };
  if (o.kind == "sgd") {
    if (o.momentum > 0) add("velocity");
  } else {
    add("m");
    add("v");
  }
  return r;
}

std::string shape_text(const std::vector<int64_t>& s) {
  if (s.empty()) return "scalar";
  return fmt::format("[{}]", fmt::join(s, ", "));
}

}  // namespace

Signature signature(const net::Plan& plan, const ExportOptions& opt) {
  Signature s;
  const int64_t B = static_cast<int64_t>(plan.batch);
  for (const auto& t : plan.params) s.inputs.push_back({t.name, t.shape, "f32"});
  const Shape x{B, static_cast<int64_t>(plan.spec.channels), static_cast<int64_t>(plan.spec.imageH),
                static_cast<int64_t>(plan.spec.imageW)};
  if (opt.eval) {
    for (const graph::Node& n : plan.nodes)
      for (const graph::StateDecl& st : n.decl.state) s.inputs.push_back({n.name + "." + st.name, {i64(st.size)}, "f32"});
    s.inputs.push_back({"x", x, "f32"});
    s.outputs.push_back({"logits", {B, static_cast<int64_t>(plan.num_classes)}, "f32"});
    return s;
  }
  const std::vector<TensorSig> state = state_sigs(plan, opt.optim);
  s.inputs.insert(s.inputs.end(), state.begin(), state.end());
  s.inputs.push_back({"x", x, "f32"});
  s.inputs.push_back({"labels", {B}, "i32"});
  s.inputs.push_back({"lr", {}, "f32"});
  s.inputs.push_back({"step", {}, "i32"});
  for (const graph::Node& n : plan.nodes)
    if (n.decl.keep_per_example) s.inputs.push_back({n.name + ".keep", {B, i64(n.decl.keep_per_example)}, "f32"});
  for (const auto& t : plan.params) s.outputs.push_back({t.name, t.shape, "f32"});
  s.outputs.insert(s.outputs.end(), state.begin(), state.end());
  s.outputs.push_back({"loss", {}, "f32"});
  for (const graph::Node& n : plan.nodes)
    for (const graph::StateDecl& st : n.decl.state) s.outputs.push_back({n.name + "." + st.batch_name, {i64(st.size)}, "f32"});
  if (opt.logits) s.outputs.push_back({"logits", {B, static_cast<int64_t>(plan.num_classes)}, "f32"});
  return s;
}

std::string export_stablehlo(const net::Plan& plan, const ExportOptions& opt) {
  if (!opt.eval) train::validate(opt.optim);
  const Signature sig = signature(plan, opt);
  // The backward's edges as the executor runs them without an input gradient: none into values from which
  // no gradient reaches a parameter (the image batch, a flatten of it).
  std::vector<std::vector<graph::EdgeKind>> edges = plan.edges;
  for (size_t k = 0; k < plan.nodes.size(); ++k)
    for (size_t i = 0; i < plan.nodes[k].inputs.size(); ++i)
      if (!plan.grad_to_params[plan.nodes[k].inputs[i]]) edges[k][i] = graph::EdgeKind::None;
  Emission e(plan, edges, static_cast<int64_t>(plan.batch));
  e.eval = opt.eval;
  e.fault = opt.fault;
  e.acts.resize(plan.values.size());
  e.dacts.resize(plan.values.size());
  e.saved.resize(plan.nodes.size());
  e.state_in.resize(plan.nodes.size());
  e.state_out.resize(plan.nodes.size());
  e.grads.resize(plan.params.size());
  e.keep.resize(plan.nodes.size());

  // Arguments, named after the tensors they hold.
  std::vector<Val> args;
  for (const TensorSig& t : sig.inputs) args.push_back({"%" + t.name, t.shape, t.dtype == "i32" ? DType::I32 : DType::F32});
  size_t a = 0;
  for (size_t t = 0; t < plan.params.size(); ++t) e.params.push_back(args[a++]);
  std::vector<Val> state_in;
  if (opt.eval) {
    for (size_t k = 0; k < plan.nodes.size(); ++k)
      for (size_t j = 0; j < plan.nodes[k].decl.state.size(); ++j) e.state_in[k].push_back(args[a++]);
  } else {
    for (size_t k = 0; k < state_sigs(plan, opt.optim).size(); ++k) state_in.push_back(args[a++]);
  }
  e.acts[plan.input] = args[a++];
  Val lr, step;
  if (!opt.eval) {
    e.labels = args[a++];
    lr = args[a++];
    step = args[a++];
    for (size_t k = 0; k < plan.nodes.size(); ++k)
      if (plan.nodes[k].decl.keep_per_example) e.keep[k] = args[a++];
  }

  // Forward, in plan order, through each node's primitive (the loss node only for the train step).
  const auto& table = prims::table();
  const size_t loss = static_cast<size_t>(plan.loss_node);
  for (size_t k = 0; k < plan.nodes.size(); ++k)
    if (k != loss) table[plan.nodes[k].op].emit_forward(e, plan.nodes[k]);
  std::vector<Val> results;
  if (opt.eval) {
    results.push_back(e.b.reshape(e.acts[plan.logits], sig.outputs[0].shape));
  } else {
    table[plan.nodes[loss].op].emit_forward(e, plan.nodes[loss]);
    e.b.blank();
    // Backward, in reverse plan order (the loss first, seeded with dL = 1).
    for (size_t k = plan.nodes.size(); k-- > 0;) {
      const graph::Node& n = plan.nodes[k];
      const bool wanted = !n.params.empty() || k == loss ||
                          std::any_of(edges[k].begin(), edges[k].end(), [](auto x) { return x != graph::EdgeKind::None; });
      if (wanted) table[n.op].emit_backward(e, n);  // as the executor: nothing upstream needs the rest
    }
    for (size_t t = 0; t < plan.params.size(); ++t)
      if (!e.grads[t].valid()) throw std::logic_error("export: no gradient for " + plan.params[t].name);
    const Update u = optimizer(e, plan, opt.optim, state_in, lr, step);
    results = u.params;
    results.insert(results.end(), u.state.begin(), u.state.end());
    results.push_back(e.acts[plan.loss]);
    for (size_t k = 0; k < plan.nodes.size(); ++k)
      for (const Val& v : e.state_out[k]) results.push_back(v);
    if (opt.logits) results.push_back(e.b.reshape(e.acts[plan.logits], sig.outputs.back().shape));
  }
  if (results.size() != sig.outputs.size()) throw std::logic_error("export: result count differs from the signature");
  for (size_t k = 0; k < results.size(); ++k)
    if (results[k].shape != sig.outputs[k].shape)
      throw std::logic_error("export: result " + sig.outputs[k].name + " has the wrong shape");

  // The module: a header that states the calling convention, then @main.
  std::string out;
  auto line = [&](const std::string& s) { out += "// " + s + "\n"; };
  const train::OptimConfig& o = opt.optim;
  line(fmt::format("VeriDL {} of {} at batch {}: StableHLO, generated by `veridl export`.",
                   opt.eval ? "evaluation forward" : "fused train step", plan.spec.name, plan.batch));
  if (opt.eval) {
    line("BatchNorm uses the running statistics given as inputs. Result: the logits.");
  } else {
    line(fmt::format("Loss: softmax cross-entropy, label smoothing {}. Optimizer: {} (momentum {}, beta1 {}, beta2 {}, "
                     "eps {}, weight decay {}, clip norm {}).",
                     plan.label_smoothing, o.kind, o.momentum, o.beta1, o.beta2, o.eps, o.weight_decay, o.clip_norm));
    line("The backward is the closed-form VJP sequence of the native plan (net::Executor), emitted from the");
    line("primitive table (src/veridl/prims/, each primitive's emitters); each backward op cites the registered contract");
    line("(veridl verify) it implements in a trailing comment. lr comes from the host (warmup + cosine);");
    line("step is the 1-based global step. BatchNorm outputs are the batch mean and biased variance: the host");
    line("updates its running statistics with them (m = 1 on step 1, 0.1 afterwards).");
    if (opt.logits) line("The last result is the forward's logits (the host counts the training accuracy from them).");
    line("<node>.keep (dropout, dropPath): the step's decisions, 1 = kept, which the host draws (the native");
    line("trainer's: noise::keep under noise::node_key(seed, step, node), src/veridl/calculus/decisions.hpp).");
  }
  line("Inputs of @main, in order:");
  for (size_t k = 0; k < sig.inputs.size(); ++k)
    line(fmt::format("  {:>3}  {:<36} {} {}", k, sig.inputs[k].name, sig.inputs[k].dtype, shape_text(sig.inputs[k].shape)));
  line("Results of @main, in order:");
  for (size_t k = 0; k < sig.outputs.size(); ++k)
    line(fmt::format("  {:>3}  {:<36} {} {}", k, sig.outputs[k].name, sig.outputs[k].dtype,
                     shape_text(sig.outputs[k].shape)));
  line("Compile for CPU:  iree-compile --iree-hal-target-device=local "
       "--iree-hal-local-target-device-backends=llvm-cpu F.mlir -o F.vmfb  (GPUs: docs/gpu.md)");
  out += fmt::format("module @veridl_{} {{\n", opt.eval ? "eval" : "train_step");
  std::vector<std::string> arg_text, res_types, res_ids;
  for (const Val& v : args) arg_text.push_back(fmt::format("{}: {}", v.id, type_str(v)));
  for (const Val& v : results) {
    res_types.push_back(type_str(v));
    res_ids.push_back(v.id);
  }
  out += fmt::format("  func.func @main({}) -> ({}) {{\n", fmt::join(arg_text, ", "), fmt::join(res_types, ", "));
  out += e.b.text();
  out += fmt::format("    return {} : {}\n  }}\n}}\n", fmt::join(res_ids, ", "), fmt::join(res_types, ", "));
  return out;
}

}  // namespace veridl::hlo
