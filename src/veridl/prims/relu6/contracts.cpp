// Chapter 7 contract of ReLU6 (MobileNetV2), its sweep, and the broken backwards it must reject.
//
// The sweep has to reach both kinks. Sample::Ties plants integers in {-2..2}: exact zeros (the lower kink)
// but never 6, so besides the plain cases the sweep checks ReLU6 behind a fixed x -> 3x (vjp_comp with an
// exact linear record): the tie-heavy sample then feeds ReLU6 {-6, -3, 0, 3, 6}, both kinks exactly, on the
// real-run tape. run_contract also adds a random tape for every config, which draws Dead, Linear and
// Saturated elements (1/2, 1/4, 1/4) whatever the sample.
#include <fmt/core.h>

#include "veridl/prims/scale/reference.hpp"  // ops::ScaleOp
#include "veridl/prims/relu6/mutants.hpp"
#include "veridl/prims/relu6/primitive.hpp"
#include "veridl/prims/relu6/reference.hpp"
#include "veridl/vjp/combinators.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_relu_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_relu6_variant(const ops::Relu6Shape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("relu6", ops::Relu6Op{s});
  return make_vjp("relu6[" + variant + "]", ops::Relu6MutantOp{{s}, variant});
}


void prims::Relu6::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  for (size_t n : {1, 2, 3, 5, 8, 17, 64})
    for (Sample smp : {Sample::Normal, Sample::Ties}) {
      const ops::Relu6Shape s{n};
      cases.push_back({fmt::format("n={}{}", n, smp == Sample::Ties ? " ties" : ""),
                       [s](const std::string& v) { return make_relu6_variant(s, v); }, smp, false});
    }
  for (size_t n : {1, 4, 9, 32}) {
    const ops::Relu6Shape s{n};
    cases.push_back({fmt::format("n={} ties behind x -> 3x (exact 0 and 6 on the real tape)", n),
                     [s](const std::string& v) {
                       return vjp_comp(make_vjp("times3", ops::ScaleOp{s.n, 3.0}), make_relu6_variant(s, v));
                     },
                     Sample::Ties, false});
  }
  const ops::Relu6Shape prod{8 * 32 * 16 * 16};
  cases.push_back({"n=8x32x16x16 (MobileNetV2 stem 3x3/s2 on 32x32 CIFAR-10, B=8)",
                   [prod](const std::string& v) { return make_relu6_variant(prod, v); }, Sample::Normal, true});
  r.add({"relu6_has_vjp_at", 7,
         "dx_i = dy_i if 0 < x_i < 6 else 0   (two tape decisions: x > 0, then 6 > x; dx = 0 at x = 0 and x = 6)",
         {},
         std::move(cases),
         {{"upper_kink_ignored", "the upper clamp is ignored (ReLU's backward): the gradient flows where x >= 6"},
          {"lower_kink_ignored", "the lower clamp is ignored (min(x, 6)'s backward): the gradient flows where x <= 0"},
          {"upper_mask_inverted", "above 0 the mask is inverted: the gradient flows where x >= 6, not where 0 < x < 6"},
          {"mask_off_by_one", "the mask is read one element late (mask[i+1])"},
          {"scale_1.0001", "dx scaled by 1.0001 (invisible to finite differences)"}}});
}

}  // namespace veridl
