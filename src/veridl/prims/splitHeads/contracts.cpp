// splitHeads_has_vjp (book ch. 10): the axis swap (prims/transpose/) over splitHeads's shapes: tokens T of H heads of
// width d; and its production shape, ViT-Tiny's 197 tokens in 3 heads of 64 at batch 2.
#include "veridl/prims/splitHeads/primitive.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::SplitHeads::register_contracts(Registry& r) {
  std::vector<ops::SwapShape> shapes;
  for (size_t N : {1, 2})
    for (size_t T : {1, 3, 5})
      for (size_t H : {1, 2, 3})
        for (size_t d : {1, 2, 4}) shapes.push_back({N, T, H, d});
  register_swap_contract(r, contract(), "[T, H d] -> [H, T, d]: y[h, t, j] = x[t, h d + j];  dx = dy swapped back", shapes, {{2, 197, 3, 64}});
}

}  // namespace veridl
