#include "veridl/prims/relu/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

// Strict > (ReLU'(0) = 0); the mask is saved for the backward.
void Relu::emit_forward(Emission& e, const Node& n) {
  Builder& b = e.b;
  b.comment(fmt::format("{} ReLU (mask: x > 0)", n.name));
  const Val x = e.in(n, 0);
  const Val zero = b.cst(0.0f, x.shape);
  const Val mask = b.compare("GT", x, zero);
  e.saved[e.index(n)] = {mask};
  e.set_out(n, b.select(mask, x, zero));
}

void Relu::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  Builder& b = e.b;
  b.comment(fmt::format("{} ReLU backward", n.name));
  Tag t(b, "relu_has_vjp_correct");  // dx = mask ? dy : 0
  const Val& mask = e.saved[e.index(n)].at(0);
  const Val dy = b.reshape(e.dy(n), mask.shape);
  e.set_dx(n, 0, b.select(mask, dy, b.cst(0.0f, mask.shape)));
}

void Relu::emit_onnx(OnnxEmission& e, const Node& n) {
  e.o.begin(n.name);
  e.set_out(n, e.o.op("Relu", {e.in(n, 0)}));
}

}  // namespace veridl::prims
