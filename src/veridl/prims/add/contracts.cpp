// Chapter 6 contract of the residual's fan-in (biPath), its sweep, and the broken backwards it must
// reject.
#include <fmt/core.h>

#include "veridl/prims/add/mutants.hpp"
#include "veridl/prims/add/primitive.hpp"
#include "veridl/prims/add/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_relu_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_add_variant(const ops::AddShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("add", ops::AddOp{s});
  return make_vjp("add[" + variant + "]", ops::AddMutantOp{{s}, variant});
}

void prims::Add::register_contracts(Registry& r) {
  // A ResNet-style activation at batch 128: 16 channels of 14x14.
  constexpr size_t kProdB = 128, kProdC = 16, kProdHW = 14 * 14;
  {
    std::vector<ContractCase> cases;
    for (size_t n : {1, 2, 3, 5, 8, 17}) {
      ops::AddShape s{n};
      cases.push_back({fmt::format("n={}", n), [s](const std::string& v) { return make_add_variant(s, v); },
                       Sample::Normal, false});
    }
    ops::AddShape prod{kProdB * kProdC * kProdHW};
    cases.push_back({"n=128x16x14x14 (a residual join, B=128)",
                     [prod](const std::string& v) { return make_add_variant(prod, v); }, Sample::Normal, true});
    r.add({"biPath_has_vjp", 6, "y = a + b;  da = dy, db = dy   (both paths receive the whole gradient)", {},
           std::move(cases),
           {{"db_dropped", "db = 0: a residual's skip gradient lost"},
            {"da_scaled_1.0001", "da scaled by 1.0001 (invisible to finite differences)"},
            {"db_is_da_shifted", "db read one element late (dy[i+1]): an off-by-one index"}}});
  }
}

}  // namespace veridl
