#include "veridl/prims/clsPool/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape ClsPool::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() != 2) w.fail(fmt::format("needs tokens [T, D], got {}", x.str()));
  a.T = x.d[0];
  a.D = x.d[1];
  return {{a.D}};
}

void ClsPool::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  const int64_t D = i64(a.D);
  b.comment(fmt::format("{} the CLS row of {} tokens", n.name, a.T));
  const Val x = b.reshape(e.in(n, 0), {e.B, i64(a.T), D});
  e.set_out(n, b.reshape(b.slice(x, {0, 0, 0}, {e.B, 1, D}, {1, 1, 1}), {e.B, D}));
}

void ClsPool::emit_backward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  if (!e.want_dx(n, 0)) return;
  Builder& b = e.b;
  Tag t(b, "clsPool_has_vjp_correct");
  const int64_t D = i64(a.D);
  e.set_dx(n, 0, b.reshape(b.pad(b.reshape(e.dy(n), {e.B, 1, D}), 0.0f, {0, 0, 0}, {0, i64(a.T) - 1, 0}, {0, 0, 0}),
                           e.in(n, 0).shape));
}

void ClsPool::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::string row = o.op("Slice", {e.in_as(n, 0, {a.T, a.D}), o.ints({0}), o.ints({1}), o.ints({1})});
  e.set_out_as(n, row, {1, a.D});
}

}  // namespace veridl::prims
