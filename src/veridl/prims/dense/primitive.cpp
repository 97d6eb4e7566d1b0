#include "veridl/prims/dense/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;
namespace {
constexpr const char* kDx = "dense_has_vjp";
constexpr const char* kDw = "dense_weight_grad_correct";
constexpr const char* kDb = "dense_bias_grad_correct";
}  // namespace

Dense::Attrs Dense::parse(Fields& f) { return {f.inferable("fanIn"), f.size("fanOut")}; }

void Dense::to_json(const Attrs& a, nlohmann::json& j) {
  if (a.fan_in) j["fanIn"] = a.fan_in;  // 0: left out, inferred from the input
  j["fanOut"] = a.fan_out;
}

VShape Dense::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if (a.fan_in == 0) {  // left out: the incoming features (a token's width on tokens)
    a.fan_in = x.rank() == 2 ? x.d[1] : x.rank() == 3 && x.d[1] == 1 && x.d[2] == 1 ? x.d[0] : x.rank() == 1 ? x.d[0] : 0;
    if (a.fan_in == 0)
      w.fail(fmt::format("needs a flat input: add a flatten layer before it (the activation is a {} image)", x.str()));
  }
  if (a.fan_in > (size_t{1} << 26) || a.fan_out > (size_t{1} << 26) || a.fan_in * a.fan_out > (size_t{1} << 31))
    w.fail(fmt::format("{}x{} weight is absurdly large", a.fan_in, a.fan_out));
  if (x.rank() == 2) {  // tokens [T, fanIn]: the same product on every row
    if (a.fan_in != x.d[1])
      w.fail(fmt::format("fanIn is {} but the incoming tokens are {} (width {})", a.fan_in, x.str(), x.d[1]));
    a.rows = x.d[0];
    return {{x.d[0], a.fan_out}};
  }
  const bool flat = x.rank() == 1 || (x.rank() == 3 && x.d[1] == 1 && x.d[2] == 1 && x.d[0] == a.fan_in);
  if (!flat) w.fail(fmt::format("needs a flat input: add a flatten layer before it (the activation is a {} image)", x.str()));
  if (a.fan_in != x.size())
    w.fail(fmt::format("fanIn is {} but the incoming activation has {} features", a.fan_in, x.size()));
  a.rows = 1;
  return {{a.fan_out}};
}

void Dense::declare(const Attrs& a, Decl& d) {
  d.params = {{"weight", {int64_t(a.fan_in), int64_t(a.fan_out)}, a.fan_in, Init::He, false},
              {"bias", {int64_t(a.fan_out)}, 0, Init::Zero, true}};
  d.bwd_reads_input = {true};
}

void Dense::emit_forward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  const int64_t I = i64(a.fan_in), O = i64(a.fan_out), R = e.B * i64(a.rows);
  b.comment(fmt::format("{} dense {} -> {}{}: y = x W + b", n.name, I, O, a.rows > 1 ? fmt::format(" on {} tokens", a.rows) : ""));
  const Val x = b.reshape(e.in(n, 0), {R, I});
  const Val y = b.dot(x, e.param(n, 0), {1}, {0});
  const Val out = b.add(y, b.broadcast(e.param(n, 1), {1}, {R, O}));
  Shape shape{e.B};  // [B, fanOut], or [B, T, fanOut] on tokens (T = 1 included)
  for (size_t d : e.g.values[n.output].shape.d) shape.push_back(i64(d));
  e.set_out(n, b.reshape(out, shape));
}

void Dense::emit_backward(Emission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  Builder& b = e.b;
  const int64_t I = i64(a.fan_in), O = i64(a.fan_out), R = e.B * i64(a.rows);
  b.comment(fmt::format("{} dense backward", n.name));
  const Val dy = b.reshape(e.dy(n), {R, O});
  const Val x = b.reshape(e.in(n, 0), {R, I});
  {
    Tag t(b, kDw);  // dW[i,o] = sum_b x[b,i] dy[b,o]
    e.set_grad(n, 0, b.dot(x, dy, {0}, {0}));
  }
  {
    Tag t(b, kDb);  // db[o] = sum_b dy[b,o]
    e.set_grad(n, 1, e.drop_bias() ? b.cst(0.0f, {O}) : b.sum(dy, {0}));
  }
  if (e.want_dx(n, 0)) {
    Tag t(b, kDx);  // dx[b,i] = sum_o W[i,o] dy[b,o]
    e.set_dx(n, 0, b.reshape(b.dot(dy, e.param(n, 0), {1}, {1}), e.in(n, 0).shape));
  }
}

std::vector<std::string> Dense::contracts() { return {kDx, kDw, kDb}; }

std::vector<Example> Dense::examples() {
  return {{"5 -> 3", {{"fanIn", 5}, {"fanOut", 3}}, {{{5}}}},
          {"17 -> 9", {{"fanIn", 17}, {"fanOut", 9}}, {{{17}}}},
          {"tokens [4, 6] -> [4, 5]", {{"fanIn", 6}, {"fanOut", 5}}, {{{4, 6}}}}};
}

// y = x W + b on [N, fanIn] (or [N, T, fanIn] tokens): MatMul with the weight as stored ([fanIn, fanOut]), then Add.
void Dense::emit_onnx(OnnxEmission& e, const Node& n) {
  const Attrs& a = n.attrs_as<Attrs>();
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::vector<size_t> xs = a.rows > 1 ? std::vector<size_t>{a.rows, a.fan_in} : std::vector<size_t>{a.fan_in};
  std::string w = e.param(n, 0);
  if (e.fault == OnnxFault::DenseWeightTransposed)  // the weight read as if stored [fanOut, fanIn] (a deliberate fault)
    w = o.op("Transpose", {o.op("Reshape", {w, o.ints({int64_t(a.fan_out), int64_t(a.fan_in)})})});
  const std::string y = o.op("Add", {o.op("MatMul", {e.in_as(n, 0, xs), w}), e.param(n, 1)});
  e.set_out_as(n, y, a.rows > 1 ? std::vector<size_t>{a.rows, a.fan_out} : std::vector<size_t>{a.fan_out});
}

}  // namespace veridl::prims
