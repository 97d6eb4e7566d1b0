// mergeHeads_has_vjp (book ch. 10): the axis swap (prims/transpose/) over mergeHeads's shapes: tokens T of H heads of
// width d; and its production shape, ViT-Tiny's 197 tokens in 3 heads of 64 at batch 2.
#include "veridl/prims/mergeHeads/primitive.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::MergeHeads::register_contracts(Registry& r) {
  std::vector<ops::SwapShape> shapes;
  for (size_t N : {1, 2})
    for (size_t T : {1, 3, 5})
      for (size_t H : {1, 2, 3})
        for (size_t d : {1, 2, 4}) shapes.push_back({N, H, T, d});
  register_swap_contract(r, contract(), "[H, T, d] -> [T, H d]: y[t, h d + j] = x[h, t, j];  dx = dy swapped back", shapes, {{2, 3, 197, 64}});
}

}  // namespace veridl
