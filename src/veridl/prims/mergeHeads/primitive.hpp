// mergeHeads (book ch. 10): heads [H, T, d] -> tokens [T, H d], splitHeads' inverse. No fields. The head,
// reference and kernel are transpose's (prims/transpose/), its contract (mergeHeads_has_vjp) shares the swap's record
// and mutants: contracts.cpp.
#pragma once

#include "veridl/prims/transpose/primitive.hpp"

namespace veridl::prims {

struct MergeHeads : SwapHead<SwapKind::MergeHeads> {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "mergeHeads";
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples() {
    return {{"[3, 5, 2]", nlohmann::json::object(), {{{3, 5, 2}}}}, {"[1, 4, 8]", nlohmann::json::object(), {{{1, 4, 8}}}}};
  }
};

}  // namespace veridl::prims
