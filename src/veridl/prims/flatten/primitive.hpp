// flatten: [C, H, W] -> [C*H*W] (C order). A view: the plan gives the output the input's memory when the
// input has no other consumer, and then forward and backward do nothing; otherwise they copy.
// Its VJP is the inverse reshape (a reindexing, pdiv_reindex): no closed form to check.
#pragma once

#include <algorithm>

#include "veridl/graph/ir.hpp"

namespace veridl::prims {

using namespace graph;

struct Flatten {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "flatten";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    size_t width = 0;
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs&, nlohmann::json&) {}
  static VShape infer(Attrs& a, InShapes in, const Where& w) {
    if (in[0].rank() != 3) w.fail("flatten after the activation is already flat");
    a.width = in[0].size();
    return {{a.width}};
  }
  static void declare(const Attrs&, Decl& d) {
    d.view = true;
    d.bwd_reads_input = {false};
  }
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    if (c.out != c.in[0]) std::copy_n(c.in[0], c.n * a.width, c.out);
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    if (c.dx[0] && c.dx[0] != c.dy) std::copy_n(c.dy, c.n * a.width, c.dx[0]);
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  // A reindexing: its VJP (the inverse reshape) is exact by construction; the reindex rule of the calculus
  // core (pdiv_reindex, tests/test_pdiv.cpp) and the whole-network checks cover it.
  static std::vector<std::string> contracts() { return {}; }
  static void register_contracts(Registry&) {}
  static std::vector<Example> examples() { return {{"2x3x4", nlohmann::json::object(), {{{2, 3, 4}}}}}; }
};

}  // namespace veridl::prims
