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

void prims::register_heads_contract(Registry& r, const std::string& name, bool split) {
  std::vector<ops::SwapShape> shapes;  // tokens T of H heads of width d: [T, H, d] (split) or [H, T, d] (merge)
  for (size_t N : {1, 2})
    for (size_t T : {1, 3, 5})
      for (size_t H : {1, 2, 3})
        for (size_t d : {1, 2, 4}) shapes.push_back(split ? ops::SwapShape{N, T, H, d} : ops::SwapShape{N, H, T, d});
  const ops::SwapShape vit = split ? ops::SwapShape{2, 197, 3, 64} : ops::SwapShape{2, 3, 197, 64};  // ViT-Tiny
  register_swap_contract(r, name,
                         split ? "[T, H d] -> [H, T, d]: y[h, t, j] = x[t, h d + j];  dx = dy swapped back"
                               : "[H, T, d] -> [T, H d]: y[t, h d + j] = x[h, t, j];  dx = dy swapped back",
                         shapes, {vit});
}

void prims::Transpose::register_contracts(Registry& r) {
  std::vector<ops::SwapShape> shapes;
  for (size_t N : {1, 2})
    for (size_t A : {1, 2, 3})
      for (size_t B : {1, 2, 5}) shapes.push_back({N, A, B, 1});
  register_swap_contract(r, contract(), "y[b, a] = x[a, b];  dx[a, b] = dy[b, a]", shapes, {{2, 197, 192, 1}});
}

}  // namespace veridl
