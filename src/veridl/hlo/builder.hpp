// A small writer of StableHLO in MLIR's pretty text form: typed SSA values, one method per op the
// exporter uses. Every op line can carry a trailing comment (`tag`): the exporter sets it to the
// registered contract whose closed form the op belongs to, so the module cites its contracts op by op.
//
// Only ops and spellings that iree-compile 3.13 accepts are written (tests/test_export.cpp compiles
// and runs every module kind on llvm-cpu). Float literals are the shortest decimal text that reads
// back as the same f32 bits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace veridl::hlo {

enum class DType { F32, I32, I1 };
using Shape = std::vector<int64_t>;

struct Val {
  std::string id;  // "%12" or a named argument "%layers.1.weight"
  Shape shape;
  DType dt = DType::F32;
  bool valid() const { return !id.empty(); }
};

const char* dtype_str(DType d);
std::string type_str(const Shape& shape, DType dt);  // tensor<2x3xf32>, tensor<f32>
std::string type_str(const Val& v);
std::string f32_literal(float v);                    // 0.1, 1.0e-08, 0xFF800000 for -inf
int64_t elements(const Shape& s);

// Labels of a convolution's dimensions, as StableHLO prints them: e.g. "b, f, 0, 1".
struct ConvDims {
  std::string lhs, rhs, out;
};

class Builder {
 public:
  std::string tag;  // appended as "// tag" to every op line while non-empty

  void comment(std::string_view text);
  void blank();
  const std::string& text() const { return body_; }

  // Constants (splat).
  Val cst(float v, const Shape& shape);
  Val cst_i32(int32_t v, const Shape& shape);
  Val literal(const std::vector<float>& values, const Shape& shape);  // a dense f32 constant, row-major

  // Elementwise (same shapes and types; i32 for the integer ones, i1 for and_).
  Val add(const Val& a, const Val& b) { return binary("add", a, b); }
  Val sub(const Val& a, const Val& b) { return binary("subtract", a, b); }
  Val mul(const Val& a, const Val& b) { return binary("multiply", a, b); }
  Val div(const Val& a, const Val& b) { return binary("divide", a, b); }
  Val max(const Val& a, const Val& b) { return binary("maximum", a, b); }
  Val min(const Val& a, const Val& b) { return binary("minimum", a, b); }
  Val and_(const Val& a, const Val& b) { return binary("and", a, b); }
  Val neg(const Val& a) { return unary("negate", a); }
  Val exp(const Val& a) { return unary("exponential", a); }
  Val expm1(const Val& a) { return unary("exponential_minus_one", a); }
  Val log(const Val& a) { return unary("log", a); }
  Val rsqrt(const Val& a) { return unary("rsqrt", a); }
  Val sqrt(const Val& a) { return unary("sqrt", a); }
  Val logistic(const Val& a) { return unary("logistic", a); }
  Val tanh(const Val& a) { return unary("tanh", a); }
  Val erf(const Val& a);  // chlo.erf (StableHLO has no erf; IREE and XLA legalize CHLO)
  // With a splat constant of a's shape.
  Val add(const Val& a, float c) { return add(a, cst(c, a.shape)); }
  Val mul(const Val& a, float c) { return mul(a, cst(c, a.shape)); }

  // dir: EQ, NE, GT, GE, LT, LE. Result i1.
  Val compare(std::string_view dir, const Val& a, const Val& b);
  Val select(const Val& pred, const Val& on_true, const Val& on_false);
  Val convert(const Val& a, DType to);
  Val iota(int64_t dim, const Shape& shape, DType dt);

  // Layout.
  Val broadcast(const Val& a, const Shape& dims, const Shape& shape);  // broadcast_in_dim
  Val reshape(const Val& a, const Shape& shape);                        // no op when the shape is a's
  Val transpose(const Val& a, const Shape& perm);
  Val reverse(const Val& a, const Shape& dims);
  Val pad(const Val& a, float value, const Shape& low, const Shape& high, const Shape& interior);
  Val slice(const Val& a, const Shape& start, const Shape& limit, const Shape& stride);

  // Reductions over `dims` with add (init 0) or maximum (init -inf).
  Val sum(const Val& a, const Shape& dims) { return reduce(a, dims, "add", 0.0f); }
  Val reduce_max(const Val& a, const Shape& dims);
  Val reduce(const Val& a, const Shape& dims, std::string_view op, float init);
  Val reduce(const Val& a, const Shape& dims, std::string_view op, const Val& init);  // init: a scalar of a's type

  // dot_general without batching dimensions: contracts lc of a with rc of b. The result holds a's
  // free dimensions, then b's.
  Val dot(const Val& a, const Val& b, const Shape& lc, const Shape& rc);
  // dot_general with batching dimensions lb of a paired with rb of b: the result holds the batch dimensions
  // (in lb's order), then a's free dimensions, then b's.
  Val dot(const Val& a, const Val& b, const Shape& lb, const Shape& rb, const Shape& lc, const Shape& rc);

  // feature_groups / batch_groups: StableHLO's feature_group_count (grouped convolutions: lhs features and
  // rhs output features split into that many groups) and batch_group_count (the lhs batch and the output
  // features split: the weight gradient of a grouped convolution); at most one of them above 1.
  Val convolution(const Val& lhs, const Val& rhs, const ConvDims& dims, const Shape& stride,
                  const std::vector<std::pair<int64_t, int64_t>>& pad, const Shape& lhs_dilate,
                  const Shape& rhs_dilate, const Shape& out_shape, int64_t feature_groups = 1,
                  int64_t batch_groups = 1);

 private:
  std::string body_;
  int next_ = 0;
  Val emit(const std::string& rhs, const Shape& shape, DType dt);
  Val binary(std::string_view op, const Val& a, const Val& b);
  Val unary(std::string_view op, const Val& a);
};

}  // namespace veridl::hlo
