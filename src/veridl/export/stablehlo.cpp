// The StableHLO exporter: see stablehlo.hpp for the calling convention and docs/gpu.md for its use.
//
// Structure, mirroring net::Executor line for line:
//   forward   for each step in plan order: the step kind's forward emitter
//   loss      softmax cross-entropy (label smoothing), its backward seeded with dL = 1
//   backward  for each step in reverse order: the step kind's backward emitter (parameter gradients
//             written, the input gradient only where the executor computes it: not for buffer 0)
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

#include "veridl/export/builder.hpp"
#include "veridl/ops/batchnorm.hpp"
#include "veridl/util/error.hpp"

namespace veridl::hlo {

using net::Step;
using net::StepKind;

namespace {
// The registered contracts (ops/*_contracts.cpp) whose closed forms the backward emitters write.
constexpr const char* kDenseDx = "dense_has_vjp";
constexpr const char* kDenseDw = "dense_weight_grad_correct";
constexpr const char* kDenseDb = "dense_bias_grad_correct";
constexpr const char* kConvDx = "conv2d_has_vjp3_correct";
constexpr const char* kConvDw = "conv2d_weight_grad_has_vjp";
constexpr const char* kConvDb = "conv2d_bias_grad_has_vjp";
constexpr const char* kBnDx = "bn_input_grad_correct";
constexpr const char* kBnDgamma = "bn_gamma_grad_correct";
constexpr const char* kBnDbeta = "bn_beta_grad_correct";
constexpr const char* kRelu = "relu_has_vjp_correct";
constexpr const char* kMaxPool = "maxPool2_has_vjp3_correct";
constexpr const char* kSoftmaxCE = "softmaxCE_grad";
// Flatten is a reindexing of a C-order buffer: its VJP is the inverse reshape, which needs no contract.
constexpr const char* kFlattenVjp = "reshape back (flatten is a reindexing; no contract)";
}  // namespace

struct Emission {
  Builder b;
  const net::Plan& plan;
  const ExportOptions& opt;
  int64_t B = 0;
  std::vector<Val> params, grads;  // per parameter tensor
  std::vector<Val> acts, dacts;    // per activation buffer (the executor's acts_ / dacts_)
  struct Saved {
    Val mask, idx, mean, var, r, xhat;
  };
  std::vector<Saved> aux;                               // per saved-state slot (the executor's aux_)
  std::map<size_t, std::pair<Val, Val>> running;        // eval: aux slot -> running mean, var
  std::map<size_t, Shape> flatten_from;                 // flatten step (by layer) -> the shape it flattened
  Val labels;

  Emission(const net::Plan& p, const ExportOptions& o) : plan(p), opt(o), B(static_cast<int64_t>(p.batch)) {}
  const Val& param(size_t t) const { return params.at(t); }
  bool want_dx(const Step& s) const { return s.in_buf != 0; }  // as Executor::backward (no input grad)
  bool drop_bias() const { return opt.fault == ExportFault::DropBiasGrad; }
};

namespace {

int64_t i64(size_t v) { return static_cast<int64_t>(v); }

struct Tag {  // sets the builder's trailing comment for a scope
  Builder& b;
  Tag(Builder& bb, const char* t) : b(bb) { b.tag = t; }
  ~Tag() { b.tag.clear(); }
};

// Per-channel sum of an NCHW tensor, one dimension at a time (W, then H, then N): float32 error grows
// with the length of each sum, so three short sums are far closer to the native kernels (which
// accumulate BatchNorm statistics in double) than one sum of N*H*W terms.
Val channel_sum(Builder& b, const Val& x) { return b.sum(b.sum(b.sum(x, {3}), {2}), {0}); }

// ---- dense: y = x W + b ----------------------------------------------------------------------
void dense_fwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  const int64_t I = i64(s.width_in), O = i64(s.width_out);
  b.comment(fmt::format("layers.{} dense {} -> {}: y = x W + b", s.layer, I, O));
  const Val x = b.reshape(e.acts[s.in_buf], {e.B, I});
  const Val y = b.dot(x, e.param(s.w), {1}, {0});
  e.acts[s.out_buf] = b.add(y, b.broadcast(e.param(s.b), {1}, {e.B, O}));
}

void dense_bwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  const int64_t I = i64(s.width_in), O = i64(s.width_out);
  b.comment(fmt::format("layers.{} dense backward", s.layer));
  const Val dy = b.reshape(e.dacts[s.out_buf], {e.B, O});
  const Val x = b.reshape(e.acts[s.in_buf], {e.B, I});
  {
    Tag t(b, kDenseDw);  // dW[i,o] = sum_b x[b,i] dy[b,o]
    e.grads[s.w] = b.dot(x, dy, {0}, {0});
  }
  {
    Tag t(b, kDenseDb);  // db[o] = sum_b dy[b,o]
    e.grads[s.b] = e.drop_bias() ? b.cst(0.0f, {O}) : b.sum(dy, {0});
  }
  if (e.want_dx(s)) {
    Tag t(b, kDenseDx);  // dx[b,i] = sum_o W[i,o] dy[b,o]
    e.dacts[s.in_buf] = b.dot(dy, e.param(s.w), {1}, {1});
  }
}

// ---- conv2d: NCHW cross-correlation, OIHW kernel, stride, zero padding -----------------------
Shape conv_in(const Emission& e, const ops::Conv2dShape& c) { return {e.B, i64(c.C), i64(c.H), i64(c.W)}; }
Shape conv_out(const Emission& e, const ops::Conv2dShape& c) { return {e.B, i64(c.O), i64(c.OH()), i64(c.OW())}; }

// The input and its padding cut to what the windows read: (OH - 1) s + KH padded rows (likewise
// columns). With "valid" or symmetric padding a strided convolution can leave padded or real rows
// past its last window; those contribute nothing, and IREE 3.13 rejects such a strided convolution
// ("linalg.generic op inferred input/output operand ... dimension"), so they are never emitted.
// A window geometry along H and W (conv or pool): input extent, kernel, stride, output extent, low pad.
struct Windows {
  int64_t H, W, KH, KW, st, OH, OW, pt, pl;
};
Windows windows(const ops::Conv2dShape& c) {
  return {i64(c.H), i64(c.W), i64(c.KH), i64(c.KW), i64(c.stride), i64(c.OH()), i64(c.OW()), i64(c.pad_top),
          i64(c.pad_left)};
}
Windows windows(const ops::MaxPoolShape& p) {
  return {i64(p.H), i64(p.W), i64(p.KH), i64(p.KW), i64(p.stride), i64(p.OH()), i64(p.OW()), i64(p.pad_top),
          i64(p.pad_left)};
}
struct FittedInput {
  Val x;
  std::vector<std::pair<int64_t, int64_t>> pad;
};
FittedInput fit_input(Builder& b, const Val& x, const Windows& g) {
  const int64_t hi_h = (g.OH - 1) * g.st + g.KH - g.H - g.pt, hi_w = (g.OW - 1) * g.st + g.KW - g.W - g.pl;
  FittedInput f{x, {{g.pt, std::max<int64_t>(hi_h, 0)}, {g.pl, std::max<int64_t>(hi_w, 0)}}};
  if (hi_h < 0 || hi_w < 0)  // real rows / columns past the last window: cut them
    f.x = b.slice(x, {0, 0, 0, 0},
                  {x.shape[0], x.shape[1], g.H + std::min<int64_t>(hi_h, 0), g.W + std::min<int64_t>(hi_w, 0)},
                  {1, 1, 1, 1});
  return f;
}
// The input gradient of a window op as a convolution of the stride-dilated dy with the flipped,
// io-transposed kernel w [O, C, KH, KW]: dy [N, O, OH, OW] -> [N, C, H, W].
Val window_input_grad(Builder& b, const Val& dy, const Val& w, const Windows& g, const std::string& where) {
  const int64_t lo_h = g.KH - 1 - g.pt, lo_w = g.KW - 1 - g.pl;
  const int64_t hi_h = g.H - 1 + g.pt - (g.OH - 1) * g.st, hi_w = g.W - 1 + g.pl - (g.OW - 1) * g.st;
  if (lo_h < 0 || lo_w < 0 || hi_h < 0 || hi_w < 0)
    throw Error("export: " + where + ": padding larger than the window is not supported");
  return b.convolution(dy, b.reverse(w, {2, 3}), {"b, f, 0, 1", "i, o, 0, 1", "b, f, 0, 1"}, {1, 1},
                       {{lo_h, hi_h}, {lo_w, hi_w}}, {g.st, g.st}, {1, 1}, {dy.shape[0], w.shape[1], g.H, g.W});
}

void conv_fwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  const ops::Conv2dShape& c = s.conv;
  b.comment(fmt::format("layers.{} conv2d {}", s.layer, c.str()));
  const FittedInput in = fit_input(b, b.reshape(e.acts[s.in_buf], conv_in(e, c)), windows(c));
  const Shape out = conv_out(e, c);
  const int64_t st = i64(c.stride);
  Val y = b.convolution(in.x, e.param(s.w), {"b, f, 0, 1", "o, i, 0, 1", "b, f, 0, 1"}, {st, st}, in.pad, {1, 1},
                        {1, 1}, out);
  if (s.has_bias) y = b.add(y, b.broadcast(e.param(s.b), {1}, out));
  e.acts[s.out_buf] = y;
}

void conv_bwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  const ops::Conv2dShape& c = s.conv;
  b.comment(fmt::format("layers.{} conv2d backward", s.layer));
  const Shape in = conv_in(e, c), out = conv_out(e, c);
  const Val dy = b.reshape(e.dacts[s.out_buf], out);
  const Val x = b.reshape(e.acts[s.in_buf], in);
  const int64_t st = i64(c.stride);
  {
    // dW[o,c,kh,kw] = sum_{b,i,j} x[b,c, i s + kh - pt, j s + kw - pl] dy[b,o,i,j]: a convolution of x
    // (batch as the feature dimension) with dy (stride as the kernel dilation), contracting the batch;
    // the input cut to the rows the forward's windows read.
    Tag t(b, kConvDw);
    const FittedInput fx = fit_input(b, x, windows(c));
    e.grads[s.w] = b.convolution(fx.x, dy, {"f, b, 0, 1", "i, o, 0, 1", "f, b, 0, 1"}, {1, 1}, fx.pad, {1, 1},
                                 {st, st}, {i64(c.O), i64(c.C), i64(c.KH), i64(c.KW)});
  }
  if (s.has_bias) {
    Tag t(b, kConvDb);  // db[o] = sum_{b,i,j} dy[b,o,i,j]
    e.grads[s.b] = e.drop_bias() ? b.cst(0.0f, {i64(c.O)}) : channel_sum(b, dy);
  }
  if (e.want_dx(s)) {
    // dx = the stride-dilated dy convolved with the spatially flipped, io-transposed kernel.
    Tag t(b, kConvDx);
    e.dacts[s.in_buf] = window_input_grad(b, dy, e.param(s.w), windows(c), fmt::format("layers.{} {}", s.layer, c.str()));
  }
}

// ---- BatchNorm: batch statistics (biased variance) in training, running statistics in eval ----
Shape bn_shape(const Emission& e, const ops::BatchNormShape& s) { return {e.B, i64(s.C), i64(s.H), i64(s.W)}; }

void bn_fwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  const Shape sh = bn_shape(e, s.bn);
  const Val x = b.reshape(e.acts[s.in_buf], sh);
  const float eps = static_cast<float>(ops::kBatchNormEps);
  auto per_channel = [&](const Val& v) { return b.broadcast(v, {1}, sh); };
  if (e.opt.eval) {
    b.comment(fmt::format("layers.{} BatchNorm (eval): y = gamma (x - running_mean) rsqrt(running_var + eps) + beta",
                          s.layer));
    const auto& [rm, rv] = e.running.at(s.aux);
    const Val rc = b.rsqrt(b.add(rv, eps));
    const Val xh = b.mul(b.sub(x, per_channel(rm)), per_channel(rc));
    e.acts[s.out_buf] = b.add(b.mul(per_channel(e.param(s.w)), xh), per_channel(e.param(s.b)));
    return;
  }
  b.comment(fmt::format("layers.{} BatchNorm (train): batch mean, biased variance, eps {}", s.layer,
                        ops::kBatchNormEps));
  const float inv_n = 1.0f / static_cast<float>(s.bn.per_channel());
  Emission::Saved& a = e.aux[s.aux];
  a.mean = b.mul(channel_sum(b, x), inv_n);
  const Val d = b.sub(x, per_channel(a.mean));
  a.var = b.mul(channel_sum(b, b.mul(d, d)), inv_n);
  a.r = b.rsqrt(b.add(a.var, eps));
  a.xhat = b.mul(d, per_channel(a.r));
  e.acts[s.out_buf] = b.add(b.mul(per_channel(e.param(s.w)), a.xhat), per_channel(e.param(s.b)));
}

void bn_bwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  b.comment(fmt::format("layers.{} BatchNorm backward (reuses the forward's r and xhat)", s.layer));
  const Shape sh = bn_shape(e, s.bn);
  const Emission::Saved& a = e.aux[s.aux];
  const Val dy = b.reshape(e.dacts[s.out_buf], sh);
  auto per_channel = [&](const Val& v) { return b.broadcast(v, {1}, sh); };
  {
    Tag t(b, kBnDgamma);  // dgamma = sum dy xhat
    e.grads[s.w] = channel_sum(b, b.mul(dy, a.xhat));
  }
  {
    Tag t(b, kBnDbeta);  // dbeta = sum dy
    e.grads[s.b] = e.drop_bias() ? b.cst(0.0f, {i64(s.bn.C)}) : channel_sum(b, dy);
  }
  if (e.want_dx(s)) {
    // dx = (r/n)(n dxhat - sum dxhat - xhat sum(xhat dxhat)),  dxhat = gamma dy
    Tag t(b, kBnDx);
    const float n = static_cast<float>(s.bn.per_channel());
    const Val dxh = b.mul(per_channel(e.param(s.w)), dy);
    const Val sum_dxh = channel_sum(b, dxh);
    const Val sum_xdxh = channel_sum(b, b.mul(a.xhat, dxh));
    const Val k = b.mul(a.r, 1.0f / n);
    const Val inner = b.sub(b.sub(b.mul(dxh, n), per_channel(sum_dxh)), b.mul(a.xhat, per_channel(sum_xdxh)));
    e.dacts[s.in_buf] = b.mul(per_channel(k), inner);
  }
}

// ---- ReLU: strict > (ReLU'(0) = 0); the mask is saved ------------------------------------------
void relu_fwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  b.comment(fmt::format("layers.{} ReLU (mask: x > 0)", s.layer));
  const Val x = e.acts[s.in_buf];
  const Val zero = b.cst(0.0f, x.shape);
  Emission::Saved& a = e.aux[s.aux];
  a.mask = b.compare("GT", x, zero);
  e.acts[s.out_buf] = b.select(a.mask, x, zero);
}

void relu_bwd(Emission& e, const Step& s) {
  if (!e.want_dx(s)) return;
  Builder& b = e.b;
  b.comment(fmt::format("layers.{} ReLU backward", s.layer));
  Tag t(b, kRelu);  // dx = mask ? dy : 0
  const Val& mask = e.aux[s.aux].mask;
  const Val dy = b.reshape(e.dacts[s.out_buf], mask.shape);
  e.dacts[s.in_buf] = b.select(mask, dy, b.cst(0.0f, mask.shape));
}

// ---- max-pool: the window's first maximum in row-major scan order wins, and only it gets dy ------
// As patches: the "identity" convolution with kernel E[k, 0, kh, kw] = (k == kh KW + kw) copies window
// cell k of every output position into channel k -- exactly: every other product is a zero -- so the
// forward is one convolution and two reductions (the max, then the lowest k holding it: the native
// strict-> scan), and the backward is the transposed convolution (col2im) that routes dy to the chosen
// cells and sums overlapping windows. Padded cells never win: they are set to -inf.
Val eye_kernel(Builder& b, int64_t KH, int64_t KW) {
  std::vector<float> e(static_cast<size_t>(KH * KW * KH * KW), 0.0f);
  for (int64_t k = 0; k < KH * KW; ++k) e[static_cast<size_t>(k * KH * KW + k)] = 1.0f;
  return b.literal(e, {KH * KW, 1, KH, KW});
}

void maxpool_fwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  b.comment(fmt::format("layers.{} max-pool {} (arg-max: first maximum in window scan order)", s.layer,
                        s.pool.str()));
  const ops::MaxPoolShape& p = s.pool;
  const Windows g = windows(p);
  const int64_t N = e.B * i64(p.C), KK = g.KH * g.KW;
  const FittedInput in = fit_input(b, b.reshape(e.acts[s.in_buf], {N, 1, g.H, g.W}), g);
  const Shape ps{N, KK, g.OH, g.OW};
  Val patches = b.convolution(in.x, eye_kernel(b, g.KH, g.KW), {"b, f, 0, 1", "o, i, 0, 1", "b, f, 0, 1"},
                              {g.st, g.st}, in.pad, {1, 1}, {1, 1}, ps);
  if (p.pad_top || p.pad_left || p.pad_bottom || p.pad_right) {
    // Cell k of output (i, j) is input (i s + kh - pt, j s + kw - pl): in range, or padding (-inf).
    const Shape ks{KK, g.OH, g.OW};
    const Val k = b.iota(0, ks, DType::I32);
    const Val kh = b.div(k, b.cst_i32(static_cast<int32_t>(g.KW), ks));
    const Val kw = b.sub(k, b.mul(kh, b.cst_i32(static_cast<int32_t>(g.KW), ks)));
    auto coord = [&](int64_t dim, const Val& off, int64_t pad) {
      return b.add(b.mul(b.iota(dim, ks, DType::I32), b.cst_i32(static_cast<int32_t>(g.st), ks)),
                   b.sub(off, b.cst_i32(static_cast<int32_t>(pad), ks)));
    };
    auto in_range = [&](const Val& v, int64_t n) {
      return b.and_(b.compare("GE", v, b.cst_i32(0, ks)), b.compare("LT", v, b.cst_i32(static_cast<int32_t>(n), ks)));
    };
    const Val valid = b.and_(in_range(coord(1, kh, g.pt), g.H), in_range(coord(2, kw, g.pl), g.W));
    patches = b.select(b.broadcast(valid, {1, 2, 3}, ps), patches,
                       b.cst(-std::numeric_limits<float>::infinity(), ps));
  }
  const Val y = b.reduce_max(patches, {1});
  const Val at_max = b.compare("EQ", patches, b.broadcast(y, {0, 2, 3}, ps));
  const Val kidx = b.iota(1, ps, DType::I32);
  if (e.opt.fault == ExportFault::MaxPoolTiesToLast) {  // the last maximum (a deliberate fault, tests only)
    e.aux[s.aux].idx = b.reduce(b.select(at_max, kidx, b.cst_i32(-1, ps)), {1}, "maximum", b.cst_i32(-1, {}));
  } else {  // the first maximum: the lowest k holding the max
    e.aux[s.aux].idx = b.reduce(b.select(at_max, kidx, b.cst_i32(static_cast<int32_t>(KK), ps)), {1}, "minimum",
                                b.cst_i32(static_cast<int32_t>(KK), {}));
  }
  e.acts[s.out_buf] = b.reshape(y, {e.B, i64(p.C), g.OH, g.OW});
}

void maxpool_bwd(Emission& e, const Step& s) {
  if (!e.want_dx(s)) return;
  Builder& b = e.b;
  b.comment(fmt::format("layers.{} max-pool backward (dy routed to the saved arg-max; overlaps accumulate)",
                        s.layer));
  Tag t(b, kMaxPool);
  const ops::MaxPoolShape& p = s.pool;
  const Windows g = windows(p);
  const int64_t N = e.B * i64(p.C), KK = g.KH * g.KW;
  const Shape ps{N, KK, g.OH, g.OW};
  const Val& idx = e.aux[s.aux].idx;  // [N, OH, OW]
  const Val dy = b.reshape(e.dacts[s.out_buf], idx.shape);
  const Val chosen = b.compare("EQ", b.iota(1, ps, DType::I32), b.broadcast(idx, {0, 2, 3}, ps));
  const Val routed = b.select(chosen, b.broadcast(dy, {0, 2, 3}, ps), b.cst(0.0f, ps));
  const Val dx = window_input_grad(b, routed, eye_kernel(b, g.KH, g.KW), g, fmt::format("layers.{} {}", s.layer, p.str()));
  e.dacts[s.in_buf] = b.reshape(dx, {e.B, i64(p.C), g.H, g.W});
}

// ---- flatten: a reshape of the C-order buffer ----------------------------------------------------
void flatten_fwd(Emission& e, const Step& s) {
  Builder& b = e.b;
  b.comment(fmt::format("layers.{} flatten", s.layer));
  const Val x = e.acts[s.in_buf];
  e.flatten_from[s.layer] = x.shape;
  e.acts[s.out_buf] = b.reshape(x, {e.B, i64(s.width_out)});
}

void flatten_bwd(Emission& e, const Step& s) {
  if (!e.want_dx(s)) return;
  e.b.comment(fmt::format("layers.{} flatten backward", s.layer));
  Tag t(e.b, kFlattenVjp);
  e.dacts[s.in_buf] = e.b.reshape(e.dacts[s.out_buf], e.flatten_from.at(s.layer));
}

// ---- softmax cross-entropy with label smoothing (the loss; not a step) ---------------------------
struct LossVals {
  Val loss, p, t;
};

LossVals softmax_ce_fwd(Emission& e) {
  Builder& b = e.b;
  const int64_t K = i64(e.plan.num_classes);
  const double eps = e.plan.label_smoothing;
  b.comment(fmt::format("loss: softmax cross-entropy, label smoothing {}, mean over the batch", eps));
  const Val z = b.reshape(e.acts[e.plan.logits_buf()], {e.B, K});
  const Shape bk{e.B, K};
  const Val m = b.reduce_max(z, {1});
  const Val zs = b.sub(z, b.broadcast(m, {0}, bk));
  const Val ex = b.exp(zs);
  const Val S = b.sum(ex, {1});
  const Val inv = b.div(b.cst(1.0f, {e.B}), S);
  LossVals r;
  r.p = b.mul(ex, b.broadcast(inv, {0}, bk));
  const Val logp = b.sub(zs, b.broadcast(b.log(S), {0}, bk));
  // The smoothed target t = (1 - eps) onehot + eps / K, with the float values of ops::SmoothedTarget.
  const float off = static_cast<float>(eps) / static_cast<float>(K);
  const float on = 1.0f - static_cast<float>(eps) + off;
  const Val onehot = b.compare("EQ", b.iota(1, bk, DType::I32), b.broadcast(e.labels, {0}, bk));
  r.t = b.select(onehot, b.cst(on, bk), b.cst(off, bk));
  const Val total = b.sum(b.sum(b.mul(r.t, logp), {1}), {0});
  r.loss = b.div(b.neg(total), b.cst(static_cast<float>(e.B), {}));
  return r;
}

void softmax_ce_bwd(Emission& e, const LossVals& l) {
  Builder& b = e.b;
  b.comment("loss backward, seeded with dL = 1");
  Tag t(b, kSoftmaxCE);  // dz = dL (p - t) / B
  e.dacts[e.plan.logits_buf()] = b.mul(b.sub(l.p, l.t), 1.0f / static_cast<float>(e.B));
}

// ---- the optimizer (train/optimizer.cpp, elementwise) --------------------------------------------
struct Update {
  std::vector<Val> params, state;
};

Update optimizer(Emission& e, const std::vector<Val>& state_in, const Val& lr, const Val& step) {
  Builder& b = e.b;
  const train::OptimConfig& o = e.opt.optim;
  const size_t P = e.params.size();
  std::vector<Val> g = e.grads;
  b.blank();
  if (o.clip_norm > 0) {
    b.comment(fmt::format("optimizer: global-norm clipping g *= min(1, {} / (||g||_2 + 1e-6))", o.clip_norm));
    Val sq;
    for (size_t t = 0; t < P; ++t) {
      Shape all;
      for (size_t d = 0; d < g[t].shape.size(); ++d) all.push_back(i64(d));
      const Val part = b.sum(b.mul(g[t], g[t]), all);
      sq = t == 0 ? part : b.add(sq, part);
    }
    const Val norm = b.sqrt(sq);
    const Val scale = b.min(b.cst(1.0f, {}), b.div(b.cst(static_cast<float>(o.clip_norm), {}), b.add(norm, 1e-6f)));
    for (size_t t = 0; t < P; ++t) g[t] = b.mul(g[t], b.broadcast(scale, {}, g[t].shape));
  }
  const float wd = static_cast<float>(o.weight_decay);
  auto decayed = [&](size_t t) { return wd > 0 && e.plan.params[t].shape.size() >= 2; };  // weights only
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
  const bool coupled = o.kind == "adam";
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2), eps = static_cast<float>(o.eps);
  b.comment(fmt::format("optimizer: {}, beta1 {}, beta2 {}, eps {}, weight decay {} ({}, weights only)", o.kind,
                        o.beta1, o.beta2, o.eps, o.weight_decay, coupled ? "coupled L2" : "decoupled"));
  // Bias corrections 1 - beta^t = -expm1(t log beta), accurate in f32 for every step t.
  const Val tf = b.convert(step, DType::F32);
  const Val bc1 = b.neg(b.expm1(b.mul(tf, static_cast<float>(std::log(o.beta1)))));
  const Val bc2 = b.neg(b.expm1(b.mul(tf, static_cast<float>(std::log(o.beta2)))));
  const Val step_size = b.div(lr, bc1), isb2 = b.rsqrt(bc2);
  std::vector<Val> ms, vs;
  for (size_t t = 0; t < P; ++t) {
    const Val& p = e.params[t];
    const Val gi = coupled && decayed(t) ? b.add(g[t], b.mul(p, wd)) : g[t];
    const Val m = b.add(b.mul(state_in[t], b1), b.mul(gi, 1.0f - b1));
    const Val v = b.add(b.mul(state_in[P + t], b2), b.mul(b.mul(gi, 1.0f - b2), gi));
    // theta -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), as train/optimizer.cpp computes it.
    Val np = b.sub(p, b.div(b.mul(scalar(step_size, p), m), b.add(b.mul(b.sqrt(v), scalar(isb2, v)), eps)));
    if (!coupled && decayed(t)) np = b.sub(np, b.mul(scalar(b.mul(lr, b.cst(wd, {})), np), np));  // p -= lr wd p
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

std::vector<const Step*> bn_steps(const net::Plan& plan) {
  std::vector<const Step*> r;
  for (const Step& s : plan.steps)
    if (s.kind == StepKind::BatchNorm) r.push_back(&s);
  return r;
}

std::string shape_text(const std::vector<int64_t>& s) {
  if (s.empty()) return "scalar";
  return fmt::format("[{}]", fmt::join(s, ", "));
}

}  // namespace

const std::vector<PrimitiveEmitter>& primitive_emitters() {
  static const std::vector<PrimitiveEmitter> table = {
      {StepKind::Flatten, "flatten", {}, flatten_fwd, flatten_bwd},
      {StepKind::Dense, "dense", {kDenseDx, kDenseDw, kDenseDb}, dense_fwd, dense_bwd},
      {StepKind::Conv, "conv2d", {kConvDx, kConvDw, kConvDb}, conv_fwd, conv_bwd},
      {StepKind::BatchNorm, "batchnorm", {kBnDx, kBnDgamma, kBnDbeta}, bn_fwd, bn_bwd},
      {StepKind::Relu, "relu", {kRelu}, relu_fwd, relu_bwd},
      {StepKind::MaxPool, "maxpool", {kMaxPool}, maxpool_fwd, maxpool_bwd},
  };
  return table;
}

const PrimitiveEmitter* find_emitter(StepKind kind) {
  for (const auto& p : primitive_emitters())
    if (p.kind == kind) return &p;
  return nullptr;
}

const std::vector<std::string>& loss_contracts() {
  static const std::vector<std::string> c = {kSoftmaxCE};
  return c;
}

Signature signature(const net::Plan& plan, const ExportOptions& opt) {
  Signature s;
  const int64_t B = static_cast<int64_t>(plan.batch);
  for (const auto& t : plan.params) s.inputs.push_back({t.name, t.shape, "f32"});
  const Shape x{B, static_cast<int64_t>(plan.spec.channels), static_cast<int64_t>(plan.spec.imageH),
                static_cast<int64_t>(plan.spec.imageW)};
  if (opt.eval) {
    for (const Step* st : bn_steps(plan)) {
      s.inputs.push_back({fmt::format("layers.{}.bn.running_mean", st->layer), {int64_t(st->bn.C)}, "f32"});
      s.inputs.push_back({fmt::format("layers.{}.bn.running_var", st->layer), {int64_t(st->bn.C)}, "f32"});
    }
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
  for (const auto& t : plan.params) s.outputs.push_back({t.name, t.shape, "f32"});
  s.outputs.insert(s.outputs.end(), state.begin(), state.end());
  s.outputs.push_back({"loss", {}, "f32"});
  for (const Step* st : bn_steps(plan)) {
    s.outputs.push_back({fmt::format("layers.{}.bn.batch_mean", st->layer), {int64_t(st->bn.C)}, "f32"});
    s.outputs.push_back({fmt::format("layers.{}.bn.batch_var", st->layer), {int64_t(st->bn.C)}, "f32"});
  }
  return s;
}

std::string export_stablehlo(const net::Plan& plan, const ExportOptions& opt) {
  if (!opt.eval) train::validate(opt.optim);
  for (const Step& s : plan.steps)
    if (!find_emitter(s.kind)) throw Error(fmt::format("export: layers.{}: no StableHLO emitter for this step", s.layer));
  const Signature sig = signature(plan, opt);
  Emission e(plan, opt);
  e.acts.resize(plan.buf_width.size());
  e.dacts.resize(plan.buf_width.size());
  e.aux.resize(plan.n_aux);
  e.grads.resize(plan.params.size());

  // Arguments, named after the tensors they hold.
  std::vector<Val> args;
  for (const TensorSig& t : sig.inputs) args.push_back({"%" + t.name, t.shape, t.dtype == "i32" ? DType::I32 : DType::F32});
  size_t a = 0;
  for (size_t t = 0; t < plan.params.size(); ++t) e.params.push_back(args[a++]);
  std::vector<Val> state_in;
  if (opt.eval) {
    for (const Step* st : bn_steps(plan)) {
      const Val& m = args[a++];
      e.running[st->aux] = {m, args[a++]};
    }
  } else {
    for (size_t k = 0; k < state_sigs(plan, opt.optim).size(); ++k) state_in.push_back(args[a++]);
  }
  e.acts[0] = args[a++];
  Val lr, step;
  if (!opt.eval) {
    e.labels = args[a++];
    lr = args[a++];
    step = args[a++];
  }

  // Forward, in plan order.
  for (const Step& s : plan.steps) find_emitter(s.kind)->forward(e, s);
  std::vector<Val> results;
  if (opt.eval) {
    results.push_back(e.b.reshape(e.acts[plan.logits_buf()], sig.outputs[0].shape));
  } else {
    const LossVals loss = softmax_ce_fwd(e);
    e.b.blank();
    softmax_ce_bwd(e, loss);
    // Backward, in reverse plan order.
    for (size_t k = plan.steps.size(); k-- > 0;) find_emitter(plan.steps[k].kind)->backward(e, plan.steps[k]);
    for (size_t t = 0; t < plan.params.size(); ++t)
      if (!e.grads[t].valid()) throw std::logic_error("export: no gradient for " + plan.params[t].name);
    const Update u = optimizer(e, state_in, lr, step);
    results = u.params;
    results.insert(results.end(), u.state.begin(), u.state.end());
    results.push_back(loss.loss);
    for (const Step* st : bn_steps(plan)) {
      results.push_back(e.aux[st->aux].mean);
      results.push_back(e.aux[st->aux].var);
    }
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
    line("per-primitive table of src/veridl/export/stablehlo.cpp; each backward op cites the registered contract");
    line("(veridl verify) it implements in a trailing comment. lr comes from the host (warmup + cosine);");
    line("step is the 1-based global step. BatchNorm outputs are the batch mean and biased variance: the host");
    line("updates its running statistics with them (m = 1 on step 1, 0.1 afterwards).");
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
