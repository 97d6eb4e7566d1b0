// The whole-network contract: a Plan run by the shared executor wiring with the templated reference
// kernels, as one VJP record  (x, params) -> loss, checked by the same checker at the real shapes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "veridl/net/plan.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl {

// Inputs {"x" [batch x input], "params" [n_params]}; output: the mean loss for `labels`.
Vjp make_network_vjp(const net::Plan& plan, std::vector<int32_t> labels);

struct NetCheckReport {
  std::string network;
  size_t batch = 0, inputs = 0, params = 0;
  int trials = 0;
  bool pass = false;
  double seconds = 0;
  std::string failure;
};

NetCheckReport verify_plan(const net::Plan& plan, uint64_t seed, int trials);
// Loads the NetSpec; the batch defaults to the spec's recipe batch (else 128).
NetCheckReport verify_net_spec(const std::string& path, std::optional<size_t> batch, uint64_t seed, int trials);

}  // namespace veridl
