#include "veridl/prims/maxPool/primitive.hpp"

#include <fmt/core.h>

#include <limits>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;
using hlo::DType;

MaxPool::Attrs MaxPool::parse(Fields& f) {
  Attrs a;
  a.size = f.size("size");
  a.stride = f.size("stride", a.size);
  return a;
}

void MaxPool::to_json(const Attrs& a, nlohmann::json& j) {
  j["size"] = a.size;
  j["stride"] = a.stride;
}

VShape MaxPool::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() != 3) w.fail("needs an image input, but the activation is already flat");
  const ops::Padding pad = a.size > a.stride ? ops::Padding::Same : ops::Padding::Valid;
  const ops::Pads ph = ops::conv_pads(x.d[1], a.size, a.stride, pad, w.net.pad_style);
  const ops::Pads pw = ops::conv_pads(x.d[2], a.size, a.stride, pad, w.net.pad_style);
  a.shape = ops::MaxPoolShape{1, x.d[0], x.d[1], x.d[2], a.size, a.size, a.stride, ph.lo, pw.lo, ph.hi, pw.hi};
  if (a.shape.OH() == 0 || a.shape.OW() == 0)
    w.fail(fmt::format("window {}x{} is larger than the {} input", a.size, a.size, x.str()));
  return {{x.d[0], a.shape.OH(), a.shape.OW()}};
}

namespace {
// As patches: the "identity" convolution with kernel E[k, 0, kh, kw] = (k == kh KW + kw) copies window
// cell k of every output position into channel k -- exactly: every other product is a zero -- so the
// forward is one convolution and two reductions (the max, then the lowest k holding it: the native
// strict-> scan), and the backward is the transposed convolution (col2im) that routes dy to the chosen
// cells and sums overlapping windows. Padded cells never win: they are set to -inf.
Val eye_kernel(Builder& b, int64_t KH, int64_t KW) {
  std::vector<float> e(static_cast<size_t>(KH * KW * KH * KW), 0.0f);
  for (int64_t k = 0; k < KH * KW; ++k) e[static_cast<size_t>(k * KH * KW + k)] = 1.0f;
  return b.literal(e, {KH * KW, 1, KH, KW});
}
}  // namespace

void MaxPool::emit_forward(Emission& e, const Node& n) {
  const ops::MaxPoolShape p = at(n.attrs_as<Attrs>(), static_cast<size_t>(e.B));
  Builder& b = e.b;
  b.comment(fmt::format("{} max-pool {} (arg-max: first maximum in window scan order)", n.name, p.str()));
  const Windows g = windows(p);
  const int64_t N = e.B * i64(p.C), KK = g.KH * g.KW;
  const FittedInput in = fit_input(b, b.reshape(e.in(n, 0), {N, 1, g.H, g.W}), g);
  const Shape ps{N, KK, g.OH, g.OW};
  Val patches = b.convolution(in.x, eye_kernel(b, g.KH, g.KW), {"b, f, 0, 1", "o, i, 0, 1", "b, f, 0, 1"},
                              {g.st, g.st}, in.pad, {1, 1}, {1, 1}, ps);
  if (p.pad_top || p.pad_left || p.pad_bottom || p.pad_right) {
    // Cell k of output (i, j) is input (i s + kh - pt, j s + kw - pl): in range, or padding (-inf).
    const Shape ks{KK, g.OH, g.OW};
    const Val k = b.iota(0, ks, DType::I32);
    const Val kh = b.div(k, b.cst_i32(static_cast<int32_t>(g.KW), ks));
    const Val kw = b.sub(k, b.mul(kh, b.cst_i32(static_cast<int32_t>(g.KW), ks)));
    auto coord = [&](int64_t dim, const Val& off, int64_t pad) {
      return b.add(b.mul(b.iota(dim, ks, DType::I32), b.cst_i32(static_cast<int32_t>(g.st), ks)),
                   b.sub(off, b.cst_i32(static_cast<int32_t>(pad), ks)));
    };
    auto in_range = [&](const Val& v, int64_t lim) {
      return b.and_(b.compare("GE", v, b.cst_i32(0, ks)), b.compare("LT", v, b.cst_i32(static_cast<int32_t>(lim), ks)));
    };
    const Val valid = b.and_(in_range(coord(1, kh, g.pt), g.H), in_range(coord(2, kw, g.pl), g.W));
    patches = b.select(b.broadcast(valid, {1, 2, 3}, ps), patches, b.cst(-std::numeric_limits<float>::infinity(), ps));
  }
  const Val y = b.reduce_max(patches, {1});
  const Val at_max = b.compare("EQ", patches, b.broadcast(y, {0, 2, 3}, ps));
  const Val kidx = b.iota(1, ps, DType::I32);
  Val idx;
  if (e.fault == ExportFault::MaxPoolTiesToLast) {  // the last maximum (a deliberate fault, tests only)
    idx = b.reduce(b.select(at_max, kidx, b.cst_i32(-1, ps)), {1}, "maximum", b.cst_i32(-1, {}));
  } else {  // the first maximum: the lowest k holding the max
    idx = b.reduce(b.select(at_max, kidx, b.cst_i32(static_cast<int32_t>(KK), ps)), {1}, "minimum",
                   b.cst_i32(static_cast<int32_t>(KK), {}));
  }
  e.saved[e.index(n)] = {idx};
  e.set_out(n, b.reshape(y, {e.B, i64(p.C), g.OH, g.OW}));
}

void MaxPool::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  const ops::MaxPoolShape p = at(n.attrs_as<Attrs>(), static_cast<size_t>(e.B));
  Builder& b = e.b;
  b.comment(fmt::format("{} max-pool backward (dy routed to the saved arg-max; overlaps accumulate)", n.name));
  Tag t(b, "maxPool2_has_vjp3_correct");
  const Windows g = windows(p);
  const int64_t KK = g.KH * g.KW;
  const Val& idx = e.saved[e.index(n)].at(0);  // [N, OH, OW]
  const Shape ps{idx.shape[0], KK, g.OH, g.OW};
  const Val dy = b.reshape(e.dy(n), idx.shape);
  const Val chosen = b.compare("EQ", b.iota(1, ps, DType::I32), b.broadcast(idx, {0, 2, 3}, ps));
  const Val routed = b.select(chosen, b.broadcast(dy, {0, 2, 3}, ps), b.cst(0.0f, ps));
  const Val dx = window_input_grad(b, routed, eye_kernel(b, g.KH, g.KW), g, fmt::format("{} {}", n.name, p.str()));
  e.set_dx(n, 0, b.reshape(dx, {e.B, i64(p.C), g.H, g.W}));
}

std::vector<Example> MaxPool::examples() {
  return {{"2x2/2", {{"size", 2}, {"stride", 2}}, {{{2, 6, 6}}}},
          {"3x3/2 same", {{"size", 3}, {"stride", 2}}, {{{2, 7, 7}}}},
          {"2x2/2 odd", {{"size", 2}}, {{{1, 5, 5}}}}};
}

// MaxPool: ONNX's padding cells never win (as VeriDL's -inf padding); pads as resolved (the "same" convention).
void MaxPool::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::MaxPoolShape& p = n.attrs_as<Attrs>().shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::string y = o.op("MaxPool", {e.in_as(n, 0, {p.C, p.H, p.W})},
                             {OnnxAttr::list("kernel_shape", {int64_t(p.KH), int64_t(p.KW)}),
                              OnnxAttr::list("strides", {int64_t(p.stride), int64_t(p.stride)}),
                              OnnxAttr::list("pads", e.pads(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right))});
  e.set_out_as(n, y, {p.C, p.OH(), p.OW()});
}

}  // namespace veridl::prims
