#include "veridl/prims/table.hpp"

#include <stdexcept>
#include <string>

#include "veridl/vjp/registry.hpp"

namespace veridl {
// The contracts outside the table: prims/fanout/contracts.cpp, prims/models/contracts.cpp.
void register_fanout_contracts(Registry& r);
void register_model_contracts(Registry& r);
void register_attention_contracts(Registry& r);  // prims/models/attention.cpp
}  // namespace veridl

namespace veridl::prims {

namespace {

template <class P>
OpDef make_def() {
  using A = typename P::Attrs;
  OpDef d;
  d.name = P::kName;
  d.layer = P::kLayer;
  if constexpr (P::kLayer == graph::LayerUse::LayerWithActivation) d.activation = P::kActivation;
  if constexpr (requires { P::kIsActivation; }) d.is_activation = P::kIsActivation;
  d.inputs = P::kInputs;
  d.parse = [](graph::Fields& f) -> std::shared_ptr<void> { return std::make_shared<A>(P::parse(f)); };
  d.to_json = [](const void* a, nlohmann::json& j) { P::to_json(*static_cast<const A*>(a), j); };
  d.infer = [](void* a, graph::InShapes in, const graph::Where& w) { return P::infer(*static_cast<A*>(a), in, w); };
  d.declare = [](const void* a, graph::Decl& decl) { P::declare(*static_cast<const A*>(a), decl); };
  d.emit_forward = &P::emit_forward;
  d.emit_backward = &P::emit_backward;
  if constexpr (requires { &P::emit_onnx; }) d.emit_onnx = &P::emit_onnx;
  d.contracts = &P::contracts;
  d.register_contracts = &P::register_contracts;
  d.examples = &P::examples;
  d.doc = &P::doc;
  return d;
}

template <class... Ps>
std::vector<OpDef> make_table(List<Ps...>) {
  return {make_def<Ps>()...};
}

}  // namespace

const std::vector<OpDef>& table() {
  static const std::vector<OpDef> t = [] {
    std::vector<OpDef> v = make_table(All{});
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (v[i].name == v[j].name) throw std::logic_error("primitive table: '" + v[i].name + "' is listed twice");
    return v;
  }();
  return t;
}

const OpDef* find(std::string_view name) {
  for (const auto& d : table())
    if (d.name == name) return &d;
  return nullptr;
}

size_t index_of(std::string_view name) {
  const OpDef* d = find(name);
  if (!d) throw std::logic_error("primitive table: no primitive '" + std::string(name) + "'");
  return static_cast<size_t>(d - table().data());
}

template RunFn<float> forward_fn<float, graph::Fast>(size_t);
template RunFn<float> backward_fn<float, graph::Fast>(size_t);
template RunFn<double> forward_fn<double, graph::Ref>(size_t);
template RunFn<double> backward_fn<double, graph::Ref>(size_t);

}  // namespace veridl::prims

namespace veridl {

const Registry& builtin_contracts() {
  static const Registry reg = [] {
    Registry r;
    for (const auto& d : prims::table()) d.register_contracts(r);
    register_fanout_contracts(r);
    register_model_contracts(r);
    register_attention_contracts(r);
    return r;
  }();
  return reg;
}

}  // namespace veridl
