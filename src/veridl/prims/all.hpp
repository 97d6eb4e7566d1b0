// The primitive table: every primitive of the system, listed once. Adding a primitive = its own files
// (prims/<name>.hpp/.cpp, its reference in ops/, its kernel in kernels/, its contracts) plus its #include
// and one entry in this list. Everything else (NetSpec parsing, veridl info, the plan, both executors,
// checkpoints, whole-network verify, the exporter, the table-wide tests) iterates the list.
#pragma once

#include "veridl/prims/add.hpp"
#include "veridl/prims/batchnorm.hpp"
#include "veridl/prims/conv2d.hpp"
#include "veridl/prims/dense.hpp"
#include "veridl/prims/flatten.hpp"
#include "veridl/prims/maxpool.hpp"
#include "veridl/prims/mul.hpp"
#include "veridl/prims/relu.hpp"
#include "veridl/prims/softmax_ce.hpp"

namespace veridl::prims {

template <class... Ps>
struct List {
  static constexpr size_t size = sizeof...(Ps);
};

using All = List<Flatten, Dense, Conv2d, BatchNorm, Relu, MaxPool, SoftmaxCE, Add, Mul>;

}  // namespace veridl::prims
