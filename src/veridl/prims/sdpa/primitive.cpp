#include "veridl/prims/sdpa/primitive.hpp"

#include <fmt/core.h>

#include <cmath>
#include <limits>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

namespace {
// [B, T, D] -> [B, H, T, d] and back.
Val heads_split(Builder& b, const Val& x, int64_t B, const ops::SdpaShape& s) {
  return b.transpose(b.reshape(x, {B, i64(s.T), i64(s.heads), i64(s.d())}), {0, 2, 1, 3});
}
Val heads_merge(Builder& b, const Val& x, int64_t B, const ops::SdpaShape& s) {
  return b.reshape(b.transpose(x, {0, 2, 1, 3}), {B, i64(s.T), i64(s.D)});
}
}  // namespace

Sdpa::Attrs Sdpa::parse(Fields& f) {
  Attrs a;
  a.shape.heads = f.size("heads");
  a.shape.causal = f.boolean("causal", false);
  return a;
}

void Sdpa::to_json(const Attrs& a, nlohmann::json& j) {
  j["heads"] = a.shape.heads;
  j["causal"] = a.shape.causal;
}

VShape Sdpa::infer(Attrs& a, InShapes in, const Where& w) {
  const char* names[] = {"q", "k", "v"};
  for (size_t i = 0; i < 3; ++i)
    if (in[i].rank() != 2)
      w.fail(fmt::format("input {} ({}) must be tokens [T, D], got {}", i, names[i], in[i].str()));
  if (!(in[1] == in[0]) || !(in[2] == in[0]))
    w.fail(fmt::format("q, k and v must have one shape, got {}, {} and {}", in[0].str(), in[1].str(), in[2].str()));
  const size_t T = in[0].d[0], D = in[0].d[1];
  if (D % a.shape.heads)
    w.fail(fmt::format("field 'heads' is {}, which does not divide the width {} of the {} tokens", a.shape.heads, D,
                       in[0].str()));
  if (T > 16384) w.fail(fmt::format("{} tokens is more than attention supports (16384)", T));
  a.shape.T = T;
  a.shape.D = D;
  return in[0];
}

void Sdpa::declare(const Attrs& a, Decl& d) {
  const size_t rows = a.shape.heads * a.shape.T;
  d.saved = {{Elem::Scalar, rows, 0, true}, {Elem::Scalar, rows, 0, true}};
  d.bwd_reads_input = {true, true, true};
}

// The exported step materialises P ([B, H, T, T]) and saves it for the backward: XLA and IREE fuse and tile
// the attention themselves; the one-score-matrix-per-thread bound is the native kernel's (kernel.hpp).
void Sdpa::emit_forward(Emission& e, const Node& n) {
  const ops::SdpaShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} attention, {} heads of {}{}: softmax(q k^T / sqrt(d)) v", n.name, s.heads, s.d(),
                        s.causal ? ", causal" : ""));
  const int64_t B = e.B, H = i64(s.heads), T = i64(s.T);
  const Shape st{B, H, T, T};
  const Val q = heads_split(b, e.in(n, 0), B, s), k = heads_split(b, e.in(n, 1), B, s), v = heads_split(b, e.in(n, 2), B, s);
  Val S = b.mul(b.dot(q, k, {0, 1}, {0, 1}, {3}, {3}), 1.0f / std::sqrt(static_cast<float>(s.d())));
  if (s.causal)  // key j > query i: -inf (exp gives 0)
    S = b.select(b.compare("GT", b.iota(3, st, hlo::DType::I32), b.iota(2, st, hlo::DType::I32)),
                 b.cst(-std::numeric_limits<float>::infinity(), st), S);
  const Val m = b.reduce_max(S, {3});
  const Val ex = b.exp(b.sub(S, b.broadcast(m, {0, 1, 2}, st)));
  const Val P = b.div(ex, b.broadcast(b.sum(ex, {3}), {0, 1, 2}, st));
  e.saved[e.index(n)] = {P, q, k, v};
  e.set_out(n, heads_merge(b, b.dot(P, v, {0, 1}, {0, 1}, {3}, {2}), B, s));
}

void Sdpa::emit_backward(Emission& e, const Node& n) {
  const ops::SdpaShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} attention backward (reuses the forward's P)", n.name));
  const int64_t B = e.B, H = i64(s.heads), T = i64(s.T);
  const Shape st{B, H, T, T};
  const std::vector<Val>& sv = e.saved[e.index(n)];
  const Val &P = sv.at(0), &q = sv.at(1), &k = sv.at(2), &v = sv.at(3);
  const Val dO = heads_split(b, e.dy(n), B, s);
  if (e.want_dx(n, 2)) {
    Tag t(b, "sdpa_back_V_correct");  // dv = P^T dO
    e.set_dx(n, 2, heads_merge(b, b.dot(P, dO, {0, 1}, {0, 1}, {2}, {2}), B, s));
  }
  if (!e.want_dx(n, 0) && !e.want_dx(n, 1)) return;
  // dS = P (dP - rowsum(P dP)) / sqrt(d), dP = dO v^T
  const Val dP = b.dot(dO, v, {0, 1}, {0, 1}, {3}, {3});
  const Val rs = b.sum(b.mul(P, dP), {3});
  const Val dS = b.mul(b.mul(P, b.sub(dP, b.broadcast(rs, {0, 1, 2}, st))), 1.0f / std::sqrt(static_cast<float>(s.d())));
  if (e.want_dx(n, 0)) {
    Tag t(b, "sdpa_back_Q_correct");  // dq = dS k
    e.set_dx(n, 0, heads_merge(b, b.dot(dS, k, {0, 1}, {0, 1}, {3}, {2}), B, s));
  }
  if (e.want_dx(n, 1)) {
    Tag t(b, "sdpa_back_K_correct");  // dk = dS^T q
    e.set_dx(n, 1, heads_merge(b, b.dot(dS, q, {0, 1}, {0, 1}, {2}, {2}), B, s));
  }
}

std::vector<Example> Sdpa::examples() {
  return {{"T=5 D=6 3 heads", {{"heads", 3}}, {{{5, 6}}, {{5, 6}}, {{5, 6}}}},
          {"T=4 D=4 2 heads causal", {{"heads", 2}, {"causal", true}}, {{{4, 4}}, {{4, 4}}, {{4, 4}}}},
          {"T=17 D=64 4 heads (ViT-Small28)", {{"heads", 4}}, {{{17, 64}}, {{17, 64}}, {{17, 64}}}},
          {"T=1 D=3 1 head", {{"heads", 1}}, {{{1, 3}}, {{1, 3}}, {{1, 3}}}}};
}

// softmax(q k^T / sqrt(d)) v per head: heads split as [N, H, T, d], keys after the query masked with -inf when causal.
void Sdpa::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::SdpaShape& s = n.attrs_as<Attrs>().shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const int64_t T = int64_t(s.T), H = int64_t(s.heads), d = int64_t(s.d());
  auto split = [&](size_t i) {
    return o.op("Transpose", {o.op("Reshape", {e.in(n, i), o.ints({-1, T, H, d})})}, {OnnxAttr::list("perm", {0, 2, 1, 3})});
  };
  const std::string q = split(0), k = split(1), v = split(2);
  const std::string kt = o.op("Transpose", {k}, {OnnxAttr::list("perm", {0, 1, 3, 2})});
  std::string S = o.op("Mul", {o.op("MatMul", {q, kt}), o.scalar(1.0f / std::sqrt(static_cast<float>(s.d())))});
  if (s.causal) {
    std::vector<int64_t> mask(s.T * s.T);
    for (size_t i = 0; i < s.T; ++i)
      for (size_t j = 0; j < s.T; ++j) mask[i * s.T + j] = j > i;
    S = o.op("Where", {o.bools({T, T}, mask), o.scalar(-std::numeric_limits<float>::infinity()), S});
  }
  const std::string P = o.op("Softmax", {S}, {OnnxAttr::integer("axis", -1)});
  const std::string y = o.op("Transpose", {o.op("MatMul", {P, v})}, {OnnxAttr::list("perm", {0, 2, 1, 3})});
  e.set_out_as(n, y, {s.T, s.heads, s.d()});
}

}  // namespace veridl::prims
