// Chapter 6 contract of the residual's fan-out, its sweep, and the broken backwards it must reject. The
// fan-out is not a table entry: the plan's accumulate edges implement it (the executor adds a further
// consumer's gradient into the sum with kernels::add_into, net/executor.hpp).
#include <fmt/core.h>

#include "veridl/prims/fanout/mutants.hpp"
#include "veridl/prims/fanout/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

// Exported (like make_relu_variant) so that composite contracts can put this record, or its mutants,
// inside a composition.
Vjp make_fanout_variant(const ops::FanoutShape& s, const std::string& variant) {
  if (variant.empty()) return make_vjp("fanout", ops::FanoutOp{s});
  return make_vjp("fanout[" + variant + "]", ops::FanoutMutantOp{{s}, variant});
}

void register_fanout_contracts(Registry& r) {
  // A ResNet-style activation at batch 128: 16 channels of 14x14.
  constexpr size_t kProdB = 128, kProdC = 16, kProdHW = 14 * 14;
  {
    std::vector<ContractCase> cases;
    for (size_t n : {1, 2, 3, 5, 8, 17}) {
      ops::FanoutShape s{n};
      cases.push_back({fmt::format("n={}", n), [s](const std::string& v) { return make_fanout_variant(s, v); },
                       Sample::Normal, false});
    }
    ops::FanoutShape prod{kProdB * kProdC * kProdHW};
    cases.push_back({"n=128x16x14x14 (a residual split, B=128)",
                     [prod](const std::string& v) { return make_fanout_variant(prod, v); }, Sample::Normal, true});
    r.add({"fanout_has_vjp", 6, "(y1, y2) = (x, x);  dx = dy1 + dy2   (the two uses' gradients accumulate)", {},
           std::move(cases),
           {{"write_not_accumulate", "dx = dy2: the second gradient overwrote the first"},
            {"first_only", "dx = dy1: the second use's gradient never arrives"},
            {"doubled_first", "dx = 2 dy1: the first gradient accumulated twice"}}});
  }
}

}  // namespace veridl
