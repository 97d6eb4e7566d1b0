// Chapter 8 contract of the sigmoid gate (prims/sigmoid/primitive.hpp: the formula and its mutants).
#include "veridl/prims/sigmoid/primitive.hpp"

namespace veridl::prims {

void Sigmoid::register_contracts(Registry& r) { register_elementwise_contract<SigmoidFn>(r); }

}  // namespace veridl::prims
