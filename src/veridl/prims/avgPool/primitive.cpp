#include "veridl/prims/avgPool/primitive.hpp"

#include <fmt/core.h>

#include <stdexcept>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

AvgPool::Attrs AvgPool::parse(Fields& f) {
  Attrs a;
  a.size = f.size("size");
  a.stride = f.size("stride", a.size);
  a.same = f.choice("padding", {"valid", "same"}, "valid") == "same";
  return a;
}

void AvgPool::to_json(const Attrs& a, nlohmann::json& j) {
  j["size"] = a.size;
  j["stride"] = a.stride;
  j["padding"] = a.same ? "same" : "valid";
}

VShape AvgPool::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() != 3) w.fail(fmt::format("needs an image input (C x H x W), but the activation is already flat ({})", x.str()));
  const ops::Padding pad = a.same ? ops::Padding::Same : ops::Padding::Valid;
  const ops::Pads ph = ops::conv_pads(x.d[1], a.size, a.stride, pad, w.net.pad_style);
  const ops::Pads pw = ops::conv_pads(x.d[2], a.size, a.stride, pad, w.net.pad_style);
  a.shape = ops::AvgPoolShape{1, x.d[0], x.d[1], x.d[2], a.size, a.size, a.stride, ph.lo, pw.lo, ph.hi, pw.hi};
  if (a.shape.OH() == 0 || a.shape.OW() == 0)
    w.fail(fmt::format("window {}x{} is larger than the {} input", a.size, a.size, x.str()));
  try {
    a.shape.validate();
  } catch (const std::invalid_argument& e) {
    w.fail(e.what());
  }
  return {{x.d[0], a.shape.OH(), a.shape.OW()}};
}

namespace {
Windows windows_of(const ops::AvgPoolShape& p) {
  return {i64(p.H), i64(p.W), i64(p.KH), i64(p.KW), i64(p.stride), i64(p.OH()), i64(p.OW()), i64(p.pad_top),
          i64(p.pad_left)};
}
}  // namespace

// The window sum is a convolution of every (b, c) plane with a KH x KW kernel of ones (padding: zeros,
// which is what count_include_pad means), times 1/(KH KW); the backward is the transposed convolution
// (col2im) of dy/(KH KW) with the same kernel: every cell gathers the windows containing it.
void AvgPool::emit_forward(Emission& e, const Node& n) {
  const ops::AvgPoolShape p = at(n.attrs_as<Attrs>(), static_cast<size_t>(e.B));
  Builder& b = e.b;
  b.comment(fmt::format("{} avg-pool {} (divisor {}: padded cells count)", n.name, p.str(), p.window()));
  const Windows g = windows_of(p);
  const int64_t N = e.B * i64(p.C);
  const FittedInput in = fit_input(b, b.reshape(e.in(n, 0), {N, 1, g.H, g.W}), g);
  const Val sum = b.convolution(in.x, b.cst(1.0f, {1, 1, g.KH, g.KW}), {"b, f, 0, 1", "o, i, 0, 1", "b, f, 0, 1"},
                                {g.st, g.st}, in.pad, {1, 1}, {1, 1}, {N, 1, g.OH, g.OW});
  const Val y = b.mul(sum, 1.0f / static_cast<float>(p.window()));
  e.set_out(n, b.reshape(y, {e.B, i64(p.C), g.OH, g.OW}));
}

void AvgPool::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  const ops::AvgPoolShape p = at(n.attrs_as<Attrs>(), static_cast<size_t>(e.B));
  Builder& b = e.b;
  b.comment(fmt::format("{} avg-pool backward (dy / {} gathered over the windows containing each cell)", n.name,
                        p.window()));
  Tag t(b, "avgPool_has_vjp_correct");
  const Windows g = windows_of(p);
  const int64_t N = e.B * i64(p.C);
  const Val dy = b.mul(b.reshape(e.dy(n), {N, 1, g.OH, g.OW}), 1.0f / static_cast<float>(p.window()));
  const Val dx = window_input_grad(b, dy, b.cst(1.0f, {1, 1, g.KH, g.KW}), g, fmt::format("{} {}", n.name, p.str()));
  e.set_dx(n, 0, b.reshape(dx, e.in(n, 0).shape));
}

std::vector<Example> AvgPool::examples() {
  return {{"2x2/2 valid", {{"size", 2}}, {{{2, 6, 6}}}},
          {"2x2/2 valid odd (last row and column unread)", {{"size", 2}}, {{{1, 5, 7}}}},
          {"3x3/1 same (overlapping)", {{"size", 3}, {"stride", 1}, {"padding", "same"}}, {{{2, 5, 6}}}},
          {"3x3/2 same", {{"size", 3}, {"stride", 2}, {"padding", "same"}}, {{{3, 7, 6}}}},
          {"2x2/2 same odd", {{"size", 2}, {"stride", 2}, {"padding", "same"}}, {{{2, 5, 5}}}},
          {"2x2/3 valid (stride past the window)", {{"size", 2}, {"stride", 3}}, {{{1, 8, 7}}}}};
}

// AveragePool with count_include_pad = 1: VeriDL divides every window by its full size, padded cells included.
void AvgPool::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::AvgPoolShape& p = n.attrs_as<Attrs>().shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::string y = o.op("AveragePool", {e.in_as(n, 0, {p.C, p.H, p.W})},
                             {OnnxAttr::list("kernel_shape", {int64_t(p.KH), int64_t(p.KW)}),
                              OnnxAttr::list("strides", {int64_t(p.stride), int64_t(p.stride)}),
                              OnnxAttr::list("pads", e.pads(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right)),
                              OnnxAttr::integer("count_include_pad", 1)});
  e.set_out_as(n, y, {p.C, p.OH(), p.OW()});
}

}  // namespace veridl::prims
