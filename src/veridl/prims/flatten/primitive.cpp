#include "veridl/prims/flatten/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

void Flatten::emit_forward(Emission& e, const Node& n) {
  e.b.comment(fmt::format("{} flatten", n.name));
  e.set_out(n, e.b.reshape(e.in(n, 0), {e.B, i64(n.attrs_as<Attrs>().width)}));
}

void Flatten::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  e.b.comment(fmt::format("{} flatten backward", n.name));
  Tag t(e.b, "reshape back (flatten is a reindexing; no contract)");
  e.set_dx(n, 0, e.b.reshape(e.dy(n), e.in(n, 0).shape));
}

void Flatten::emit_onnx(OnnxEmission& e, const Node& n) {
  e.o.begin(n.name);
  e.set_out(n, e.o.op("Flatten", {e.in(n, 0)}, {OnnxAttr::integer("axis", 1)}));
}

}  // namespace veridl::prims
