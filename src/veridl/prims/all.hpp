// The primitive table: every primitive of the system, listed once. Adding a primitive = its own directory
// prims/<name>/ (<name> as in NetSpecs: primitive.hpp/.cpp the table entry, doc.cpp its NetSpec reference,
// reference.hpp the templated reference, kernel.hpp/.cpp the float32 kernels, contracts.cpp and mutants.hpp
// its contracts) plus its
// #include and one entry in this list. Everything else (NetSpec parsing, veridl info, the plan, both executors,
// checkpoints, whole-network verify, the exporter, the table-wide tests) iterates the list.
#pragma once

#include "veridl/prims/add/primitive.hpp"
#include "veridl/prims/avgPool/primitive.hpp"
#include "veridl/prims/batchNorm/primitive.hpp"
#include "veridl/prims/clsPool/primitive.hpp"
#include "veridl/prims/conv2d/primitive.hpp"
#include "veridl/prims/dense/primitive.hpp"
#include "veridl/prims/dropPath/primitive.hpp"
#include "veridl/prims/dropout/primitive.hpp"
#include "veridl/prims/flatten/primitive.hpp"
#include "veridl/prims/gelu/primitive.hpp"
#include "veridl/prims/geluErf/primitive.hpp"
#include "veridl/prims/globalAvgPool/primitive.hpp"
#include "veridl/prims/hardSwish/primitive.hpp"
#include "veridl/prims/layerNorm/primitive.hpp"
#include "veridl/prims/layerScale/primitive.hpp"
#include "veridl/prims/matmul/primitive.hpp"
#include "veridl/prims/maxPool/primitive.hpp"
#include "veridl/prims/mergeHeads/primitive.hpp"
#include "veridl/prims/mul/primitive.hpp"
#include "veridl/prims/patchTokens/primitive.hpp"
#include "veridl/prims/relu/primitive.hpp"
#include "veridl/prims/relu6/primitive.hpp"
#include "veridl/prims/scale/primitive.hpp"
#include "veridl/prims/sdpa/primitive.hpp"
#include "veridl/prims/sigmoid/primitive.hpp"
#include "veridl/prims/softmax/primitive.hpp"
#include "veridl/prims/softmaxCE/primitive.hpp"
#include "veridl/prims/splitHeads/primitive.hpp"
#include "veridl/prims/swish/primitive.hpp"
#include "veridl/prims/transpose/primitive.hpp"

namespace veridl::prims {

template <class... Ps>
struct List {
  static constexpr size_t size = sizeof...(Ps);
};

using All = List<Flatten, Dense, Conv2d, BatchNorm, Relu, MaxPool, SoftmaxCE, Add, Mul, Relu6, AvgPool, GlobalAvgPool, Sigmoid, Swish,
                 HardSwish, Gelu, GeluErf, LayerNorm, LayerScale, Dropout, DropPath, Sdpa, PatchTokens, ClsPool,
                 Matmul, Transpose, SplitHeads, MergeHeads, Scale, Softmax>;

}  // namespace veridl::prims
