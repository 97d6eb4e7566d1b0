// The matrix kit's reindex contracts (book ch. 2 reindex; ch. 10 head split and merge): the axis swap behind
// transpose, splitHeads and mergeHeads (one record, its mutants) and transpose's sweep.
#include <fmt/core.h>

#include "veridl/prims/transpose/primitive.hpp"
#include "veridl/prims/transpose/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::register_swap_contract(Registry& r, const std::string& name, const std::string& statement,
                                   const std::vector<ops::SwapShape>& shapes, const std::vector<ops::SwapShape>& production) {
  std::vector<ContractCase> cases;
  for (bool prod : {false, true})
    for (const ops::SwapShape& s : prod ? production : shapes)
      cases.push_back({s.str(),
                       [s](const std::string& v) {
                         if (v.empty()) return make_vjp("swap", ops::SwapOp{s});
                         return make_vjp("swap[" + v + "]", ops::SwapMutantOp{{s}, v});
                       },
                       Sample::Normal, prod});
  r.add({name, 10, statement, {}, std::move(cases),
         {{"dx_not_swapped", "the gradient passed through in the output's layout"},
          {"dx_forward_swap", "dy swapped with the forward's shape instead of the inverse's"},
          {"dx_scale_1.0001", "dx scaled by 1.0001"}}});
}

void prims::Transpose::register_contracts(Registry& r) {
  std::vector<ops::SwapShape> shapes;
  for (size_t N : {1, 2})
    for (size_t A : {1, 2, 3})
      for (size_t B : {1, 2, 5}) shapes.push_back({N, A, B, 1});
  register_swap_contract(r, contract(), "y[b, a] = x[a, b];  dx[a, b] = dy[b, a]", shapes, {{2, 197, 192, 1}});
}

}  // namespace veridl
