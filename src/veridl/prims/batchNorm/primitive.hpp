// batchNorm (book ch. 5) over NCHW (or flat features, as C x 1 x 1): batch statistics (biased variance)
// in Mode::Train, running statistics in Mode::Eval; gamma/beta per channel; running mean/var as state.
// Reference: reference.hpp; fast kernels: kernel.hpp; contracts: contracts.cpp (this directory, prims/batchNorm/).
#pragma once

#include <stdexcept>
#include <type_traits>
#include <vector>

#include "veridl/graph/ir.hpp"
#include "veridl/prims/batchNorm/kernel.hpp"
#include "veridl/prims/batchNorm/reference.hpp"
#include "veridl/prims/batchNorm/sync.hpp"

namespace veridl::prims {

using namespace graph;

struct BatchNorm {
  static const graph::LayerDoc& doc();  // doc.cpp: its rows of the NetSpec reference (docs/netspec.md)
  static constexpr const char* kName = "batchNorm";
  static constexpr LayerUse kLayer = LayerUse::Layer;
  static constexpr size_t kInputs = 1;
  struct Attrs {
    ops::BatchNormShape shape;  // resolved by infer, N = 1
    // The fused ReLU: relu(BatchNorm(x)) in one node. Never from a NetSpec: the plan's fusion pass sets it when the
    // BatchNorm's only consumer is a ReLU (net/fuse.hpp).
    bool relu = false;
  };
  static Attrs parse(Fields&) { return {}; }
  static void to_json(const Attrs& a, nlohmann::json& j) {
    if (a.relu) j["fusedRelu"] = true;  // a plan's node (veridl info), never a NetSpec field
  }
  static VShape infer(Attrs& a, InShapes in, const Where& w);
  static void declare(const Attrs& a, Decl& d);

  // saved: mean, var, r [C]; the float kernels' double mean and r [2C] (f64, training only: kernel.hpp); with the
  // fused ReLU its mask [N C H W] (u8, training only). The backward reads x and recomputes xhat = (x - mean) r from
  // them (the forward's float in the kernels, its atoms in the reference): no activation-sized xhat is kept.
  // state: running mean, running var.
  template <class T, class B>
  static void forward(const Attrs& a, Call<T>& c) {
    ops::BatchNormShape s = a.shape;
    s.N = c.n;
    constexpr bool fast = std::is_same_v<B, Fast>;
    uint8_t* mask = a.relu && c.mode == Mode::Train ? c.saved8[0] : nullptr;
    if (c.mode == Mode::Train) {
      // Synchronized BatchNorm: the global batch's statistics (sync.hpp; contracts sync_bn_*). On one process that is
      // the plain kernel's computation, which runs then (bit for bit the one-process run).
      if (c.sync && c.sync->parties() > 1) {
        if constexpr (fast)
          kernels::sync_batchnorm_train_forward(s, ops::kBatchNormEps, *c.sync, c.in[0], c.p[0], c.p[1], c.out,
                                                c.saved[0], c.saved[1], c.saved[2], c.saved64[0], mask);
        else
          throw std::logic_error("synchronized BatchNorm runs on the float kernels only");
      } else if constexpr (fast)
        kernels::batchnorm_train_forward(s, ops::kBatchNormEps, c.in[0], c.p[0], c.p[1], c.out, c.saved[0], c.saved[1],
                                         c.saved[2], c.saved64[0], mask);
      else  // xhat not kept: the backward recomputes it (ops::batchnorm_xhat)
        ops::batchnorm_train_forward(s, ops::kBatchNormEps, c.in[0], c.p[0], c.p[1], c.out, c.saved[0], c.saved[1],
                                     c.saved[2], static_cast<T*>(nullptr), mask, c.D);
      if (c.running_momentum > 0) {
        if constexpr (fast)
          kernels::batchnorm_update_running(s.C, c.running_momentum, c.saved[0], c.saved[1], c.state[0], c.state[1]);
        else
          ops::batchnorm_update_running(s.C, c.running_momentum, c.saved[0], c.saved[1], c.state[0], c.state[1]);
      }
    } else {
      if constexpr (fast)
        kernels::batchnorm_eval_forward(s, ops::kBatchNormEps, c.in[0], c.p[0], c.p[1], c.state[0], c.state[1], c.out,
                                        a.relu);
      else
        ops::batchnorm_eval_forward(s, ops::kBatchNormEps, c.in[0], c.p[0], c.p[1], c.state[0], c.state[1], c.out,
                                    a.relu, c.D);
    }
  }
  template <class T, class B>
  static void backward(const Attrs& a, Call<T>& c) {
    ops::BatchNormShape s = a.shape;
    s.N = c.n;
    const uint8_t* mask = a.relu ? c.saved8[0] : nullptr;
    if (c.sync && c.sync->parties() > 1) {
      if constexpr (std::is_same_v<B, Fast>)
        kernels::sync_batchnorm_backward(s, *c.sync, c.p[0], c.saved[2], c.saved64[0], c.in[0], c.dy, c.dx[0],
                                         c.g[0], c.g[1], mask);
      else
        throw std::logic_error("synchronized BatchNorm runs on the float kernels only");
    } else if constexpr (std::is_same_v<B, Fast>) {
      kernels::batchnorm_backward(s, c.p[0], c.saved[2], c.saved64[0], c.in[0], c.dy, c.dx[0], c.g[0], c.g[1], mask);
    } else {
      std::vector<T> xhat(s.count());
      ops::batchnorm_xhat(s, c.in[0], c.saved[0], c.saved[2], xhat.data());
      ops::batchnorm_backward(s, c.p[0], c.saved[2], xhat.data(), c.dy, c.dx[0], c.g[0], c.g[1], mask);
    }
  }
  static void emit_forward(Emission& e, const Node& n);
  static void emit_backward(Emission& e, const Node& n);
  static void emit_onnx(OnnxEmission& e, const Node& n);  // the inference graph (export/onnx.hpp)
  static std::vector<std::string> contracts();
  static void register_contracts(Registry& r);  // contracts.cpp
  static std::vector<Example> examples();
};

}  // namespace veridl::prims
