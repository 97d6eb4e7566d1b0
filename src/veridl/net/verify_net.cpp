#include "veridl/net/verify_net.hpp"

#include <chrono>
#include <memory>
#include <random>

#include "veridl/net/executor.hpp"
#include "veridl/vjp/check.hpp"

namespace veridl {

namespace {

struct NetworkOp {
  std::shared_ptr<const net::Plan> plan;
  std::vector<int32_t> labels;

  std::vector<std::string> in_names() const { return {"x", "params"}; }
  std::vector<size_t> in_sizes() const { return {plan->batch * plan->input_width(), plan->n_params}; }
  size_t out_size() const { return 1; }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    auto ex = std::make_shared<net::Executor<T, net::RefKernels>>(*plan);
    std::copy(in[1].begin(), in[1].end(), ex->params().begin());
    Ctx<T> c;
    c.out = {ex->forward_loss(in[0].data(), labels.data(), plan->batch, D)};
    c.state = ex;
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>&, const Ctx<T>& c, const Vec<T>& dy) const {
    auto ex = std::static_pointer_cast<net::Executor<T, net::RefKernels>>(c.state);
    ex->backward(dy[0], /*need_input_grad=*/true);
    return {ex->input_grad(), ex->grads()};
  }
};

}  // namespace

Vjp make_network_vjp(const net::Plan& plan, std::vector<int32_t> labels) {
  if (labels.size() != plan.batch) throw std::invalid_argument("make_network_vjp: one label per example is needed");
  return make_vjp(plan.spec.name, NetworkOp{std::make_shared<const net::Plan>(plan), std::move(labels)});
}

NetCheckReport verify_plan(const net::Plan& plan, uint64_t seed, int trials) {
  auto t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng(seed);
  std::vector<int32_t> labels(plan.batch);
  for (auto& y : labels) y = static_cast<int32_t>(rng() % plan.num_classes);
  Vjp f = make_network_vjp(plan, labels);
  CheckOptions o;
  o.seed = seed;
  o.trials = trials;
  CheckResult r = check_vjp(f, o);
  NetCheckReport rep;
  rep.network = plan.spec.name;
  rep.batch = plan.batch;
  rep.inputs = f.total_in();
  rep.params = plan.n_params;
  rep.trials = r.trials;
  rep.pass = r.pass;
  rep.failure = r.failure;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

NetCheckReport verify_net_spec(const std::string& path, std::optional<size_t> batch, uint64_t seed, int trials) {
  net::NetSpec spec = net::load_netspec(path);
  size_t b = batch ? *batch : (spec.recipe ? spec.recipe->batch : 128);
  double eps = spec.recipe ? spec.recipe->label_smoothing : 0.0;
  return verify_plan(net::compile(spec, b, eps), seed, trials);
}

}  // namespace veridl
