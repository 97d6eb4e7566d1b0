// transpose, splitHeads, mergeHeads (the matrix kit's reindex; book ch. 2 reindex, ch. 10 head split and merge):
// one head, SwapHead<Kind>, over one reference and kernel (an axis swap, reference.hpp / kernel.hpp); each kind
// its own table entry:
//   transpose   tokens [A, B] -> [B, A]                                       (no fields)
//   splitHeads  [T, D] -> [H, T, D/H], field "heads" (dividing D)             (multi-head attention's split)
//   mergeHeads  [H, T, d] -> [T, H d]                                         (no fields; the inverse)
// Their contracts transpose_has_vjp, splitHeads_has_vjp and mergeHeads_has_vjp share one record and mutants
// (register_swap_contract, transpose/contracts.cpp) over each kind's sweep.
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/transpose/kernel.hpp"
#include "veridl/prims/transpose/reference.hpp"

namespace veridl::prims {

using namespace graph;

enum class SwapKind { Transpose, SplitHeads, MergeHeads };

template <SwapKind kKind>
struct SwapHead {
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t heads = 0;      // splitHeads: the field
    ops::SwapShape shape;  // resolved by infer, N = 1
  };
  static Attrs parse(Fields& f);
  static void to_json(const Attrs& a, nlohmann::json& j);
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {false}; }
  static ops::SwapShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::swap_axes(at(a, c.n), c.in[0], c.out);
    else ops::swap_axes(at(a, c.n), c.in[0], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (!c.dx[0]) return;
    if constexpr (std::is_same_v<B, Fast>) kernels::swap_axes(at(a, c.n).swapped(), c.dy, c.dx[0]);
    else ops::swap_axes(at(a, c.n).swapped(), c.dy, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static const char* contract() {
    return kKind == SwapKind::Transpose ? "transpose_has_vjp"
           : kKind == SwapKind::SplitHeads ? "splitHeads_has_vjp"
                                           : "mergeHeads_has_vjp";
  }
  static std::vector<std::string> contracts() { return {contract()}; }
};

// Registers `name` for the axis swap over `shapes` (contracts.cpp), with the swap's mutants.
void register_swap_contract(Registry& r, const std::string& name, const std::string& statement,
                            const std::vector<ops::SwapShape>& shapes, const std::vector<ops::SwapShape>& production);
// splitHeads' (split) or mergeHeads' contract: the swap over tokens of heads, ViT-Tiny's as production shape.
void register_heads_contract(Registry& r, const std::string& name, bool split);

struct Transpose : SwapHead<SwapKind::Transpose> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "transpose";
  static void register_contracts(Registry& r);  // contracts.cpp: transpose_has_vjp
  static std::vector<Example> examples() {
    return {{"[3, 5]", nlohmann::json::object(), {{{3, 5}}}}, {"[20, 17] (tile tails)", nlohmann::json::object(), {{{20, 17}}}}};
  }
};

extern template struct SwapHead<SwapKind::Transpose>;
extern template struct SwapHead<SwapKind::SplitHeads>;
extern template struct SwapHead<SwapKind::MergeHeads>;

}  // namespace veridl::prims
