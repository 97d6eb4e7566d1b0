// How "same" pads a strided window (original-system.md §9.4.6): the one piece of the padding vocabulary
// the graph layer needs (NetContext, graph/ir.hpp). The padding arithmetic itself is conv2d's
// reference (prims/conv2d/reference.hpp), which names this type ops::PadStyle.
#pragma once

namespace veridl::graph {

enum class PadStyle { Symmetric, XlaSame };

}  // namespace veridl::graph
