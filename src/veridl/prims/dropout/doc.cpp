// dropout's NetSpec reference: the rows docs/netspec.md generates from it (net/reference.hpp). The type and
// default of each field come from Dropout::parse's reads; a field read there and not described here, or described
// and not read, fails NetSpecReference.* .
#include "veridl/prims/dropout/primitive.hpp"

namespace veridl::prims {

const graph::LayerDoc& Dropout::doc() {
  static const graph::LayerDoc d{
      R"(1)",
      R"(training: `y = x / (1 − rate)` where kept, 0 where dropped, one decision per element; evaluation: `y = x`. The decisions are drawn from the run's seed, the global step and the node (reproducible, and a resumed run draws what the whole run would have))",
      {{"rate", R"(the probability of dropping an element, in `[0, 1)`)"}}};
  return d;
}

}  // namespace veridl::prims
