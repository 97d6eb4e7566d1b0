#include "veridl/graph/onnx.hpp"

#include <fmt/core.h>

#include <stdexcept>

#include "veridl/graph/ir.hpp"

namespace veridl::graph {

std::string OnnxGraph::fresh(const std::string& what) { return fmt::format("{}/{}_{}", prefix_, what, counter_++); }

std::string OnnxGraph::op(const std::string& type, std::vector<std::string> inputs, std::vector<OnnxAttr> attrs) {
  OnnxNode n;
  n.op_type = type;
  n.name = fresh(type);
  n.inputs = std::move(inputs);
  n.outputs = {n.name + ":0"};
  n.attrs = std::move(attrs);
  nodes_.push_back(std::move(n));
  return nodes_.back().outputs[0];
}

std::string OnnxGraph::constant(std::vector<int64_t> dims, std::vector<float> data) {
  OnnxTensor t;
  t.name = fresh("const");
  t.dims = std::move(dims);
  t.f = std::move(data);
  inits_.push_back(std::move(t));
  return inits_.back().name;
}

std::string OnnxGraph::ints(const std::vector<int64_t>& v) {
  OnnxTensor t;
  t.name = fresh("ints");
  t.dims = {static_cast<int64_t>(v.size())};
  t.type = OnnxTensor::Type::I64;
  t.i = v;
  inits_.push_back(std::move(t));
  return inits_.back().name;
}

std::string OnnxGraph::bools(std::vector<int64_t> dims, std::vector<int64_t> data) {
  OnnxTensor t;
  t.name = fresh("mask");
  t.dims = std::move(dims);
  t.type = OnnxTensor::Type::Bool;
  t.i = std::move(data);
  inits_.push_back(std::move(t));
  return inits_.back().name;
}

std::string OnnxGraph::reshape(const std::string& x, const std::vector<int64_t>& per_example) {
  std::vector<int64_t> shape{-1};
  shape.insert(shape.end(), per_example.begin(), per_example.end());
  return op("Reshape", {x, ints(shape)});
}

std::string OnnxGraph::reshape(const std::string& x, const std::vector<size_t>& per_example) {
  std::vector<int64_t> s;
  for (size_t d : per_example) s.push_back(static_cast<int64_t>(d));
  return reshape(x, s);
}

const std::string& OnnxEmission::in(const Node& n, size_t i) const {
  const std::string& t = acts.at(n.inputs.at(i));
  if (t.empty()) throw std::logic_error("ONNX export: input " + std::to_string(i) + " of " + n.name + " was not emitted");
  return t;
}

void OnnxEmission::set_out(const Node& n, std::string t) { acts.at(n.output) = std::move(t); }

const std::string& OnnxEmission::param(const Node& n, size_t k) const { return params.at(n.params.at(k)); }

const std::vector<size_t>& OnnxEmission::in_shape(const Node& n, size_t i) const { return g.values.at(n.inputs.at(i)).shape.d; }

const std::vector<size_t>& OnnxEmission::out_shape(const Node& n) const { return g.values.at(n.output).shape.d; }

size_t OnnxEmission::index(const Node& n) const { return static_cast<size_t>(&n - g.nodes.data()); }

std::string OnnxEmission::in_as(const Node& n, size_t i, const std::vector<size_t>& shape) {
  return in_shape(n, i) == shape ? in(n, i) : o.reshape(in(n, i), shape);
}

void OnnxEmission::set_out_as(const Node& n, const std::string& t, const std::vector<size_t>& shape) {
  set_out(n, out_shape(n) == shape ? t : o.reshape(t, out_shape(n)));
}

std::vector<int64_t> OnnxEmission::pads(size_t top, size_t left, size_t bottom, size_t right) const {
  std::vector<int64_t> p{int64_t(top), int64_t(left), int64_t(bottom), int64_t(right)};
  if (fault == OnnxFault::SwappedPads) p = {p[2], p[3], p[0], p[1]};
  return p;
}

}  // namespace veridl::graph
