// Chapter 8 contract of swish / SiLU (prims/swish/primitive.hpp: the formula and its mutants).
#include "veridl/prims/swish/primitive.hpp"

namespace veridl::prims {

void Swish::register_contracts(Registry& r) { register_elementwise_contract<SwishFn>(r); }

}  // namespace veridl::prims
