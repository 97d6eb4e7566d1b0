// The row softmax's contract (book ch. 2's softmax_has_vjp; the matrix kit's row-wise softmax in ch. 10): its
// sweep (rows of 1 to 5, tie-heavy rows, attention's rows of 197) and the broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/softmax/primitive.hpp"
#include "veridl/prims/softmaxCE/mutants.hpp"
#include "veridl/prims/softmaxCE/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::Softmax::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const ops::SoftmaxShape& s, Sample smp, bool production, const std::string& note) {
    cases.push_back({fmt::format("B={} K={}{}", s.B, s.K, note),
                     [s](const std::string& v) {
                       if (v.empty()) return make_vjp("softmax", ops::SoftmaxOp{s});
                       return make_vjp("softmax[" + v + "]", ops::SoftmaxMutantOp{{s}, v});
                     },
                     smp, production});
  };
  for (size_t B : {1, 2, 3})
    for (size_t K : {1, 2, 5})
      for (Sample smp : {Sample::Normal, Sample::Ties}) add({B, K}, smp, false, smp == Sample::Ties ? " ties" : "");
  add({2 * 3 * 197, 197}, Sample::Normal, true, " (ViT-Tiny's attention rows: 2 x 3 heads x 197)");
  r.add({"softmax_has_vjp", 2, "dz_i = p_i (dy_i - <p, dy>)", {}, std::move(cases),
         {{"missing_dot", "the <p, dy> term is missing"},
          {"sign", "wrong sign"},
          {"scale_1.0001", "scaled by 1.0001"},
          {"unweighted_dot", "sum of dy instead of <p, dy>"}}});
}

}  // namespace veridl
