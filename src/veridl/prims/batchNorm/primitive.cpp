#include "veridl/prims/batchNorm/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;
namespace {
constexpr const char* kDx = "bn_input_grad_correct";
constexpr const char* kDgamma = "bn_gamma_grad_correct";
constexpr const char* kDbeta = "bn_beta_grad_correct";
Shape nchw(const Emission& e, const ops::BatchNormShape& s) { return {e.B, i64(s.C), i64(s.H), i64(s.W)}; }
}  // namespace

VShape BatchNorm::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() == 3) a.shape = {1, x.d[0], x.d[1], x.d[2]};
  else if (x.rank() == 1) a.shape = {1, x.d[0], 1, 1};
  else w.fail(fmt::format("needs a C x H x W or flat input, got {}", x.str()));
  return x;
}

void BatchNorm::declare(const Attrs& a, Decl& d) {
  const size_t C = a.shape.C;
  d.params = {{"gamma", {int64_t(C)}, 0, Init::One, false}, {"beta", {int64_t(C)}, 0, Init::Zero, true}};
  d.state = {{"running_mean", "batch_mean", C, 0.0f}, {"running_var", "batch_var", C, 1.0f}};
  d.saved = {{Elem::Scalar, 0, C, false},
             {Elem::Scalar, 0, C, false},
             {Elem::Scalar, 0, C, false},
             {Elem::F64, 0, 2 * C, true}};  // the float kernels' double mean and r (the backward's xhat from x)
  if (a.relu) d.saved.push_back({Elem::U8, C * a.shape.H * a.shape.W, 0, true});  // the fused ReLU's mask
  d.bwd_reads_input = {true};
}

void BatchNorm::emit_forward(Emission& e, const Node& n) {
  const ops::BatchNormShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  const Shape sh = nchw(e, s);
  const Val x = b.reshape(e.in(n, 0), sh);
  const float eps = static_cast<float>(ops::kBatchNormEps);
  auto per_channel = [&](const Val& v) { return b.broadcast(v, {1}, sh); };
  const size_t k = e.index(n);
  const bool relu = n.attrs_as<Attrs>().relu;
  if (e.eval) {
    b.comment(fmt::format("{} BatchNorm (eval): y = gamma (x - running_mean) rsqrt(running_var + eps) + beta", n.name));
    const Val& rm = e.state_in[k].at(0);
    const Val& rv = e.state_in[k].at(1);
    const Val rc = b.rsqrt(b.add(rv, eps));
    const Val xh = b.mul(b.sub(x, per_channel(rm)), per_channel(rc));
    const Val y = b.add(b.mul(per_channel(e.param(n, 0)), xh), per_channel(e.param(n, 1)));
    e.set_out(n, relu ? b.select(b.compare("GT", y, b.cst(0.0f, y.shape)), y, b.cst(0.0f, y.shape)) : y);
    return;
  }
  b.comment(fmt::format("{} BatchNorm (train): batch mean, biased variance, eps {}", n.name, ops::kBatchNormEps));
  const float inv_n = 1.0f / static_cast<float>(s.H * s.W * static_cast<size_t>(e.B));
  const Val mean = b.mul(channel_sum(b, x), inv_n);
  const Val d = b.sub(x, per_channel(mean));
  const Val var = b.mul(channel_sum(b, b.mul(d, d)), inv_n);
  const Val r = b.rsqrt(b.add(var, eps));
  const Val xhat = b.mul(d, per_channel(r));
  e.saved[k] = {r, xhat};
  e.state_out[k] = {mean, var};
  const Val y = b.add(b.mul(per_channel(e.param(n, 0)), xhat), per_channel(e.param(n, 1)));
  if (!relu) {
    e.set_out(n, y);
    return;
  }
  b.comment(fmt::format("{} fused ReLU (mask: y > 0)", n.name));
  const Val zero = b.cst(0.0f, y.shape);
  const Val mask = b.compare("GT", y, zero);
  e.saved[k].push_back(mask);
  e.set_out(n, b.select(mask, y, zero));
}

void BatchNorm::emit_backward(Emission& e, const Node& n) {
  const ops::BatchNormShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} BatchNorm backward (reuses the forward's r and xhat)", n.name));
  const Shape sh = nchw(e, s);
  const Val& r = e.saved[e.index(n)].at(0);
  const Val& xhat = e.saved[e.index(n)].at(1);
  Val dy = b.reshape(e.dy(n), sh);
  if (n.attrs_as<Attrs>().relu) {  // the fused ReLU's backward first: dy where its mask is set
    Tag t(b, "relu_has_vjp_correct");  // ReLU's own VJP (prims/relu), on the fused node's mask
    const Val& mask = e.saved[e.index(n)].at(2);
    dy = b.select(mask, dy, b.cst(0.0f, sh));
  }
  auto per_channel = [&](const Val& v) { return b.broadcast(v, {1}, sh); };
  {
    Tag t(b, kDgamma);  // dgamma = sum dy xhat
    e.set_grad(n, 0, channel_sum(b, b.mul(dy, xhat)));
  }
  {
    Tag t(b, kDbeta);  // dbeta = sum dy
    e.set_grad(n, 1, e.drop_bias() ? b.cst(0.0f, {i64(s.C)}) : channel_sum(b, dy));
  }
  if (e.want_dx(n, 0)) {
    // dx = (r/n)(n dxhat - sum dxhat - xhat sum(xhat dxhat)),  dxhat = gamma dy
    Tag t(b, kDx);
    const float cnt = static_cast<float>(s.H * s.W * static_cast<size_t>(e.B));
    const Val dxh = b.mul(per_channel(e.param(n, 0)), dy);
    const Val sum_dxh = channel_sum(b, dxh);
    const Val sum_xdxh = channel_sum(b, b.mul(xhat, dxh));
    const Val k = b.mul(r, 1.0f / cnt);
    const Val inner = b.sub(b.sub(b.mul(dxh, cnt), per_channel(sum_dxh)), b.mul(xhat, per_channel(sum_xdxh)));
    e.set_dx(n, 0, b.mul(per_channel(k), inner));
  }
}

std::vector<std::string> BatchNorm::contracts() { return {kDx, kDgamma, kDbeta}; }

std::vector<Example> BatchNorm::examples() {
  return {{"C=3 4x5", nlohmann::json::object(), {{{3, 4, 5}}}}, {"flat 6", nlohmann::json::object(), {{{6}}}}};
}

// Evaluation form: BatchNormalization on the running statistics (initializers "<node>.running_mean" / "running_var").
void BatchNorm::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::BatchNormShape& s = n.attrs_as<Attrs>().shape;
  const bool relu = n.attrs_as<Attrs>().relu;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::string x = e.in_as(n, 0, {s.C, s.H, s.W});
  const float eps = static_cast<float>(ops::kBatchNormEps);
  if (e.fault == OnnxFault::BatchNormBatchStats) {  // the training form on the batch's statistics (a deliberate fault)
    const std::vector<int64_t> axes{0, 2, 3};
    const std::string mean = o.op("ReduceMean", {x}, {OnnxAttr::list("axes", axes)});
    const std::string d = o.op("Sub", {x, mean});
    const std::string var = o.op("ReduceMean", {o.op("Mul", {d, d})}, {OnnxAttr::list("axes", axes)});
    const std::string xh = o.op("Div", {d, o.op("Sqrt", {o.op("Add", {var, o.scalar(eps)})})});
    auto chan = [&](const std::string& v) { return o.op("Reshape", {v, o.ints({int64_t(s.C), 1, 1})}); };
    const std::string y = o.op("Add", {o.op("Mul", {xh, chan(e.param(n, 0))}), chan(e.param(n, 1))});
    e.set_out_as(n, relu ? o.op("Relu", {y}) : y, {s.C, s.H, s.W});
    return;
  }
  const auto& st = e.state.at(e.index(n));
  const std::string y = o.op("BatchNormalization", {x, e.param(n, 0), e.param(n, 1), st.at(0), st.at(1)},
                             {OnnxAttr::real("epsilon", eps)});
  e.set_out_as(n, relu ? o.op("Relu", {y}) : y, {s.C, s.H, s.W});  // the fused ReLU: ONNX's own node
}

}  // namespace veridl::prims
