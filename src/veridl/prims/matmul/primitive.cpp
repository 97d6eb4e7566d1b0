#include "veridl/prims/matmul/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

VShape Matmul::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape &x = in[0], &y = in[1];
  if ((x.rank() != 2 && x.rank() != 3) || y.rank() != x.rank())
    w.fail(fmt::format("needs two matrices [M, K] and [K, P], or two batches of them [G, M, K] and [G, K, P], got {} and {}",
                       x.str(), y.str()));
  const size_t r = x.rank(), G = r == 3 ? x.d[0] : 1;
  if (r == 3 && y.d[0] != G) w.fail(fmt::format("the inputs {} and {} have different batch (first) dimensions", x.str(), y.str()));
  const size_t M = x.d[r - 2], K = x.d[r - 1];
  const size_t yk = a.shape.transpose_b ? y.d[r - 1] : y.d[r - 2], P = a.shape.transpose_b ? y.d[r - 2] : y.d[r - 1];
  if (yk != K)
    w.fail(fmt::format("cannot multiply {} by {}{}: {} columns against {} rows", x.str(), y.str(),
                       a.shape.transpose_b ? "^T (field 'transposeB')" : "", K, yk));
  a.shape = {1, G, M, K, P, a.shape.transpose_b};
  if (r == 3) return {{G, M, P}};
  return {{M, P}};
}

// As [B G, M, K] x [B G, K, P] (or [B G, P, K]) with one batching dimension.
void Matmul::emit_forward(Emission& e, const Node& n) {
  const ops::MatmulShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  const int64_t Q = e.B * i64(s.G), M = i64(s.M), K = i64(s.K), P = i64(s.P);
  b.comment(fmt::format("{} matmul {}", n.name, s.str()));
  const Val x = b.reshape(e.in(n, 0), {Q, M, K});
  const Val y = s.transpose_b ? b.reshape(e.in(n, 1), {Q, P, K}) : b.reshape(e.in(n, 1), {Q, K, P});
  const Val out = b.dot(x, y, {0}, {0}, {2}, {s.transpose_b ? 2 : 1});
  Shape shape{e.B};
  for (size_t d : e.g.values[n.output].shape.d) shape.push_back(i64(d));
  e.set_out(n, b.reshape(out, shape));
}

void Matmul::emit_backward(Emission& e, const Node& n) {
  const ops::MatmulShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  const int64_t Q = e.B * i64(s.G), M = i64(s.M), K = i64(s.K), P = i64(s.P);
  b.comment(fmt::format("{} matmul backward", n.name));
  const Val x = b.reshape(e.in(n, 0), {Q, M, K});
  const Val y = s.transpose_b ? b.reshape(e.in(n, 1), {Q, P, K}) : b.reshape(e.in(n, 1), {Q, K, P});
  const Val dy = b.reshape(e.dy(n), {Q, M, P});
  if (e.want_dx(n, 0)) {
    Tag t(b, "matmul_back_A_correct");  // da = dy b^T (transposeB: dy b)
    e.set_dx(n, 0, b.reshape(b.dot(dy, y, {0}, {0}, {2}, {s.transpose_b ? 1 : 2}), e.in(n, 0).shape));
  }
  if (e.want_dx(n, 1)) {
    Tag t(b, "matmul_back_B_correct");  // db = a^T dy [Q, K, P] (transposeB: dy^T a [Q, P, K])
    const Val db = s.transpose_b ? b.dot(dy, x, {0}, {0}, {1}, {1}) : b.dot(x, dy, {0}, {0}, {1}, {1});
    e.set_dx(n, 1, b.reshape(db, e.in(n, 1).shape));
  }
}

void Matmul::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::MatmulShape& s = n.attrs_as<Attrs>().shape;
  OnnxGraph& o = e.o;
  o.begin(n.name);
  const std::string a = e.in_as(n, 0, {s.G, s.M, s.K});
  const std::string b = s.transpose_b ? o.op("Transpose", {e.in_as(n, 1, {s.G, s.P, s.K})}, {OnnxAttr::list("perm", {0, 1, 3, 2})})
                                      : e.in_as(n, 1, {s.G, s.K, s.P});
  e.set_out_as(n, o.op("MatMul", {a, b}), {s.G, s.M, s.P});
}

}  // namespace veridl::prims
