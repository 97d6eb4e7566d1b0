// splitHeads (book ch. 10): tokens [T, D] -> heads [H, T, D/H] (head h takes columns [h d, (h+1) d)); field "heads".
// The head, reference and kernel are transpose's (prims/transpose/), its contract (splitHeads_has_vjp) shares the swap's record
// and mutants: contracts.cpp.
#pragma once

#include "veridl/prims/transpose/primitive.hpp"

namespace veridl::prims {

struct SplitHeads : SwapHead<SwapKind::SplitHeads> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "splitHeads";
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"[5, 6] in 3 heads", {{"heads", 3}}, {{{5, 6}}}}, {"[4, 8] in 1 head", {{"heads", 1}}, {{{4, 8}}}}};
  }
};

}  // namespace veridl::prims
