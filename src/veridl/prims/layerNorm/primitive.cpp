#include "veridl/prims/layerNorm/primitive.hpp"

#include <fmt/core.h>

#include <cmath>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

namespace {
constexpr const char* kContract = "layerNorm_has_vjp_correct";

// The value as [rows, C, inner] (inner > 1, axis "channels") or [rows, C] (axis "last"): the statistics
// reduce dimension 1; `stat` broadcasts a per-position value back, `per_channel` a per-channel one.
struct Layout {
  Shape sh, pos_dims;
};
Layout layout(const Emission& e, const ops::LayerNormShape& s) {
  const int64_t rows = e.B * i64(s.P);
  if (s.inner > 1) return {{rows, i64(s.C), i64(s.inner)}, {0, 2}};
  return {{rows, i64(s.C)}, {0}};
}
// Per-channel sum over the rows and positions: positions first, then rows (two short float32 sums).
Val param_sum(Builder& b, const Val& v) { return v.shape.size() == 3 ? b.sum(b.sum(v, {2}), {0}) : b.sum(v, {0}); }
}  // namespace

LayerNorm::Attrs LayerNorm::parse(Fields& f) {
  Attrs a;
  if (f.has("axis")) a.axis = f.choice("axis", {"channels", "last"}, std::nullopt) == "channels" ? Axis::Channels : Axis::Last;
  else f.allow("axis");
  a.eps = f.real("eps", ops::kLayerNormEps);
  if (!std::isfinite(a.eps) || !(a.eps > 0.0))
    f.where().fail(fmt::format("field 'eps' must be a finite number > 0, got {}", a.eps));
  return a;
}

void LayerNorm::to_json(const Attrs& a, nlohmann::json& j) {
  if (a.axis != Axis::Auto) j["axis"] = a.axis == Axis::Channels ? "channels" : "last";
  j["eps"] = a.eps;
}

VShape LayerNorm::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() == 0) w.fail("needs an input with at least one dimension");
  const bool channels = a.axis == Axis::Channels || (a.axis == Axis::Auto && x.rank() == 3);
  if (channels) {
    if (x.rank() != 3)
      w.fail(fmt::format("field 'axis' is \"channels\", which needs a C x H x W input, got {} (use \"last\")", x.str()));
    a.shape = {1, 1, x.d[0], x.d[1] * x.d[2]};
  } else {
    size_t P = 1;
    for (size_t k = 0; k + 1 < x.rank(); ++k) P *= x.d[k];
    a.shape = {1, P, x.d.back(), 1};
  }
  return x;
}

void LayerNorm::declare(const Attrs& a, Decl& d) {
  const ops::LayerNormShape& s = a.shape;
  const size_t C = s.C;
  d.params = {{"gamma", {int64_t(C)}, 0, Init::One, false}, {"beta", {int64_t(C)}, 0, Init::Zero, true}};
  d.saved = {{Elem::Scalar, s.P * s.inner, 0, true}, {Elem::Scalar, s.count(), 0, true}};
  d.bwd_reads_input = {false};
}

// The train and the eval forward are the same (no running state): statistics over dimension 1.
void LayerNorm::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  const ops::LayerNormShape& s = a.shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} LayerNorm over {} values ({}), biased variance, eps {}", n.name, s.C,
                        s.inner > 1 ? "channels" : "last axis", a.eps));
  const Layout L = layout(e, s);
  const Val x = b.reshape(e.in(n, 0), L.sh);
  auto stat = [&](const Val& v) { return b.broadcast(v, L.pos_dims, L.sh); };
  auto per_channel = [&](const Val& v) { return b.broadcast(v, {1}, L.sh); };
  const float inv_c = 1.0f / static_cast<float>(s.C);
  const Val mean = b.mul(b.sum(x, {1}), inv_c);
  const Val d = b.sub(x, stat(mean));
  const Val var = b.mul(b.sum(b.mul(d, d), {1}), inv_c);
  const Val r = b.rsqrt(b.add(var, static_cast<float>(a.eps)));
  const Val xhat = b.mul(d, stat(r));
  e.saved[e.index(n)] = {r, xhat};
  const Val y = b.add(b.mul(per_channel(e.param(n, 0)), xhat), per_channel(e.param(n, 1)));
  e.set_out(n, b.reshape(y, e.in(n, 0).shape));
}

void LayerNorm::emit_backward(Emission& e, const Node& n) {
  const ops::LayerNormShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} LayerNorm backward (reuses the forward's r and xhat)", n.name));
  Tag t(b, kContract);
  const Layout L = layout(e, s);
  const Val& r = e.saved[e.index(n)].at(0);
  const Val& xhat = e.saved[e.index(n)].at(1);
  const Val dy = b.reshape(e.dy(n), L.sh);
  auto stat = [&](const Val& v) { return b.broadcast(v, L.pos_dims, L.sh); };
  auto per_channel = [&](const Val& v) { return b.broadcast(v, {1}, L.sh); };
  e.set_grad(n, 0, param_sum(b, b.mul(dy, xhat)));                                              // dgamma
  e.set_grad(n, 1, e.drop_bias() ? b.cst(0.0f, {i64(s.C)}) : param_sum(b, dy));                 // dbeta
  if (e.want_dx(n, 0)) {
    // dx = (r/C)(C g - sum_c g - xhat sum_c(xhat g)),  g = gamma dy
    const float cnt = static_cast<float>(s.C);
    const Val g = b.mul(per_channel(e.param(n, 0)), dy);
    const Val sum_g = b.sum(g, {1});
    const Val sum_xg = b.sum(b.mul(xhat, g), {1});
    const Val k = b.mul(r, 1.0f / cnt);
    const Val inner = b.sub(b.sub(b.mul(g, cnt), stat(sum_g)), b.mul(xhat, stat(sum_xg)));
    e.set_dx(n, 0, b.mul(stat(k), inner));
  }
}

std::vector<Example> LayerNorm::examples() {
  return {{"channels C=3 4x5", nlohmann::json::object(), {{{3, 4, 5}}}},
          {"channels C=5 3x3 eps 1e-6", {{"axis", "channels"}, {"eps", 1e-6}}, {{{5, 3, 3}}}},
          {"last [7, 6] tokens", nlohmann::json::object(), {{{7, 6}}}},
          {"last flat 9", {{"axis", "last"}}, {{{9}}}},
          {"last over W of 2x3x5", {{"axis", "last"}, {"eps", 0.01}}, {{{2, 3, 5}}}},
          {"channels C=70 (tile tail) 9x9", {{"eps", 1e-6}}, {{{70, 9, 9}}}}};
}

// Decomposed on [N, P, C, inner] (both axes: "last" has inner = 1, "channels" normalises C at each of H W
// positions): mean, biased variance, (x - mean) / sqrt(var + eps), then gamma and beta per channel.
void LayerNorm::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  const ops::LayerNormShape& s = a.shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::vector<size_t> sh{s.P, s.C, s.inner};
  const std::string x = e.in_as(n, 0, sh);
  const std::vector<int64_t> axes{2};
  const std::string mean = o.op("ReduceMean", {x}, {OnnxAttr::list("axes", axes)});
  const std::string d = o.op("Sub", {x, mean});
  const std::string var = o.op("ReduceMean", {o.op("Mul", {d, d})}, {OnnxAttr::list("axes", axes)});
  const std::string xh = o.op("Div", {d, o.op("Sqrt", {o.op("Add", {var, o.scalar(static_cast<float>(a.eps))})})});
  auto chan = [&](const std::string& v) { return o.op("Reshape", {v, o.ints({int64_t(s.C), 1})}); };
  e.set_out_as(n, o.op("Add", {o.op("Mul", {xh, chan(e.param(n, 0))}), chan(e.param(n, 1))}), sh);
}

}  // namespace veridl::prims
