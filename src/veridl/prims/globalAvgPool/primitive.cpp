#include "veridl/prims/globalAvgPool/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape GlobalAvgPool::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() != 3)
    w.fail(fmt::format("needs an image input (C x H x W) to average over H and W, but the activation is already flat ({})",
                       x.str()));
  a.C = x.d[0];
  a.H = x.d[1];
  a.W = x.d[2];
  return {{a.C}};
}

// The sum over H x W (one reduction), times 1/(H W); the backward broadcasts dy/(H W) over the plane.
void GlobalAvgPool::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  b.comment(fmt::format("{} global average pool ({} channels of {}x{})", n.name, a.C, a.H, a.W));
  const Val x = b.reshape(e.in(n, 0), {e.B, i64(a.C), i64(a.H * a.W)});
  e.set_out(n, b.mul(b.sum(x, {2}), 1.0f / static_cast<float>(a.H * a.W)));
}

void GlobalAvgPool::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  b.comment(fmt::format("{} global average pool backward", n.name));
  Tag t(b, "globalAvgPoolFlat_has_vjp_correct");  // dx[b,c,h,w] = dy[b,c] / (H W)
  const Val dy = b.mul(b.reshape(e.dy(n), {e.B, i64(a.C)}), 1.0f / static_cast<float>(a.H * a.W));
  const Val dx = b.broadcast(dy, {0, 1}, {e.B, i64(a.C), i64(a.H * a.W)});
  e.set_dx(n, 0, b.reshape(dx, e.in(n, 0).shape));
}

void GlobalAvgPool::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  e.o.begin(n.name);
  e.set_out_as(n, e.o.op("GlobalAveragePool", {e.in_as(n, 0, {a.C, a.H, a.W})}), {a.C, 1, 1});
}

}  // namespace veridl::prims
