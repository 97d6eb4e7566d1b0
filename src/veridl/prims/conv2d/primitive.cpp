#include "veridl/prims/conv2d/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;
namespace {
constexpr const char* kDx = "conv2d_has_vjp3_correct";
constexpr const char* kDw = "conv2d_weight_grad_has_vjp";
constexpr const char* kDb = "conv2d_bias_grad_has_vjp";
constexpr const char* kDwDx = "depthwise_has_vjp3_correct";
constexpr const char* kDwDw = "depthwise_weight_grad_has_vjp";
constexpr const char* kDwDb = "depthwise_bias_grad_has_vjp";
constexpr const char* kGDx = "groupedConv2d_has_vjp3_correct";
constexpr const char* kGDw = "groupedConv2d_weight_grad_has_vjp";
constexpr const char* kGDb = "groupedConv2d_bias_grad_has_vjp";

// The contracts a shape's backward implements: plain, depthwise or grouped.
struct Names {
  const char *dx, *dw, *db;
};
Names names(const ops::Conv2dShape& c) {
  if (c.G == 1) return {kDx, kDw, kDb};
  if (c.depthwise()) return {kDwDx, kDwDw, kDwDb};
  return {kGDx, kGDw, kGDb};
}

Shape in_shape(const Emission& e, const ops::Conv2dShape& c) { return {e.B, i64(c.C), i64(c.H), i64(c.W)}; }
Shape out_shape(const Emission& e, const ops::Conv2dShape& c) { return {e.B, i64(c.O), i64(c.OH()), i64(c.OW())}; }
}  // namespace

namespace {
// ic (once known: given, or inferred) and oc must be multiples of groups.
void check_groups(const Conv2d::Attrs& a, const Where& w) {
  if (a.ic % a.groups != 0 || a.oc % a.groups != 0)
    w.fail(fmt::format("field 'groups' is {}, but ic ({}) and oc ({}) must both be multiples of it", a.groups, a.ic, a.oc));
}
}  // namespace

Conv2d::Attrs Conv2d::parse(Fields& f) {
  Attrs a;
  a.ic = f.inferable("ic");
  a.oc = f.size("oc");
  a.k = f.size("k");
  a.stride = f.size("stride", 1);
  a.same = f.choice("padding", {"same", "valid"}, "same") == "same";
  a.bias = f.boolean("bias", true);
  a.groups = f.size("groups", 1);
  if (a.ic) check_groups(a, f.where());  // else once infer knows ic
  return a;
}

void Conv2d::to_json(const Attrs& a, nlohmann::json& j) {
  if (a.ic) j["ic"] = a.ic;  // 0: left out, inferred from the input
  j["oc"] = a.oc;
  j["k"] = a.k;
  j["stride"] = a.stride;
  j["padding"] = a.same ? "same" : "valid";
  if (!a.bias) j["bias"] = false;
  if (a.groups != 1) j["groups"] = a.groups;
}

VShape Conv2d::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (x.rank() != 3) w.fail("needs an image input, but the activation is already flat");
  if (a.ic == 0) {  // left out: the incoming channels
    a.ic = x.d[0];
    check_groups(a, w);
  }
  if (a.ic != x.d[0])
    w.fail(fmt::format("ic is {} but the incoming activation has {} channels ({} image)", a.ic, x.d[0], x.str()));
  size_t n = 0;
  const size_t cg = a.ic / a.groups;  // input channels per group: the kernel's second extent
  if (__builtin_mul_overflow(a.oc * cg, a.k * a.k, &n) || n > (size_t{1} << 31))
    w.fail(fmt::format("the {}x{}x{}x{} kernel is absurdly large", a.oc, cg, a.k, a.k));
  const ops::Padding pad = a.same ? ops::Padding::Same : ops::Padding::Valid;
  const ops::Pads ph = ops::conv_pads(x.d[1], a.k, a.stride, pad, w.net.pad_style);
  const ops::Pads pw = ops::conv_pads(x.d[2], a.k, a.stride, pad, w.net.pad_style);
  a.shape = ops::Conv2dShape{1, a.ic, x.d[1], x.d[2], a.oc, a.k, a.k, a.stride, ph.lo, pw.lo, ph.hi, pw.hi, a.bias,
                             a.groups};
  if (a.shape.OH() == 0 || a.shape.OW() == 0)
    w.fail(fmt::format("kernel {}x{} is larger than the padded {} input", a.k, a.k, x.str()));
  return {{a.oc, a.shape.OH(), a.shape.OW()}};
}

void Conv2d::declare(const Attrs& a, Decl& d) {
  const size_t cg = a.ic / a.groups;  // He's fan-in: the inputs one output reads, (ic / groups) k k
  d.params = {{"weight", {int64_t(a.oc), int64_t(cg), int64_t(a.k), int64_t(a.k)}, cg * a.k * a.k, Init::He, false}};
  if (a.bias) d.params.push_back({"bias", {int64_t(a.oc)}, 0, Init::Zero, true});
  d.bwd_reads_input = {true};
}

void Conv2d::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  const ops::Conv2dShape c = at(a, static_cast<size_t>(e.B));
  Builder& b = e.b;
  b.comment(fmt::format("{} conv2d {}", n.name, c.str()));
  const FittedInput in = fit_input(b, b.reshape(e.in(n, 0), in_shape(e, c)), windows(c));
  const Shape out = out_shape(e, c);
  const int64_t st = i64(c.stride);
  Val y = b.convolution(in.x, e.param(n, 0), {"b, f, 0, 1", "o, i, 0, 1", "b, f, 0, 1"}, {st, st}, in.pad, {1, 1},
                        {1, 1}, out, i64(c.G));
  if (a.bias) y = b.add(y, b.broadcast(e.param(n, 1), {1}, out));
  e.set_out(n, y);
}

void Conv2d::emit_backward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  const ops::Conv2dShape c = at(a, static_cast<size_t>(e.B));
  const Names k = names(c);
  Builder& b = e.b;
  b.comment(fmt::format("{} conv2d backward", n.name));
  const Shape in = in_shape(e, c), out = out_shape(e, c);
  const Val dy = b.reshape(e.dy(n), out);
  const Val x = b.reshape(e.in(n, 0), in);
  const int64_t st = i64(c.stride), G = i64(c.G);
  {
    // dW[o,c,kh,kw] = sum_{b,i,j} x[b,c, i s + kh - pt, j s + kw - pl] dy[b,o,i,j]: a convolution of x
    // (batch as the feature dimension) with dy (stride as the kernel dilation), contracting the batch;
    // the input cut to the rows the forward's windows read. Groups: batch_group_count = G splits x's
    // channels (the convolution's batch here) and dy's channels (its output features) into the G groups,
    // so that output channel o of group g meets only group g's input channels: dW [O, C/G, KH, KW].
    Tag t(b, k.dw);
    const FittedInput fx = fit_input(b, x, windows(c));
    e.set_grad(n, 0, b.convolution(fx.x, dy, {"f, b, 0, 1", "i, o, 0, 1", "f, b, 0, 1"}, {1, 1}, fx.pad, {1, 1},
                                   {st, st}, {i64(c.O), i64(c.CG()), i64(c.KH), i64(c.KW)}, 1, G));
  }
  if (a.bias) {
    Tag t(b, k.db);  // db[o] = sum_{b,i,j} dy[b,o,i,j]
    e.set_grad(n, 1, e.drop_bias() ? b.cst(0.0f, {i64(c.O)}) : channel_sum(b, dy));
  }
  if (e.want_dx(n, 0)) {
    // dx = the stride-dilated dy convolved with the spatially flipped, io-transposed kernel. Groups: the
    // kernel [O, C/G, KH, KW] = [G, O/G, C/G, ...] rearranged to [O/G, G, C/G, ...] = [O/G, C, KH, KW] (a
    // reshape when O/G = 1: depthwise), then one convolution with feature_group_count = G.
    Tag t(b, k.dx);
    Val w = e.param(n, 0);
    if (c.G > 1) {
      const int64_t OG = i64(c.OG()), CG = i64(c.CG()), KH = i64(c.KH), KW = i64(c.KW);
      if (OG > 1) w = b.transpose(b.reshape(w, {G, OG, CG, KH, KW}), {1, 0, 2, 3, 4});
      w = b.reshape(w, {OG, i64(c.C), KH, KW});
    }
    e.set_dx(n, 0, window_input_grad(b, dy, w, windows(c), fmt::format("{} {}", n.name, c.str()), G));
  }
}

std::vector<std::string> Conv2d::contracts() { return {kDx, kDw, kDb, kDwDx, kDwDw, kDwDb, kGDx, kGDw, kGDb}; }

std::vector<Example> Conv2d::examples() {
  using nlohmann::json;
  return {{"3x3 same", {{"ic", 2}, {"oc", 3}, {"k", 3}}, {{{2, 5, 6}}}},
          {"3x3 stride 2 same, no bias", {{"ic", 2}, {"oc", 2}, {"k", 3}, {"stride", 2}, {"bias", false}}, {{{2, 7, 6}}}},
          {"2x2 valid", {{"ic", 1}, {"oc", 2}, {"k", 2}, {"padding", "valid"}}, {{{1, 5, 5}}}},
          {"depthwise 3x3 same", {{"ic", 3}, {"oc", 3}, {"k", 3}, {"groups", 3}}, {{{3, 6, 5}}}},
          {"depthwise 3x3 stride 2 same, no bias",
           {{"ic", 4}, {"oc", 4}, {"k", 3}, {"stride", 2}, {"groups", 4}, {"bias", false}}, {{{4, 7, 8}}}},
          {"depthwise 5x5 stride 3 valid",
           {{"ic", 2}, {"oc", 2}, {"k", 5}, {"stride", 3}, {"groups", 2}, {"padding", "valid"}}, {{{2, 11, 9}}}},
          {"grouped 3x3 same, 2 groups", {{"ic", 4}, {"oc", 6}, {"k", 3}, {"groups", 2}}, {{{4, 5, 6}}}},
          {"grouped 1x1, 3 groups, no bias",
           {{"ic", 6}, {"oc", 3}, {"k", 1}, {"groups", 3}, {"bias", false}}, {{{6, 4, 5}}}},
          {"channel multiplier 2, 3x3 stride 2 valid",
           {{"ic", 2}, {"oc", 4}, {"k", 3}, {"stride", 2}, {"groups", 2}, {"padding", "valid"}}, {{{2, 7, 7}}}}};
}

// Conv with VeriDL's resolved pads (xlaSame puts an odd padding cell at the bottom / right, symmetric pads equally),
// groups, and the weight as stored [oc, ic / groups, k, k].
void Conv2d::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  const ops::Conv2dShape& c = a.shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  std::vector<std::string> in{e.in_as(n, 0, {c.C, c.H, c.W}), e.param(n, 0)};
  if (a.bias) in.push_back(e.param(n, 1));
  const std::string y = o.op("Conv", in,
                             {OnnxAttr::list("kernel_shape", {int64_t(c.KH), int64_t(c.KW)}),
                              OnnxAttr::list("strides", {int64_t(c.stride), int64_t(c.stride)}),
                              OnnxAttr::list("pads", e.pads(c.pad_top, c.pad_left, c.pad_bottom, c.pad_right)),
                              OnnxAttr::list("dilations", {1, 1}), OnnxAttr::integer("group", int64_t(c.G))});
  e.set_out_as(n, y, {c.O, c.OH(), c.OW()});
}

}  // namespace veridl::prims
