#include "veridl/prims/softmax/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape Softmax::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() == 0) w.fail("needs an input with at least one dimension");
  a.K = x.d.back();
  a.rows = x.size() / a.K;
  return x;
}

void Softmax::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  b.comment(fmt::format("{} softmax over rows of {}", n.name, a.K));
  const Shape sh{e.B * i64(a.rows), i64(a.K)};
  const Val z = b.reshape(e.in(n, 0), sh);
  const Val ex = b.exp(b.sub(z, b.broadcast(b.reduce_max(z, {1}), {0}, sh)));
  const Val p = b.div(ex, b.broadcast(b.sum(ex, {1}), {0}, sh));
  e.set_out(n, b.reshape(p, e.in(n, 0).shape));
}

void Softmax::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  Tag t(b, "softmax_has_vjp");  // dz = p (dy - <p, dy>)
  const Shape sh{e.B * i64(a.rows), i64(a.K)};
  const Val p = b.reshape(e.acts.at(n.output), sh);
  const Val dy = b.reshape(e.dy(n), sh);
  const Val dot = b.sum(b.mul(p, dy), {1});
  e.set_dx(n, 0, b.reshape(b.mul(p, b.sub(dy, b.broadcast(dot, {0}, sh))), e.in(n, 0).shape));
}

void Softmax::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  e.o.begin(n.name);
  e.set_out_as(n, e.o.op("Softmax", {e.in_as(n, 0, {a.rows, a.K})}, {OnnxAttr::integer("axis", -1)}), {a.rows, a.K});
}

}  // namespace veridl::prims
