#include "veridl/prims/transpose/primitive.hpp"

#include <fmt/core.h>

#include "veridl/prims/hlo_util.hpp"

namespace veridl::prims {

using namespace hlo_util;

template <SwapKind K>
typename SwapHead<K>::Attrs SwapHead<K>::parse(Fields& f) {
  Attrs a;
  if constexpr (K == SwapKind::SplitHeads) a.heads = f.size("heads");
  return a;
}

template <SwapKind K>
void SwapHead<K>::to_json(const Attrs& a, nlohmann::json& j) {
  if constexpr (K == SwapKind::SplitHeads) j["heads"] = a.heads;
}

template <SwapKind K>
VShape SwapHead<K>::infer(Attrs& a, InShapes in, const Where& w) {
  const VShape& x = in[0];
  if constexpr (K == SwapKind::MergeHeads) {
    if (x.rank() != 3) w.fail(fmt::format("needs heads [H, T, d] (a splitHeads' output), got {}", x.str()));
    a.shape = {1, x.d[0], x.d[1], x.d[2]};
    return {{x.d[1], x.d[0] * x.d[2]}};
  } else {
    if (x.rank() != 2) w.fail(fmt::format("needs tokens [T, D], got {}", x.str()));
    if constexpr (K == SwapKind::Transpose) {
      a.shape = {1, x.d[0], x.d[1], 1};
      return {{x.d[1], x.d[0]}};
    } else {
      if (x.d[1] % a.heads)
        w.fail(fmt::format("field 'heads' is {}, which does not divide the width {} of the {} tokens", a.heads, x.d[1], x.str()));
      const size_t d = x.d[1] / a.heads;
      a.shape = {1, x.d[0], a.heads, d};
      return {{a.heads, x.d[0], d}};
    }
  }
}

// [B, A, Bx, C] -> transpose {0, 2, 1, 3} -> the output's shape; the backward the inverse.
template <SwapKind K>
void SwapHead<K>::emit_forward(Emission& e, const Node& n) {
  const ops::SwapShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  b.comment(fmt::format("{} swap axes [{}, {}, {}] -> [{}, {}, {}]", n.name, s.A, s.B, s.C, s.B, s.A, s.C));
  const Val x = b.reshape(e.in(n, 0), {e.B, i64(s.A), i64(s.B), i64(s.C)});
  Shape out{e.B};
  for (size_t d : e.g.values[n.output].shape.d) out.push_back(i64(d));
  e.set_out(n, b.reshape(b.transpose(x, {0, 2, 1, 3}), out));
}

template <SwapKind K>
void SwapHead<K>::emit_backward(Emission& e, const Node& n) {
  if (!e.want_dx(n, 0)) return;
  const ops::SwapShape& s = n.attrs_as<Attrs>().shape;
  Builder& b = e.b;
  Tag t(b, contract());
  const Val dy = b.reshape(e.dy(n), {e.B, i64(s.B), i64(s.A), i64(s.C)});
  e.set_dx(n, 0, b.reshape(b.transpose(dy, {0, 2, 1, 3}), e.in(n, 0).shape));
}

// transpose, splitHeads, mergeHeads: [A, B, C] -> [B, A, C].
template <SwapKind K>
void SwapHead<K>::emit_onnx(OnnxEmission& e, const Node& n) {
  const ops::SwapShape& s = n.attrs_as<Attrs>().shape;
  e.o.begin(n.name);
  e.set_out_as(n, e.o.op("Transpose", {e.in_as(n, 0, {s.A, s.B, s.C})}, {OnnxAttr::list("perm", {0, 2, 1, 3})}), {s.B, s.A, s.C});
}

template struct SwapHead<SwapKind::Transpose>;
template struct SwapHead<SwapKind::SplitHeads>;
template struct SwapHead<SwapKind::MergeHeads>;

}  // namespace veridl::prims
