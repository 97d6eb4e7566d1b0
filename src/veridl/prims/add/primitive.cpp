#include "veridl/prims/add/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape Add::infer(Attrs& a, InShapes in, const Where& w) {
  if (in[0] != in[1]) w.fail(fmt::format("adds two values of the same shape, got {} and {}", in[0].str(), in[1].str()));
  a.width = in[0].size();
  return in[0];
}

void Add::emit_forward(Emission& e, const Node& n) {
  Builder& b = e.b;
  b.comment(fmt::format("{} add (biPath)", n.name));
  e.set_out(n, b.add(e.in(n, 0), b.reshape(e.in(n, 1), e.in(n, 0).shape)));
}

void Add::emit_backward(Emission& e, const Node& n) {
  e.b.comment(fmt::format("{} add backward: both inputs get dy", n.name));
  Tag t(e.b, "biPath_has_vjp");
  for (size_t i = 0; i < 2; ++i)
    if (e.want_dx(n, i)) e.set_dx(n, i, e.dy(n));
}

void Add::emit_onnx(OnnxEmission& e, const Node& n) {
  e.o.begin(n.name);
  e.set_out(n, e.o.op("Add", {e.in(n, 0), e.in_as(n, 1, e.in_shape(n, 0))}));
}

}  // namespace veridl::prims
