#include "veridl/prims/scale/primitive.hpp"

#include <fmt/core.h>

#include <cmath>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

Scale::Attrs Scale::parse(Fields& f) {
  Attrs a;
  a.by = f.real("by", std::nullopt);
  if (!std::isfinite(a.by) || a.by == 0.0) f.where().fail(fmt::format("field 'by' must be a finite nonzero number, got {}", a.by));
  return a;
}

void Scale::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  e.b.comment(fmt::format("{} scale by {}", n.name, a.by));
  e.set_out(n, e.b.mul(e.in(n, 0), static_cast<float>(a.by)));
}

void Scale::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  Tag t(e.b, "scale_has_vjp");
  e.set_dx(n, 0, e.b.mul(e.dy(n), static_cast<float>(n.attrs_as<Attrs>().by)));
}

void Scale::emit_onnx(OnnxEmission& e, const Node& n) {
  e.o.begin(n.name);
  e.set_out(n, e.o.op("Mul", {e.in(n, 0), e.o.scalar(static_cast<float>(n.attrs_as<Attrs>().by))}));
}

}  // namespace veridl::prims
