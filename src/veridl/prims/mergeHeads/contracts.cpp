// mergeHeads_has_vjp (book ch. 10): the axis swap (prims/transpose/) over mergeHeads's shapes (register_heads_contract).
#include "veridl/prims/mergeHeads/primitive.hpp"

namespace veridl {

void prims::MergeHeads::register_contracts(Registry& r) { register_heads_contract(r, contract(), false); }

}  // namespace veridl
