// The ONNX exporter: see onnx.hpp for the model it writes and docs/onnx.md for its use.
#include "veridl/export/onnx.hpp"

#include <fmt/core.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <stdexcept>

#include "veridl/prims/table.hpp"
#include "veridl/util/error.hpp"
#include "veridl/util/file.hpp"

namespace veridl::onnx_export {

namespace {

using graph::OnnxAttr;
using graph::OnnxTensor;

void to_proto(const OnnxTensor& t, ::onnx::TensorProto& p) {
  p.set_name(t.name);
  for (int64_t d : t.dims) p.add_dims(d);
  switch (t.type) {
    case OnnxTensor::Type::F32:
      p.set_data_type(::onnx::TensorProto::FLOAT);
      p.set_raw_data(std::string(reinterpret_cast<const char*>(t.f.data()), t.f.size() * sizeof(float)));  // little-endian
      break;
    case OnnxTensor::Type::I64:
      p.set_data_type(::onnx::TensorProto::INT64);
      for (int64_t v : t.i) p.add_int64_data(v);
      break;
    case OnnxTensor::Type::Bool:
      p.set_data_type(::onnx::TensorProto::BOOL);
      for (int64_t v : t.i) p.add_int32_data(v != 0);
      break;
  }
}

void to_proto(const graph::OnnxNode& n, ::onnx::NodeProto& p) {
  p.set_op_type(n.op_type);
  p.set_name(n.name);
  for (const auto& s : n.inputs) p.add_input(s);
  for (const auto& s : n.outputs) p.add_output(s);
  for (const OnnxAttr& a : n.attrs) {
    ::onnx::AttributeProto* q = p.add_attribute();
    q->set_name(a.name);
    switch (a.kind) {
      case OnnxAttr::Kind::Int:
        q->set_type(::onnx::AttributeProto::INT);
        q->set_i(a.i);
        break;
      case OnnxAttr::Kind::Float:
        q->set_type(::onnx::AttributeProto::FLOAT);
        q->set_f(a.f);
        break;
      case OnnxAttr::Kind::Ints:
        q->set_type(::onnx::AttributeProto::INTS);
        for (int64_t v : a.ints) q->add_ints(v);
        break;
      case OnnxAttr::Kind::String:
        q->set_type(::onnx::AttributeProto::STRING);
        q->set_s(a.s);
        break;
    }
  }
}

void value_info(::onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  ::onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(::onnx::TensorProto::FLOAT);
  ::onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("N");  // the batch: any size
  for (int64_t d : dims) s->add_dim()->set_dim_value(d);
}

}  // namespace

std::string onnx_model(const net::Plan& plan, const std::vector<float>& params,
                       const std::vector<std::vector<float>>& running, const OnnxOptions& opt) {
  const auto& table = prims::table();
  const size_t loss = plan.loss_node < 0 ? plan.nodes.size() : static_cast<size_t>(plan.loss_node);
  // Refuse before any work: a primitive with no inference form.
  for (size_t k = 0; k < plan.nodes.size(); ++k)
    if (k != loss && !table[plan.nodes[k].op].emit_onnx)
      throw Error(fmt::format("ONNX export: {} ({}): primitive '{}' has no ONNX form", plan.nodes[k].where,
                              plan.nodes[k].name, table[plan.nodes[k].op].name));
  if (params.size() != plan.n_params)
    throw Error(fmt::format("ONNX export: {} parameters given, {} expects {}", params.size(), plan.spec.name, plan.n_params));

  graph::OnnxEmission e(plan);
  e.fault = opt.fault;
  e.acts.resize(plan.values.size());
  e.state.resize(plan.nodes.size());
  for (const auto& t : plan.params) {
    OnnxTensor it;
    it.name = t.name;
    it.dims = t.shape;
    it.f.assign(params.begin() + static_cast<std::ptrdiff_t>(t.offset), params.begin() + static_cast<std::ptrdiff_t>(t.offset + t.size));
    e.o.add_initializer(std::move(it));
    e.params.push_back(t.name);
  }
  size_t r = 0;
  for (size_t k = 0; k < plan.nodes.size(); ++k)
    for (const graph::StateDecl& st : plan.nodes[k].decl.state) {
      if (r >= running.size() || running[r].size() != st.size)
        throw Error(fmt::format("ONNX export: running statistic {}.{} missing or of the wrong size (expected {})",
                                plan.nodes[k].name, st.name, st.size));
      OnnxTensor it;
      it.name = plan.nodes[k].name + "." + st.name;
      it.dims = {static_cast<int64_t>(st.size)};
      it.f = running[r++];
      e.state[k].push_back(it.name);
      e.o.add_initializer(std::move(it));
    }
  if (r != running.size())
    throw Error(fmt::format("ONNX export: {} running statistics given, {} has {}", running.size(), plan.spec.name, r));

  const auto& in = plan.values[plan.input].shape.d;
  const std::vector<int64_t> x_dims{static_cast<int64_t>(plan.spec.channels), static_cast<int64_t>(plan.spec.imageH),
                                    static_cast<int64_t>(plan.spec.imageW)};
  e.o.begin("input");
  std::vector<size_t> xs;
  for (int64_t d : x_dims) xs.push_back(static_cast<size_t>(d));
  e.acts[plan.input] = xs == in ? std::string("x") : e.o.reshape("x", in);
  for (size_t k = 0; k < plan.nodes.size(); ++k)
    if (k != loss) table[plan.nodes[k].op].emit_onnx(e, plan.nodes[k]);
  e.o.begin("output");
  const int64_t K = static_cast<int64_t>(plan.num_classes);
  const std::string logits = e.o.reshape(e.acts.at(plan.logits), std::vector<int64_t>{K});

  ::onnx::ModelProto m;
  m.set_ir_version(kIrVersion);
  m.set_producer_name("VeriDL");
  m.set_producer_version("0.1.0");
  m.set_model_version(1);
  if (!opt.doc.empty()) m.set_doc_string(opt.doc);
  ::onnx::OperatorSetIdProto* ops = m.add_opset_import();
  ops->set_domain("");
  ops->set_version(kOpset);
  ::onnx::GraphProto* g = m.mutable_graph();
  g->set_name(plan.spec.name);
  g->set_doc_string("VeriDL evaluation forward: BatchNorm on running statistics, dropout as the identity");
  value_info(g->add_input(), "x", x_dims);
  for (const OnnxTensor& t : e.o.initializers()) to_proto(t, *g->add_initializer());
  for (const graph::OnnxNode& n : e.o.nodes()) to_proto(n, *g->add_node());
  // The result under its own name.
  graph::OnnxNode id{"Identity", "output/logits", {logits}, {"logits"}, {}};
  to_proto(id, *g->add_node());
  value_info(g->add_output(), "logits", {K});
  try {
    ::onnx::checker::check_model(m);
  } catch (const std::exception& ex) {
    throw std::logic_error(std::string("ONNX export: the model fails ONNX's checker: ") + ex.what());
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::logic_error("ONNX export: the model could not be serialized");
  return bytes;
}

void write_onnx(const net::Plan& plan, const std::vector<float>& params, const std::vector<std::vector<float>>& running,
                const std::string& path, const OnnxOptions& opt) {
  write_text_atomic(path, onnx_model(plan, params, running, opt), "ONNX model");
}

}  // namespace veridl::onnx_export
