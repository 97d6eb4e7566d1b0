// Chapter 9 contract of GELU, tanh form (prims/gelu/primitive.hpp: the formula and its mutants).
#include "veridl/prims/gelu/primitive.hpp"

namespace veridl::prims {

void Gelu::register_contracts(Registry& r) { register_elementwise_contract<GeluFn>(r); }

}  // namespace veridl::prims
