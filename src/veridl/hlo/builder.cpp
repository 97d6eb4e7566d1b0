#include "veridl/hlo/builder.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace veridl::hlo {

namespace {

std::string list(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::string shape_str(const Shape& s) {
  std::string r;
  for (int64_t d : s) r += fmt::format("{}x", d);
  return r;
}

[[noreturn]] void fail(const std::string& what) { throw std::logic_error("stablehlo builder: " + what); }

void same_shape(std::string_view op, const Val& a, const Val& b) {
  if (a.shape != b.shape || a.dt != b.dt)
    fail(fmt::format("{}: operands {} and {} differ", op, type_str(a), type_str(b)));
}

}  // namespace

const char* dtype_str(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::I32: return "i32";
    case DType::I1: return "i1";
  }
  return "?";
}

std::string type_str(const Shape& shape, DType dt) { return fmt::format("tensor<{}{}>", shape_str(shape), dtype_str(dt)); }
std::string type_str(const Val& v) { return type_str(v.shape, v.dt); }

std::string f32_literal(float v) {
  if (std::isinf(v) || std::isnan(v)) return fmt::format("0x{:08X}", std::bit_cast<uint32_t>(v));
  std::string s = fmt::format("{}", v);  // the shortest text that reads back as the same float
  if (s.find('.') == std::string::npos) {  // MLIR's float literals need the point: 1 -> 1.0, 1e-08 -> 1.0e-08
    const size_t e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

int64_t elements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

void Builder::comment(std::string_view text) { body_ += fmt::format("    // {}\n", text); }
void Builder::blank() { body_ += "\n"; }

Val Builder::emit(const std::string& rhs, const Shape& shape, DType dt) {
  Val v{fmt::format("%{}", next_++), shape, dt};
  body_ += fmt::format("    {} = {}", v.id, rhs);
  if (!tag.empty()) body_ += fmt::format("  // {}", tag);
  body_ += "\n";
  return v;
}

Val Builder::cst(float v, const Shape& shape) {
  return emit(fmt::format("stablehlo.constant dense<{}> : {}", f32_literal(v), type_str(shape, DType::F32)), shape,
              DType::F32);
}
Val Builder::cst_i32(int32_t v, const Shape& shape) {
  return emit(fmt::format("stablehlo.constant dense<{}> : {}", v, type_str(shape, DType::I32)), shape, DType::I32);
}

Val Builder::literal(const std::vector<float>& values, const Shape& shape) {
  if (static_cast<int64_t>(values.size()) != elements(shape)) fail("literal: size differs from " + type_str(shape, DType::F32));
  // Nested brackets, row-major.
  std::string text;
  size_t next = 0;
  auto rec = [&](auto&& self, size_t dim) -> void {
    if (dim == shape.size()) {
      text += f32_literal(values[next++]);
      return;
    }
    text += '[';
    for (int64_t k = 0; k < shape[dim]; ++k) {
      if (k) text += ", ";
      self(self, dim + 1);
    }
    text += ']';
  };
  rec(rec, 0);
  return emit(fmt::format("stablehlo.constant dense<{}> : {}", text, type_str(shape, DType::F32)), shape, DType::F32);
}

Val Builder::binary(std::string_view op, const Val& a, const Val& b) {
  same_shape(op, a, b);
  return emit(fmt::format("stablehlo.{} {}, {} : {}", op, a.id, b.id, type_str(a)), a.shape, a.dt);
}
Val Builder::unary(std::string_view op, const Val& a) {
  return emit(fmt::format("stablehlo.{} {} : {}", op, a.id, type_str(a)), a.shape, a.dt);
}

Val Builder::erf(const Val& a) {
  return emit(fmt::format("chlo.erf {} : {} -> {}", a.id, type_str(a), type_str(a)), a.shape, a.dt);
}

Val Builder::compare(std::string_view dir, const Val& a, const Val& b) {
  same_shape("compare", a, b);
  const char* kind = a.dt == DType::F32 ? "FLOAT" : "SIGNED";
  return emit(fmt::format("stablehlo.compare {}, {}, {}, {} : ({}, {}) -> {}", dir, a.id, b.id, kind, type_str(a),
                          type_str(b), type_str(a.shape, DType::I1)),
              a.shape, DType::I1);
}

Val Builder::select(const Val& pred, const Val& t, const Val& f) {
  same_shape("select", t, f);
  if (pred.dt != DType::I1 || pred.shape != t.shape) fail("select: predicate " + type_str(pred) + " for " + type_str(t));
  return emit(fmt::format("stablehlo.select {}, {}, {} : {}, {}", pred.id, t.id, f.id, type_str(pred), type_str(t)),
              t.shape, t.dt);
}

Val Builder::convert(const Val& a, DType to) {
  return emit(fmt::format("stablehlo.convert {} : ({}) -> {}", a.id, type_str(a), type_str(a.shape, to)), a.shape, to);
}

Val Builder::iota(int64_t dim, const Shape& shape, DType dt) {
  return emit(fmt::format("stablehlo.iota dim = {} : {}", dim, type_str(shape, dt)), shape, dt);
}

Val Builder::broadcast(const Val& a, const Shape& dims, const Shape& shape) {
  if (dims.size() != a.shape.size()) fail("broadcast_in_dim: dims " + list(dims) + " for " + type_str(a));
  for (size_t k = 0; k < dims.size(); ++k)
    if (dims[k] < 0 || static_cast<size_t>(dims[k]) >= shape.size() ||
        (a.shape[k] != 1 && a.shape[k] != shape[static_cast<size_t>(dims[k])]))
      fail("broadcast_in_dim: " + type_str(a) + " dims " + list(dims) + " to " + type_str(shape, a.dt));
  return emit(fmt::format("stablehlo.broadcast_in_dim {}, dims = {} : ({}) -> {}", a.id, list(dims), type_str(a),
                          type_str(shape, a.dt)),
              shape, a.dt);
}

Val Builder::reshape(const Val& a, const Shape& shape) {
  if (a.shape == shape) return a;
  if (elements(a.shape) != elements(shape)) fail("reshape: " + type_str(a) + " to " + type_str(shape, a.dt));
  return emit(fmt::format("stablehlo.reshape {} : ({}) -> {}", a.id, type_str(a), type_str(shape, a.dt)), shape, a.dt);
}

Val Builder::transpose(const Val& a, const Shape& perm) {
  if (perm.size() != a.shape.size()) fail("transpose: permutation " + list(perm) + " for " + type_str(a));
  Shape out;
  for (int64_t p : perm) out.push_back(a.shape.at(static_cast<size_t>(p)));
  return emit(fmt::format("stablehlo.transpose {}, dims = {} : ({}) -> {}", a.id, list(perm), type_str(a),
                          type_str(out, a.dt)),
              out, a.dt);
}

Val Builder::reverse(const Val& a, const Shape& dims) {
  return emit(fmt::format("stablehlo.reverse {}, dims = {} : {}", a.id, list(dims), type_str(a)), a.shape, a.dt);
}

Val Builder::pad(const Val& a, float value, const Shape& low, const Shape& high, const Shape& interior) {
  const size_t r = a.shape.size();
  if (low.size() != r || high.size() != r || interior.size() != r) fail("pad: rank mismatch for " + type_str(a));
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    out[k] = low[k] + high[k] + a.shape[k] + (a.shape[k] > 0 ? (a.shape[k] - 1) * interior[k] : 0);
    if (out[k] < 0 || interior[k] < 0) fail("pad: negative result for " + type_str(a));
  }
  const Val pv = cst(value, {});
  return emit(fmt::format("stablehlo.pad {}, {}, low = {}, high = {}, interior = {} : ({}, {}) -> {}", a.id, pv.id,
                          list(low), list(high), list(interior), type_str(a), type_str(pv), type_str(out, a.dt)),
              out, a.dt);
}

Val Builder::slice(const Val& a, const Shape& start, const Shape& limit, const Shape& stride) {
  const size_t r = a.shape.size();
  if (start.size() != r || limit.size() != r || stride.size() != r) fail("slice: rank mismatch for " + type_str(a));
  Shape out(r);
  std::string spec;
  for (size_t k = 0; k < r; ++k) {
    if (start[k] < 0 || limit[k] > a.shape[k] || start[k] > limit[k] || stride[k] < 1)
      fail(fmt::format("slice: [{}:{}:{}] of dimension {} of {}", start[k], limit[k], stride[k], k, type_str(a)));
    out[k] = (limit[k] - start[k] + stride[k] - 1) / stride[k];
    if (k) spec += ", ";
    spec += stride[k] == 1 ? fmt::format("{}:{}", start[k], limit[k])
                           : fmt::format("{}:{}:{}", start[k], limit[k], stride[k]);
  }
  return emit(fmt::format("stablehlo.slice {} [{}] : ({}) -> {}", a.id, spec, type_str(a), type_str(out, a.dt)), out,
              a.dt);
}

Val Builder::reduce_max(const Val& a, const Shape& dims) {
  return reduce(a, dims, "maximum", -std::numeric_limits<float>::infinity());
}

Val Builder::reduce(const Val& a, const Shape& dims, std::string_view op, float init) {
  return reduce(a, dims, op, cst(init, {}));
}

Val Builder::reduce(const Val& a, const Shape& dims, std::string_view op, const Val& iv) {
  if (!iv.shape.empty() || iv.dt != a.dt) fail("reduce: init " + type_str(iv) + " for " + type_str(a));
  Shape out;
  for (size_t k = 0; k < a.shape.size(); ++k) {
    bool reduced = false;
    for (int64_t d : dims) reduced |= d == static_cast<int64_t>(k);
    if (!reduced) out.push_back(a.shape[k]);
  }
  return emit(fmt::format("stablehlo.reduce({} init: {}) applies stablehlo.{} across dimensions = {} : ({}, {}) -> {}",
                          a.id, iv.id, op, list(dims), type_str(a), type_str(iv), type_str(out, a.dt)),
              out, a.dt);
}

Val Builder::dot(const Val& a, const Val& b, const Shape& lc, const Shape& rc) { return dot(a, b, {}, {}, lc, rc); }

Val Builder::dot(const Val& a, const Val& b, const Shape& lb, const Shape& rb, const Shape& lc, const Shape& rc) {
  if (lc.size() != rc.size()) fail("dot_general: contracting dimension lists differ in length");
  if (lb.size() != rb.size()) fail("dot_general: batching dimension lists differ in length");
  for (size_t k = 0; k < lc.size(); ++k)
    if (a.shape.at(static_cast<size_t>(lc[k])) != b.shape.at(static_cast<size_t>(rc[k])))
      fail("dot_general: contracting " + type_str(a) + " " + list(lc) + " with " + type_str(b) + " " + list(rc));
  Shape out;
  for (size_t k = 0; k < lb.size(); ++k) {
    if (a.shape.at(static_cast<size_t>(lb[k])) != b.shape.at(static_cast<size_t>(rb[k])))
      fail("dot_general: batching " + type_str(a) + " " + list(lb) + " with " + type_str(b) + " " + list(rb));
    out.push_back(a.shape[static_cast<size_t>(lb[k])]);
  }
  auto free_dims = [&](const Val& v, const Shape& c, const Shape& bt) {
    for (size_t k = 0; k < v.shape.size(); ++k) {
      bool con = false;
      for (int64_t d : c) con |= d == static_cast<int64_t>(k);
      for (int64_t d : bt) con |= d == static_cast<int64_t>(k);
      if (!con) out.push_back(v.shape[k]);
    }
  };
  free_dims(a, lc, lb);
  free_dims(b, rc, rb);
  const std::string batching = lb.empty() ? "" : fmt::format("batching_dims = {} x {}, ", list(lb), list(rb));
  return emit(fmt::format("stablehlo.dot_general {}, {}, {}contracting_dims = {} x {} : ({}, {}) -> {}", a.id, b.id,
                          batching, list(lc), list(rc), type_str(a), type_str(b), type_str(out, a.dt)),
              out, a.dt);
}

Val Builder::convolution(const Val& lhs, const Val& rhs, const ConvDims& d, const Shape& stride,
                         const std::vector<std::pair<int64_t, int64_t>>& pad, const Shape& lhs_dilate,
                         const Shape& rhs_dilate, const Shape& out_shape, int64_t feature_groups,
                         int64_t batch_groups) {
  if (feature_groups < 1 || batch_groups < 1 || (feature_groups > 1 && batch_groups > 1))
    fail(fmt::format("convolution: feature_group_count {} and batch_group_count {} (at least 1, not both above 1)",
                     feature_groups, batch_groups));
  std::string pads;
  for (size_t k = 0; k < pad.size(); ++k)
    pads += fmt::format("{}[{}, {}]", k ? ", " : "", pad[k].first, pad[k].second);
  return emit(fmt::format("stablehlo.convolution({}, {}) dim_numbers = [{}]x[{}]->[{}], window = {{stride = {}, "
                          "pad = [{}], lhs_dilate = {}, rhs_dilate = {}}} {{batch_group_count = {} : i64, "
                          "feature_group_count = {} : i64}} : ({}, {}) -> {}",
                          lhs.id, rhs.id, d.lhs, d.rhs, d.out, list(stride), pads, list(lhs_dilate), list(rhs_dilate),
                          batch_groups, feature_groups, type_str(lhs), type_str(rhs), type_str(out_shape, lhs.dt)),
              out_shape, lhs.dt);
}

}  // namespace veridl::hlo
