#include "veridl/prims/patchTokens/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape PatchTokens::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() != 3) w.fail(fmt::format("needs a patchified image D x h x w, got {}", x.str()));
  a.shape = {1, x.d[0], x.d[1] * x.d[2]};
  return {{a.shape.tokens(), a.shape.D}};
}

void PatchTokens::declare(const Attrs& a, Decl& d) {
  const int64_t D = static_cast<int64_t>(a.shape.D), T = static_cast<int64_t>(a.shape.tokens());
  ParamDecl cls{"cls", {D}, 0, Init::Zero, true};
  ParamDecl pos{"pos", {T, D}, 0, Init::Zero, true};
  cls.no_decay = pos.no_decay = true;
  d.params = {cls, pos};
  d.bwd_reads_input = {false};
}

// tokens = pad(transpose(x), one row low) + pad(cls, P rows high) + pos
void PatchTokens::emit_forward(Emission& e, const Node& n) {
  const ops::PatchTokensShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  const int64_t B = e.B, D = i64(s.D), P = i64(s.P), Tk = P + 1;
  b.comment(fmt::format("{} patch tokens: {} patches of width {}, CLS token prepended, position embedding added", n.name, P, D));
  const Val x = b.transpose(b.reshape(e.in(n, 0), {B, D, P}), {0, 2, 1});
  const Val xt = b.pad(x, 0.0f, {0, 1, 0}, {0, 0, 0}, {0, 0, 0});
  const Val cls = b.pad(b.reshape(e.param(n, 0), {1, D}), 0.0f, {0, 0}, {P, 0}, {0, 0});
  const Val row = b.add(cls, e.param(n, 1));
  e.set_out(n, b.add(xt, b.broadcast(row, {1, 2}, {B, Tk, D})));
}

void PatchTokens::emit_backward(Emission& e, const Node& n) {
  const ops::PatchTokensShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  const int64_t B = e.B, D = i64(s.D), P = i64(s.P), Tk = P + 1;
  b.comment(fmt::format("{} patch tokens backward", n.name));
  Tag t(b, "patchTokens_has_vjp_correct");
  const Val& dy = e.dy(n);
  e.set_grad(n, 0, e.drop_bias() ? b.cst(0.0f, {D}) : b.sum(b.reshape(b.slice(dy, {0, 0, 0}, {B, 1, D}, {1, 1, 1}), {B, D}), {0}));
  e.set_grad(n, 1, e.drop_bias() ? b.cst(0.0f, {Tk, D}) : b.sum(dy, {0}));
  if (e.want_dx(n, 0)) {
    const Val body = b.slice(dy, {0, 1, 0}, {B, Tk, D}, {1, 1, 1});
    e.set_dx(n, 0, b.reshape(b.transpose(body, {0, 2, 1}), e.in(n, 0).shape));
  }
}

// [N, D, P] -> tokens [N, P, D], a zero row put first, then (cls in row 0, zeros below) + pos added to every example.
void PatchTokens::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::PatchTokensShape& s = n.attrs_as<Attrs>().shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const int64_t D = int64_t(s.D), P = int64_t(s.P);
  const std::string xt = o.op("Transpose", {e.in_as(n, 0, {s.D, s.P})}, {OnnxAttr::list("perm", {0, 2, 1})});
  const std::string padded = o.op("Pad", {xt, o.ints({0, 1, 0, 0, 0, 0})});
  const std::string cls = o.op("Pad", {o.op("Reshape", {e.param(n, 0), o.ints({1, D})}), o.ints({0, 0, P, 0})});
  e.set_out_as(n, o.op("Add", {padded, o.op("Add", {cls, e.param(n, 1)})}), {s.P + 1, s.D});
}

}  // namespace veridl::prims
