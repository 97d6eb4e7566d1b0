// The runtime view of the primitive table (prims/all.hpp): one OpDef per primitive, in list order (a
// node's `op` is its index), the executor's per-scalar dispatch tables, and builtin_contracts() (every
// contract of the system, registered from the table).
#pragma once

#include <array>
#include <string_view>

#include "veridl/prims/all.hpp"

namespace veridl::prims {

struct OpDef {
  std::string name;
  graph::LayerUse layer = graph::LayerUse::Layer;
  const char* activation = nullptr;  // default of the "activation" field (LayerUse::LayerWithActivation)
  bool is_activation = false;        // may be named in another layer's "activation" field
  size_t inputs = 1;
  std::shared_ptr<void> (*parse)(graph::Fields&) = nullptr;
  void (*to_json)(const void* attrs, nlohmann::json&) = nullptr;
  graph::VShape (*infer)(void* attrs, graph::InShapes, const graph::Where&) = nullptr;
  void (*declare)(const void* attrs, graph::Decl&) = nullptr;
  void (*emit_forward)(graph::Emission&, const graph::Node&) = nullptr;
  void (*emit_backward)(graph::Emission&, const graph::Node&) = nullptr;
  // The ONNX inference graph (export/onnx.hpp); nullptr: the primitive has no inference form (the loss).
  void (*emit_onnx)(graph::OnnxEmission&, const graph::Node&) = nullptr;
  std::vector<std::string> (*contracts)() = nullptr;
  void (*register_contracts)(Registry&) = nullptr;
  std::vector<graph::Example> (*examples)() = nullptr;
  const graph::LayerDoc& (*doc)() = nullptr;  // its NetSpec reference (prims/<name>/doc.cpp)
};

const std::vector<OpDef>& table();
const OpDef* find(std::string_view name);  // nullptr when there is no such primitive
size_t index_of(std::string_view name);    // throws std::logic_error when there is none

// ---- dispatch for the executor: fn[op](attrs, call) ------------------------------------------------
template <class T>
using RunFn = void (*)(const void*, graph::Call<T>&);

template <class P, class T, class B>
void run_forward(const void* a, graph::Call<T>& c) {
  P::template forward<T, B>(*static_cast<const typename P::Attrs*>(a), c);
}
template <class P, class T, class B>
void run_backward(const void* a, graph::Call<T>& c) {
  P::template backward<T, B>(*static_cast<const typename P::Attrs*>(a), c);
}

template <class T, class B, class... Ps>
const std::array<RunFn<T>, sizeof...(Ps)>& forward_table(List<Ps...>) {
  static constexpr std::array<RunFn<T>, sizeof...(Ps)> t = {&run_forward<Ps, T, B>...};
  return t;
}
template <class T, class B, class... Ps>
const std::array<RunFn<T>, sizeof...(Ps)>& backward_table(List<Ps...>) {
  static constexpr std::array<RunFn<T>, sizeof...(Ps)> t = {&run_backward<Ps, T, B>...};
  return t;
}
template <class T, class B>
RunFn<T> forward_fn(size_t op) {
  return forward_table<T, B>(All{})[op];
}
template <class T, class B>
RunFn<T> backward_fn(size_t op) {
  return backward_table<T, B>(All{})[op];
}

// The two dispatch tables every training and test program uses are instantiated once, in table.cpp: a
// translation unit that runs an executor does not re-instantiate every primitive's forward and backward.
extern template RunFn<float> forward_fn<float, graph::Fast>(size_t);
extern template RunFn<float> backward_fn<float, graph::Fast>(size_t);
extern template RunFn<double> forward_fn<double, graph::Ref>(size_t);
extern template RunFn<double> backward_fn<double, graph::Ref>(size_t);

}  // namespace veridl::prims

namespace veridl {

// Every contract of the system (vjp/registry.hpp), registered explicitly (no static-initialiser magic):
// each table entry's register_contracts in table order, then the fan-out (the plan's accumulate edges,
// prims/fanout/) and the whole-model composites (prims/models/).
const Registry& builtin_contracts();

}  // namespace veridl
