// Chapter 9 contract of dropPath (stochastic depth, training mode), its sweep, and the broken backwards it must
// reject. The record is dropout's (prims/dropout/reference.hpp) with one decision per example.

#include "veridl/prims/dropPath/primitive.hpp"
#include "veridl/prims/dropout/mutants.hpp"
#include "veridl/prims/dropout/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// prims/dropout/contracts.cpp
Vjp make_drop_variant(const ops::DropShape& s, double rate, uint64_t key, const std::string& variant);
std::vector<ContractCase> drop_sweep(bool per_example, const std::vector<size_t>& Ns, const std::vector<size_t>& Ws,
                                     uint64_t first_key);

void prims::DropPath::register_contracts(Registry& r) {
  std::vector<ContractCase> cases = drop_sweep(true, {1, 2, 4}, {1, 3, 12}, 100);
  const ops::DropShape prod{2, 96 * 56 * 56, true};
  cases.push_back({"rate=0.1 N=2 96x56x56 (a ConvNeXt-T stage-1 block's branch)",
                   [prod](const std::string& v) { return make_drop_variant(prod, 0.1, 11, v); }, Sample::Normal, true});
  r.add({"dropPath_has_vjp_correct", 9,
         "y[b,i] = keep_b ? x[b,i] / q : 0,  dx[b,i] = keep_b ? dy[b,i] / q : 0   (one decision per example)", {},
         std::move(cases),
         {{"scale_missing", "dx = keep ? dy : 0: the forward's 1/q forgotten"},
          {"keep_ignored", "dx = dy / q: the dropped examples' branches get a gradient"},
          {"keep_off_by_one", "example b reads example b+1's decision"},
          {"keep_per_element", "the decisions indexed per element (keep[i mod N]), as dropout's"}}});
}

}  // namespace veridl
