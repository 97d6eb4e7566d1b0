#include "veridl/prims/mul/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape Mul::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape &x = in[0], &s = in[1];
  if (x == s) {
    a.C = x.size();
    a.inner = 1;
  } else if (s.rank() == 1 && x.rank() == 3 && s.d[0] == x.d[0]) {
    a.C = x.d[0];
    a.inner = x.d[1] * x.d[2];
  } else {
    w.fail(fmt::format("multiplies a value by one of the same shape or by one value per channel, got {} and {}",
                       x.str(), s.str()));
  }
  return x;
}

void Mul::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  b.comment(fmt::format("{} mul (elemwiseProduct, {} values per channel)", n.name, a.inner));
  const Shape sh{e.B, i64(a.C), i64(a.inner)};
  const Val x = b.reshape(e.in(n, 0), sh);
  const Val s = b.broadcast(b.reshape(e.in(n, 1), {e.B, i64(a.C)}), {0, 1}, sh);
  e.set_out(n, b.reshape(b.mul(x, s), e.in(n, 0).shape));
}

void Mul::emit_backward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  b.comment(fmt::format("{} mul backward", n.name));
  Tag t(b, "elemwiseProduct_has_vjp");
  const Shape sh{e.B, i64(a.C), i64(a.inner)};
  const Val dy = b.reshape(e.dy(n), sh);
  const Val x = b.reshape(e.in(n, 0), sh);
  const Val s = b.reshape(e.in(n, 1), {e.B, i64(a.C)});
  if (e.want_dx(n, 0)) e.set_dx(n, 0, b.mul(dy, b.broadcast(s, {0, 1}, sh)));  // da = s dy
  if (e.want_dx(n, 1)) e.set_dx(n, 1, b.sum(b.mul(x, dy), {2}));             // ds = sum_k a dy
}

// y[b, c, k] = a[b, c, k] s[b, c]: the gate broadcast over the inner positions.
void Mul::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  e.o.begin(n.name);
  e.set_out_as(n, e.o.op("Mul", {e.in_as(n, 0, {a.C, a.inner}), e.in_as(n, 1, {a.C, 1})}), {a.C, a.inner});
}

}  // namespace veridl::prims
