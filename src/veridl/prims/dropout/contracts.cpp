// Chapter 9 contract of dropout (training mode), its sweep, and the broken backwards it must reject. dropPath's
// contract (prims/dropPath/contracts.cpp) is built from the same record.
#include <fmt/core.h>

#include "veridl/prims/dropout/mutants.hpp"
#include "veridl/prims/dropout/primitive.hpp"
#include "veridl/prims/dropout/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_relu_variant) so that composite contracts can put this record, or its mutants, inside a
// composition.
Vjp make_drop_variant(const ops::DropShape& s, double rate, uint64_t key, const std::string& variant) {
  const std::string name = s.per_example ? "dropPath" : "dropout";
  if (variant.empty()) return make_vjp(name, ops::DropOp{s, rate, key});
  return make_vjp(name + "[" + variant + "]", ops::DropMutantOp{{s, rate, key}, variant});
}

// The sweep both drop contracts share: every rate x N x width, keys first_key, first_key + 1, ... for the real
// tape's generator. Rates away from 1/2 (where 1/rate = 1/(1 - rate) would hide scale_uses_rate); run_contract adds
// a random tape for every config. Exported for prims/dropPath/contracts.cpp.
std::vector<ContractCase> drop_sweep(bool per_example, const std::vector<size_t>& Ns, const std::vector<size_t>& Ws,
                                     uint64_t first_key) {
  std::vector<ContractCase> cases;
  uint64_t key = first_key;
  for (double rate : {0.1, 0.3, 0.75})
    for (size_t N : Ns)
      for (size_t W : Ws) {
        const ops::DropShape s{N, W, per_example};
        const uint64_t k = key++;
        cases.push_back({fmt::format("rate={} N={} width={}", rate, N, W),
                         [s, rate, k](const std::string& v) { return make_drop_variant(s, rate, k, v); }, Sample::Normal,
                         false});
      }
  return cases;
}

void prims::Dropout::register_contracts(Registry& r) {
  std::vector<ContractCase> cases = drop_sweep(false, {1, 3}, {1, 2, 5, 17}, 1);
  const ops::DropShape prod{2, 1280, false};
  cases.push_back({"rate=0.2 N=2 width=1280 (EfficientNet-B0's classifier dropout)",
                   [prod](const std::string& v) { return make_drop_variant(prod, 0.2, 7, v); }, Sample::Normal, true});
  r.add({"dropout_has_vjp_correct", 9,
         "y_i = keep_i ? x_i / q : 0,  dx_i = keep_i ? dy_i / q : 0   (q = 1 - rate; keep from the tape)", {},
         std::move(cases),
         {{"scale_missing", "dx = keep ? dy : 0: the forward's 1/q forgotten"},
          {"keep_ignored", "dx = dy / q: the dropped units get a gradient"},
          {"scale_uses_rate", "dx = keep ? dy / rate : 0: the drop probability for the keep probability"},
          {"scale_1.0001", "dx scaled by 1.0001 (invisible to finite differences)"},
          {"keep_off_by_one", "the decisions read one element late (keep[i+1])"}}});
}

}  // namespace veridl
