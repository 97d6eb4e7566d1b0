#include "veridl/prims/relu6/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

// Both compares strict (the gradient passes iff 0 < x < 6); the mask is saved for the backward. Off the
// linear piece the value is 6 where x > 0 and 0 elsewhere (NaN included), as the native kernel.
void Relu6::emit_forward(Emission& e, const Node& n) {
  Builder& b = e.b;
  b.comment(fmt::format("{} ReLU6 (mask: 0 < x < 6)", n.name));
  const Val x = e.in(n, 0);
  const Val zero = b.cst(0.0f, x.shape), six = b.cst(6.0f, x.shape);
  const Val pos = b.compare("GT", x, zero);
  const Val mask = b.and_(pos, b.compare("LT", x, six));
  e.saved[e.index(n)] = {mask};
  e.set_out(n, b.select(mask, x, b.select(pos, six, zero)));
}

void Relu6::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  Builder& b = e.b;
  b.comment(fmt::format("{} ReLU6 backward", n.name));
  Tag t(b, "relu6_has_vjp_at");  // dx = mask ? dy : 0
  const Val& mask = e.saved[e.index(n)].at(0);
  const Val dy = b.reshape(e.dy(n), mask.shape);
  e.set_dx(n, 0, b.select(mask, dy, b.cst(0.0f, mask.shape)));
}

void Relu6::emit_onnx(OnnxEmission& e, const Node& n) {
  e.o.begin(n.name);
  e.set_out(n, e.o.op("Clip", {e.in(n, 0), e.o.scalar(0.0f), e.o.scalar(6.0f)}));
}

}  // namespace veridl::prims
