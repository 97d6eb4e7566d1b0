// The matrix kit's product of two activations (book ch. 10): one contract per factor, their sweep (plain and
// transposed b, batched over groups, square and not, batch 1 and 2) and the broken backwards they must reject.
#include <fmt/core.h>

#include "veridl/prims/matmul/primitive.hpp"
#include "veridl/prims/matmul/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::Matmul::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  auto add = [&](const ops::MatmulShape& s, bool production, const std::string& note) {
    cases.push_back({s.str() + note,
                     [s](const std::string& v) {
                       if (v.empty()) return make_vjp("matmul", ops::MatmulOp{s});
                       return make_vjp("matmul[" + v + "]", ops::MatmulMutantOp{{s}, v});
                     },
                     Sample::Normal, production});
  };
  for (size_t N : {1, 2})
    for (size_t G : {1, 3})
      for (auto [M, K, P] : {std::tuple<size_t, size_t, size_t>{1, 1, 1}, {2, 3, 4}, {3, 2, 2}, {4, 4, 4}, {5, 3, 1}})
        for (bool tb : {false, true}) add({N, G, M, K, P, tb}, false, "");
  add({2, 3, 197, 64, 197, true}, true, " (ViT-Tiny's q k^T)");
  add({2, 3, 197, 197, 64, false}, true, " (ViT-Tiny's P v)");
  r.add({"matmul_back_A_correct", 10, "y = a b (or a b^T);  da = dy b^T (or dy b)", {"a"}, cases,
         {{"da_next_b_row", "da reads row k + 1 of b (an off-by-one)"},
          {"da_first_group_b", "every group's da built from group 0's b (the batch index forgotten)"},
          {"da_sign", "wrong sign"}}});
  r.add({"matmul_back_B_correct", 10, "y = a b (or a b^T);  db = a^T dy (or dy^T a)", {"b"}, std::move(cases),
         {{"db_first_group_a", "every group's db built from group 0's a (the batch index forgotten)"},
          {"db_next_dy_row", "dy's row m + 1 paired with a's row m"},
          {"db_scale_1.0001", "db scaled by 1.0001"}}});
}

}  // namespace veridl
