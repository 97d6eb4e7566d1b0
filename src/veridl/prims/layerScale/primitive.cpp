#include "veridl/prims/layerScale/primitive.hpp"

#include <fmt/core.h>

#include <cmath>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

namespace {
// The value as [rows, C, inner] (a C x H x W input) or [rows, C] (channels last).
Shape layout(const Emission& e, const ops::LayerScaleShape& s) {
  const int64_t rows = e.B * i64(s.P);
  if (s.inner > 1) return {rows, i64(s.C), i64(s.inner)};
  return {rows, i64(s.C)};
}
}  // namespace

LayerScale::Attrs LayerScale::parse(Fields& f) {
  Attrs a;
  a.init = f.real("init", ops::kLayerScaleInit);
  if (!std::isfinite(a.init)) f.where().fail(fmt::format("field 'init' must be a finite number, got {}", a.init));
  return a;
}

VShape LayerScale::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() == 3) a.shape = {1, 1, x.d[0], x.d[1] * x.d[2]};  // C x H x W: channels first
  else if (x.rank() == 2) a.shape = {1, x.d[0], x.d[1], 1};      // [T, D]: channels last
  else if (x.rank() == 1) a.shape = {1, 1, x.d[0], 1};           // [D]
  else w.fail(fmt::format("needs a C x H x W, [T, D] or flat input, got {}", x.str()));
  return x;
}

void LayerScale::declare(const Attrs& a, Decl& d) {
  d.params = {{"gamma", {int64_t(a.shape.C)}, 0, Init::Const, false, static_cast<float>(a.init)}};
  d.bwd_reads_input = {true};  // dgamma = sum dy x
}

void LayerScale::emit_forward(Emission& e, const Node& n) {
  const ops::LayerScaleShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} LayerScale (gamma per channel, {} channels {})", n.name, s.C,
                        s.inner > 1 ? "first" : "last"));
  const Shape sh = layout(e, s);
  const Val x = b.reshape(e.in(n, 0), sh);
  e.set_out(n, b.reshape(b.mul(x, b.broadcast(e.param(n, 0), {1}, sh)), e.in(n, 0).shape));
}

void LayerScale::emit_backward(Emission& e, const Node& n) {
  const ops::LayerScaleShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} LayerScale backward", n.name));
  Tag t(b, "layerScale_has_vjp_correct");
  const Shape sh = layout(e, s);
  const Val dy = b.reshape(e.dy(n), sh);
  const Val x = b.reshape(e.in(n, 0), sh);
  const Val xdy = b.mul(x, dy);
  e.set_grad(n, 0, sh.size() == 3 ? b.sum(b.sum(xdy, {2}), {0}) : b.sum(xdy, {0}));  // dgamma = sum dy x
  if (e.want_dx(n, 0)) e.set_dx(n, 0, b.mul(dy, b.broadcast(e.param(n, 0), {1}, sh)));  // dx = gamma dy
}

std::vector<Example> LayerScale::examples() {
  return {{"channels first 3x4x5", nlohmann::json::object(), {{{3, 4, 5}}}},
          {"tokens [7, 6], init 0.1", {{"init", 0.1}}, {{{7, 6}}}},
          {"flat 9", nlohmann::json::object(), {{{9}}}},
          {"channels first 300x3x3 (two channel blocks)", {{"init", -0.5}}, {{{300, 3, 3}}}}};
}

void LayerScale::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::LayerScaleShape& s = n.attrs_as<Attrs>().shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::vector<size_t> sh{s.P, s.C, s.inner};
  const std::string g = o.op("Reshape", {e.param(n, 0), o.ints({int64_t(s.C), 1})});
  e.set_out_as(n, o.op("Mul", {e.in_as(n, 0, sh), g}), sh);
}

}  // namespace veridl::prims
