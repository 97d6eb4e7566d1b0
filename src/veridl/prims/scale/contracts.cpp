// The matrix kit's scalar scale (book ch. 10), its sweep and the broken backwards it must reject.
#include <fmt/core.h>

#include "veridl/prims/scale/primitive.hpp"
#include "veridl/prims/scale/reference.hpp"
#include "veridl/vjp/registry.hpp"

namespace veridl {

void prims::Scale::register_contracts(Registry& r) {
  std::vector<ContractCase> cases;
  for (size_t n : {1, 2, 7})
    for (double c : {0.125, 3.0, -2.5, 0.1}) {
      cases.push_back({fmt::format("n={} by {}", n, c),
                       [n, c](const std::string& v) {
                         if (v.empty()) return make_vjp("scale", ops::ScaleOp{n, c});
                         return make_vjp("scale[" + v + "]", ops::ScaleMutantOp{{n, c}, v});
                       },
                       Sample::Normal, false});
    }
  r.add({"scale_has_vjp", 10, "y = c x;  dx = c dy", {}, std::move(cases),
         {{"dx_scale_forgotten", "dx = dy"}, {"dx_inverse", "dx = dy / c"}, {"dx_squared", "dx = c^2 dy"}}});
}

}  // namespace veridl
