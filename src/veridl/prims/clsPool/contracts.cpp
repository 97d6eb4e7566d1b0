// Chapter 10 contract of clsPool (the CLS row), its sweep and the broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/clsPool/primitive.hpp"
#include "veridl/prims/clsPool/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::ClsPool::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const ops::ClsPoolShape& s, bool production, const std::string& note) {
    cases.push_back({s.str() + note,
                     [s](const std::string& v) {
                       if (v.empty()) return make_vjp("clsPool", ops::ClsPoolOp{s});
                       return make_vjp("clsPool[" + v + "]", ops::ClsPoolMutantOp{{s}, v});
                     },
                     Sample::Normal, production});
  };
  for (size_t N : {1, 2, 3})
    for (size_t T : {1, 2, 5})
      for (size_t D : {1, 3, 4}) add({N, T, D}, false, "");
  add({2, 197, 192}, true, " (ViT-Tiny)");
  r.add({"clsPool_has_vjp_correct", 10, "y = x[0];  dx[0] = dy, dx[t] = 0 for t > 0", {}, std::move(cases),
         {{"dx_last_row", "the gradient sent to the last token instead of the CLS token"},
          {"dx_every_row", "the gradient sent to every token"},
          {"dx_first_example", "every example given example 0's gradient"}}});
}

}  // namespace veridl
