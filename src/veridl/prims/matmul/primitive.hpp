// matmul (the matrix kit, book ch. 10): the product of two activations, named in the layer's "inputs":
// a [M, K] by b [K, P] -> [M, P], or batched over heads, a [G, M, K] by b [G, K, P] -> [G, M, P]; field
// "transposeB" (default false): b is [.., P, K] and the product is a b^T (attention's q k^T). No parameters.
// Reference: reference.hpp; fast kernels: kernel.hpp; contracts: contracts.cpp (matmul_back_A_correct,
// matmul_back_B_correct), all in this directory (prims/matmul/).
#pragma once

#include <type_traits>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/matmul/kernel.hpp"
#include "veridl/prims/matmul/reference.hpp"

namespace veridl::prims {

using namespace graph;

struct Matmul {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "matmul";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 2;
  struct Attrs {
    ops::MatmulShape shape;  // transpose_b parsed; the rest resolved by infer, N = 1
  };
  static Attrs parse(Fields& f) {
    Attrs a;
    a.shape.transpose_b = f.boolean("transposeB", false);
    return a;
  }
  static void to_json(const Attrs& a, nlohmann::json& j) { j["transposeB"] = a.shape.transpose_b; }
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs&, Decl& d) { d.bwd_reads_input = {true, true}; }
  static ops::MatmulShape at(const Attrs& a, size_t n) { return batch_of(a.shape, n); }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::matmul_forward(at(a, c.n), c.in[0], c.in[1], c.out);
    else ops::matmul_forward(at(a, c.n), c.in[0], c.in[1], c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if constexpr (std::is_same_v<B, Fast>) kernels::matmul_backward(at(a, c.n), c.in[0], c.in[1], c.dy, c.dx[0], c.dx[1]);
    else ops::matmul_backward(at(a, c.n), c.in[0], c.in[1], c.dy, c.dx[0], c.dx[1]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts() { return {"matmul_back_A_correct", "matmul_back_B_correct"}; }
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"[4, 3] by [3, 5]", nlohmann::json::object(), {{{4, 3}}, {{3, 5}}}},
            {"[2, 4, 3] by [2, 5, 3]^T", {{"transposeB", true}}, {{{2, 4, 3}}, {{2, 5, 3}}}},
            {"[3, 17, 16] by [3, 16, 17]", nlohmann::json::object(), {{{3, 17, 16}}, {{3, 16, 17}}}}};
  }
};

}  // namespace veridl::prims
