// patchTokens (book ch. 10): a patchified image [D, h, w] (the patchEmbed block's p x p / stride p conv) becomes
// tokens [1 + h w, D]: the positions row-major, transposed, a learned CLS token prepended, a learned position
// embedding added. Parameters "cls" [D] and "pos" [1 + h w, D], both starting at zero and never weight-decayed
// (learned embeddings, as timm's no_weight_decay). No fields.
// Reference: reference.hpp; fast kernels: kernel.hpp; contract: contracts.cpp (patchTokens_has_vjp_correct).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/patchTokens/kernel.hpp"
#include "veridl/prims/patchTokens/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct PatchTokens {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "patchTokens";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    ops::PatchTokensShape shape;  // resolved by infer, N = 1
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);
  static ops::PatchTokensShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::patch_tokens_forward(at(a, c.n), c.in[0], c.p[0], c.p[1], c.out);
    else ops::patch_tokens_forward(at(a, c.n), c.in[0], c.p[0], c.p[1], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::patch_tokens_backward(at(a, c.n), c.dy, c.dx[0], c.g[0], c.g[1]);
    else ops::patch_tokens_backward(at(a, c.n), c.dy, c.dx[0], c.g[0], c.g[1]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"patchTokens_has_vjp_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"D=3 2x2", nlohmann::json::object(), {{{3, 2, 2}}}},
            {"D=20 3x5 (tile tails)", nlohmann::json::object(), {{{20, 3, 5}}}},
            {"D=1 1x1", nlohmann::json::object(), {{{1, 1, 1}}}}};
  }
};

}  // namespace veridl::prims
