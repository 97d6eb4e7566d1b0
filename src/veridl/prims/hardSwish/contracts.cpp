// Contract of hard-swish (prims/hardSwish/primitive.hpp: the pieces, the kink convention, the mutants).
#include "veridl/prims/hardSwish/primitive.hpp"

namespace veridl::prims {

void HardSwish::register_contracts(Registry& r) { register_elementwise_contract<HardSwishFn>(r); }

}  // namespace veridl::prims
