#include "veridl/prims/dropout/primitive.hpp"

#include <fmt/core.h>

#include <cmath>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

template <bool P>
typename DropHead<P>::Attrs DropHead<P>::parse(Fields& f) {
  Attrs a;
  a.rate = f.real("rate", 0.1);
  if (!(a.rate >= 0.0 && a.rate < 1.0))
    f.where().fail(fmt::format("field 'rate' must be in [0, 1) (the probability of dropping), got {}", a.rate));
  return a;
}

// Train: y = x * keep * (1/q), keep the host's decisions (input "<node>.keep", 0/1, one per element or per
// example), saved for the backward. Eval: the identity.
template <bool P>
void DropHead<P>::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  const Val x = e.in(n, 0);
  if (e.eval) {
    e.set_out(n, x);
    return;
  }
  b.comment(fmt::format("{} {} (rate {}: keep ? x / {} : 0, the decisions an input)", n.name, P ? "dropPath" : "dropout",
                        a.rate, 1.0 - a.rate));
  const Val& keep = e.keep.at(e.index(n));
  const Val k = P ? b.broadcast(b.reshape(keep, {e.B}), {0}, x.shape) : b.reshape(keep, x.shape);
  const Val scaled = b.mul(k, static_cast<float>(1.0 / (1.0 - a.rate)));  // 0 or 1/q, as the kernels' scale
  e.saved[e.index(n)] = {scaled};
  e.set_out(n, b.mul(x, scaled));
}

template <bool P>
void DropHead<P>::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  Builder& b = e.b;
  b.comment(fmt::format("{} {} backward", n.name, P ? "dropPath" : "dropout"));
  Tag t(b, P ? "dropPath_has_vjp_correct" : "dropout_has_vjp_correct");  // dx = keep ? dy / q : 0
  const Val& scaled = e.saved[e.index(n)].at(0);
  e.set_dx(n, 0, b.mul(b.reshape(e.dy(n), scaled.shape), scaled));
}

// Inference: the identity (dropout and dropPath act in training only).
template <bool P>
void DropHead<P>::emit_onnx(OnnxEmission& e, const Node& n) {
  e.set_out(n, e.in(n, 0));
}

template struct DropHead<false>;
template struct DropHead<true>;

std::vector<Example> Dropout::examples() {
  return {{"flat 7, rate 0.1", nlohmann::json::object(), {{{7}}}},
          {"2x3x3, rate 0.5", {{"rate", 0.5}}, {{{2, 3, 3}}}},
          {"tokens [5, 4], rate 0.3", {{"rate", 0.3}}, {{{5, 4}}}},
          {"flat 70000, rate 0.2 (threaded)", {{"rate", 0.2}}, {{{70000}}}}};
}

}  // namespace veridl::prims
