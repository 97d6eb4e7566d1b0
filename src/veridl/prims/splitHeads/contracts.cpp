// splitHeads_has_vjp (book ch. 10): the axis swap (prims/transpose/) over splitHeads's shapes (register_heads_contract).
#include "veridl/prims/splitHeads/primitive.hpp"

namespace veridl {

void prims::SplitHeads::register_contracts(Registry& r) { register_heads_contract(r, contract(), true); }

}  // namespace veridl
