// Chapter 9 contract of GELU, erf form (prims/geluErf/primitive.hpp: the formula and its mutants).
#include "veridl/prims/geluErf/primitive.hpp"

namespace veridl::prims {

void GeluErf::register_contracts(Registry& r) { register_elementwise_contract<GeluErfFn>(r); }

}  // namespace veridl::prims
