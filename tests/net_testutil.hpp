// Whole-network test helpers: the float kernels against the double reference through the executor.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "veridl/net/executor.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/plan.hpp"

namespace veridl::testutil {

// One batch of 2 through Executor<float, FastKernels> and Executor<double, RefKernels> with the same
// parameters and inputs: the loss within `tol` relative, every parameter gradient and the input gradient
// within `tol` of (1 + the largest reference gradient).
inline void expect_fast_kernels_match_reference(const net::NetSpec& spec, double tol) {
  const net::Plan p = net::compile(spec, 2, 0.1);
  net::Executor<float, net::FastKernels> fast(p);
  net::Executor<double, net::RefKernels> ref(p);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n(0, 0.3f);
  for (size_t i = 0; i < p.n_params; ++i) ref.params()[i] = fast.params()[i] = n(rng);
  std::vector<float> x(2 * p.input_width());
  for (auto& e : x) e = n(rng);
  const std::vector<double> xd(x.begin(), x.end());
  std::vector<int32_t> y{1, 3};
  Decisions d1, d2;
  const float lf = fast.forward_loss(x.data(), y.data(), 2, d1);
  const double lr = ref.forward_loss(xd.data(), y.data(), 2, d2);
  EXPECT_NEAR(lf, lr, tol * (1 + std::fabs(lr))) << spec.name;
  fast.backward(1.0f, true);
  ref.backward(1.0, true);
  double gmax = 0;
  for (double g : ref.grads()) gmax = std::max(gmax, std::fabs(g));
  for (size_t i = 0; i < p.n_params; ++i)
    ASSERT_NEAR(fast.grads()[i], ref.grads()[i], tol * (1 + gmax)) << spec.name << " param " << i;
  const auto gx = fast.input_grad();
  const auto rx = ref.input_grad();
  for (size_t i = 0; i < gx.size(); ++i) ASSERT_NEAR(gx[i], rx[i], tol * (1 + gmax)) << spec.name << " x " << i;
}

}  // namespace veridl::testutil
