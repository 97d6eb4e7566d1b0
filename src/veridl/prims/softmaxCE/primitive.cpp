#include "veridl/prims/softmaxCE/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;
using hlo::DType;

SoftmaxCE::Attrs SoftmaxCE::parse(Fields& f) {
  Attrs a;
  a.smoothing = f.real("labelSmoothing", 0.0);
  if (!(a.smoothing >= 0 && a.smoothing < 1))
    f.where().fail(fmt::format("labelSmoothing must be in [0, 1), got {}", a.smoothing));
  return a;
}

VShape SoftmaxCE::infer(Attrs& a, InShapes in, const Where& w) {
  if (in[0].rank() != 1) w.fail(fmt::format("the loss needs flat logits, got {}", in[0].str()));
  a.classes = in[0].d[0];
  return {{1}};
}

// The smoothed target t = (1 - eps) onehot + eps / K with the float values of ops::SmoothedTarget; the
// saved values are p and t; the loss is -sum(t log p) / B.
void SoftmaxCE::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  const int64_t K = i64(a.classes);
  b.comment(fmt::format("loss: softmax cross-entropy, label smoothing {}, mean over the batch", a.smoothing));
  const Val z = b.reshape(e.in(n, 0), {e.B, K});
  const Shape bk{e.B, K};
  const Val m = b.reduce_max(z, {1});
  const Val zs = b.sub(z, b.broadcast(m, {0}, bk));
  const Val ex = b.exp(zs);
  const Val S = b.sum(ex, {1});
  const Val inv = b.div(b.cst(1.0f, {e.B}), S);
  const Val p = b.mul(ex, b.broadcast(inv, {0}, bk));
  const Val logp = b.sub(zs, b.broadcast(b.log(S), {0}, bk));
  const float off = static_cast<float>(a.smoothing) / static_cast<float>(K);
  const float on = 1.0f - static_cast<float>(a.smoothing) + off;
  const Val onehot = b.compare("EQ", b.iota(1, bk, DType::I32), b.broadcast(e.labels, {0}, bk));
  const Val t = b.select(onehot, b.cst(on, bk), b.cst(off, bk));
  const Val total = b.sum(b.sum(b.mul(t, logp), {1}), {0});
  e.saved[e.index(n)] = {p, t};
  e.set_out(n, b.div(b.neg(total), b.cst(static_cast<float>(e.B), {})));
}

// Seeded with dL = 1 (the exported train step differentiates the loss itself).
void SoftmaxCE::emit_backward(Emission& e, const Node& n) {
  Builder& b = e.b;
  b.comment("loss backward, seeded with dL = 1");
  Tag tag(b, "softmaxCE_grad");  // dz = dL (p - t) / B
  const Val& p = e.saved[e.index(n)].at(0);
  const Val& t = e.saved[e.index(n)].at(1);
  e.set_dx(n, 0, b.mul(b.sub(p, t), 1.0f / static_cast<float>(e.B)));
}

}  // namespace veridl::prims
