// The primitive table as a whole (src/veridl/prims/all.hpp): it lists exactly the primitives we expect; every
// entry is complete (its interface, registered contracts with mutants, examples that parse and infer), so a
// half-added primitive fails here; and one generic differential test walks the table and runs every
// primitive's fast float32 kernels against its templated double reference on each of its examples, through
// the same dispatch tables the executor uses (forward / backward, output, every dx, every parameter gradient,
// the running state, the integer decisions saved for the backward; Train and Eval); and every fast kernel runs
// twice, its outputs and every kernel's scratch dirtied in between, for the same bits.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "veridl/calculus/decisions.hpp"
#include "veridl/graph/ir.hpp"
#include "veridl/kernels/scratch.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/vjp/registry.hpp"

namespace {

using namespace veridl;
using graph::Decl;
using graph::Elem;
using graph::Example;
using graph::Fields;
using graph::Mode;
using graph::VShape;
using graph::Where;
using prims::OpDef;

std::string at(const OpDef& d, const Example& ex) { return fmt::format("primitive '{}', example '{}'", d.name, ex.label); }

// Parse the example's fields and infer its shapes, as the NetSpec lowering does.
struct Parsed {
  std::shared_ptr<void> attrs;
  VShape out;
  Decl decl;
};
Parsed parse_infer(const OpDef& d, const Example& ex) {
  const Where w{d.name, "", {}};
  Fields f(ex.fields, w);
  Parsed p;
  p.attrs = d.parse(f);
  f.finish();
  p.out = d.infer(p.attrs.get(), ex.inputs, w);
  d.declare(p.attrs.get(), p.decl);
  return p;
}

size_t count(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t x : shape) n *= static_cast<size_t>(x);
  return n;
}

// ---- the list -----------------------------------------------------------------------------------------------

TEST(PrimitiveTable, ListsExactlyTheExpectedPrimitivesInOrder) {
  const std::vector<std::string> expected = {"flatten", "dense",     "conv2d", "batchNorm", "relu",
                                             "maxPool", "softmaxCE", "add",    "mul",       "relu6",
                                             "avgPool", "globalAvgPool", "sigmoid", "swish", "hardSwish",
                                             "gelu",    "geluErf", "layerNorm", "layerScale", "dropout", "dropPath",
                                             "sdpa",    "patchTokens", "clsPool", "matmul", "transpose", "splitHeads",
                                             "mergeHeads", "scale", "softmax"};
  std::vector<std::string> names;
  for (const OpDef& d : prims::table()) names.push_back(d.name);
  EXPECT_EQ(names, expected);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size()) << "names are not unique";
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(prims::index_of(names[i]), i) << names[i];
    EXPECT_EQ(prims::find(names[i]), &prims::table()[i]) << names[i];
  }
  EXPECT_EQ(prims::find("noSuchPrimitive"), nullptr);
}

// ---- completeness -------------------------------------------------------------------------------------------

TEST(PrimitiveTable, EveryEntryIsComplete) {
  const Registry& reg = builtin_contracts();
  std::vector<std::string> without_contracts;
  for (const OpDef& d : prims::table()) {
    SCOPED_TRACE("primitive '" + d.name + "'");
    EXPECT_FALSE(d.name.empty());
    ASSERT_TRUE(d.parse && d.to_json && d.infer && d.declare && d.emit_forward && d.emit_backward && d.contracts &&
                d.register_contracts && d.examples)
        << "primitive '" << d.name << "' has a missing table entry";
    EXPECT_GE(d.inputs, 1u) << d.name;
    if (d.layer == graph::LayerUse::LayerWithActivation) {
      EXPECT_NE(d.activation, nullptr) << d.name;
    }

    const std::vector<std::string> cs = d.contracts();
    if (cs.empty()) without_contracts.push_back(d.name);
    size_t mutants = 0;
    for (const std::string& c : cs) {
      const Contract* k = reg.find(c);
      EXPECT_NE(k, nullptr) << "primitive '" << d.name << "' lists contract '" << c
                            << "', which builtin_contracts() does not register";
      if (k) mutants += k->mutants.size();
    }
    // Its own register_contracts registers every contract it lists (builtin_contracts() is built from the
    // table); it may register more (softmaxCE: plain softmax's contract too).
    Registry own;
    d.register_contracts(own);
    for (const std::string& c : cs) {
      EXPECT_NE(own.find(c), nullptr) << "primitive '" << d.name << "' lists contract '" << c
                                      << "', which its register_contracts does not register";
    }
    if (!cs.empty()) {
      EXPECT_GE(mutants, 3u) << "primitive '" << d.name << "': its contracts have only " << mutants << " mutants";
    }

    const std::vector<Example> exs = d.examples();
    EXPECT_FALSE(exs.empty()) << "primitive '" << d.name << "' has no examples";
    for (const Example& ex : exs) {
      EXPECT_FALSE(ex.label.empty()) << d.name;
      EXPECT_EQ(ex.inputs.size(), d.inputs) << at(d, ex) << ": input shapes vs OpDef::inputs";
      Parsed p;
      try {
        p = parse_infer(d, ex);
      } catch (const std::exception& e) {
        ADD_FAILURE() << at(d, ex) << ": parse/infer/declare threw: " << e.what();
        continue;
      }
      EXPECT_GT(p.out.size(), 0u) << at(d, ex);
      EXPECT_EQ(p.decl.bwd_reads_input.size(), d.inputs) << at(d, ex) << ": Decl::bwd_reads_input per input";
      for (const auto& pd : p.decl.params) EXPECT_GT(count(pd.shape), 0u) << at(d, ex) << ": param " << pd.name;
      if (!p.decl.batched_output) {
        EXPECT_EQ(p.out.size(), 1u) << at(d, ex) << ": an unbatched output is one scalar";
      }

      // to_json writes the attributes back in a form parse accepts, and is stable.
      nlohmann::json j = nlohmann::json::object();
      d.to_json(p.attrs.get(), j);
      try {
        const Where w{d.name, "", {}};
        Fields f(j, w);
        auto again = d.parse(f);
        f.finish();
        nlohmann::json j2 = nlohmann::json::object();
        d.to_json(again.get(), j2);
        EXPECT_EQ(j, j2) << at(d, ex) << ": to_json -> parse -> to_json is not stable";
      } catch (const std::exception& e) {
        ADD_FAILURE() << at(d, ex) << ": to_json output does not parse: " << e.what();
      }

      if (cs.empty()) {
        EXPECT_TRUE(p.decl.view) << at(d, ex) << ": a primitive without contracts must be a view";
      }
    }
  }
  // Only a pure reindexing may go without a contract.
  EXPECT_EQ(without_contracts, std::vector<std::string>{"flatten"});
}

// ---- the generic differential test: fast float32 kernels against the double reference -----------------------

// Every buffer a node's Decl asks for, for one batch size, in scalar T; the Call points into them.
template <class T>
struct Buffers {
  std::vector<std::vector<T>> in, p, g, saved, state, dx;
  std::vector<std::vector<uint8_t>> saved8;
  std::vector<std::vector<uint32_t>> saved32;
  std::vector<std::vector<double>> saved64;
  std::vector<T> out, dy;
  std::vector<int32_t> labels;
  Decisions D;
  graph::Call<T> call;

  Buffers(const Example& ex, const Parsed& pr, size_t n) {
    const Decl& dc = pr.decl;
    const size_t out_n = dc.batched_output ? n * pr.out.size() : pr.out.size();
    for (const VShape& s : ex.inputs) {
      in.emplace_back(n * s.size());
      dx.emplace_back(n * s.size());
    }
    out.resize(out_n);
    dy.resize(out_n);
    for (const auto& pd : dc.params) {
      p.emplace_back(count(pd.shape));
      g.emplace_back(count(pd.shape));
    }
    for (const auto& sd : dc.saved) {
      const size_t k = sd.per_example * n + sd.fixed;
      if (sd.elem == Elem::Scalar) saved.emplace_back(k, std::numeric_limits<T>::quiet_NaN());
      else if (sd.elem == Elem::U8) saved8.emplace_back(k);
      else if (sd.elem == Elem::F64) saved64.emplace_back(k, std::numeric_limits<double>::quiet_NaN());
      else saved32.emplace_back(k);
    }
    for (const auto& sd : dc.state) state.emplace_back(sd.size, static_cast<T>(sd.init));

    call.n = n;
    for (auto& v : in) call.in.push_back(v.data());
    call.out = out.data();
    for (auto& v : p) call.p.push_back(v.data());
    for (auto& v : g) call.g.push_back(v.data());
    for (auto& v : saved) call.saved.push_back(v.data());
    for (auto& v : saved8) call.saved8.push_back(v.data());
    for (auto& v : saved32) call.saved32.push_back(v.data());
    for (auto& v : saved64) call.saved64.push_back(v.data());
    for (auto& v : state) call.state.push_back(v.data());
    call.dy = dy.data();
    for (auto& v : dx) call.dx.push_back(v.data());
    call.mode = Mode::Train;
    call.D = &D;
    call.running_momentum = 0.1;
  }
};

// The same values, rounded to float, for both backends.
struct Filler {
  std::mt19937_64 rng;
  std::normal_distribution<float> normal{0.0f, 1.0f};
  explicit Filler(uint64_t seed) : rng(seed) {}
  void fill(std::vector<float>& f, std::vector<double>& d, bool positive = false) {
    for (size_t i = 0; i < f.size(); ++i) {
      float x = normal(rng);
      if (positive) x = std::fabs(x) + 0.5f;
      f[i] = x;
      d[i] = static_cast<double>(x);
    }
  }
};

// max |f - d| <= 1e-4 (1 + max |d|), NaN fails.
::testing::AssertionResult close(const std::vector<float>& f, const std::vector<double>& d, const std::string& what) {
  if (f.size() != d.size()) return ::testing::AssertionFailure() << what << ": size " << f.size() << " vs " << d.size();
  double maxref = 0.0;
  for (double x : d) maxref = std::max(maxref, std::fabs(x));
  const double tol = 1e-4 * (1.0 + maxref);
  for (size_t i = 0; i < d.size(); ++i) {
    const double e = std::fabs(static_cast<double>(f[i]) - d[i]);
    if (!(e <= tol))
      return ::testing::AssertionFailure() << what << ": element " << i << " of " << d.size() << ": fast " << f[i]
                                           << ", reference " << d[i] << " (error " << e << ", tolerance " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

template <class U>
::testing::AssertionResult same(const std::vector<U>& a, const std::vector<U>& b, const std::string& what) {
  if (a == b) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < std::min(a.size(), b.size()) && a[i] == b[i]) ++i;
  return ::testing::AssertionFailure() << what << ": differs at element " << i;
}

void differential(size_t op, const OpDef& d, const Example& ex, size_t n, uint64_t seed) {
  const std::string where = fmt::format("{}, n={}", at(d, ex), n);
  Parsed pr;
  try {
    pr = parse_infer(d, ex);
  } catch (const std::exception& e) {
    ADD_FAILURE() << where << ": parse/infer threw: " << e.what();
    return;
  }
  const Decl& dc = pr.decl;
  Buffers<float> F(ex, pr, n);
  Buffers<double> R(ex, pr, n);

  Filler fl(seed);
  for (size_t i = 0; i < F.in.size(); ++i) fl.fill(F.in[i], R.in[i]);
  for (size_t i = 0; i < F.p.size(); ++i) fl.fill(F.p[i], R.p[i]);
  for (size_t i = 0; i < F.state.size(); ++i) fl.fill(F.state[i], R.state[i], dc.state[i].init > 0);
  // Gradient buffers start with the same garbage: both backends must agree on what they write.
  for (size_t i = 0; i < F.g.size(); ++i) fl.fill(F.g[i], R.g[i]);
  for (size_t i = 0; i < F.dx.size(); ++i) fl.fill(F.dx[i], R.dx[i]);
  if (dc.batched_output) {
    fl.fill(F.dy, R.dy);
  } else {  // the loss: its output gradient is dL = 1
    F.dy.assign(F.dy.size(), 0.0f);
    R.dy.assign(R.dy.size(), 0.0);
    F.dy[0] = 1.0f;
    R.dy[0] = 1.0;
  }
  if (!dc.batched_output) {  // the loss: n labels < classes
    const size_t K = ex.inputs[0].d[0];
    for (size_t b = 0; b < n; ++b) F.labels.push_back(static_cast<int32_t>((b * 7 + seed) % K));
    R.labels = F.labels;
    F.call.labels = F.labels.data();
    R.call.labels = R.labels.data();
  }

  const auto fwd_f = prims::forward_fn<float, graph::Fast>(op);
  const auto bwd_f = prims::backward_fn<float, graph::Fast>(op);
  const auto fwd_r = prims::forward_fn<double, graph::Ref>(op);
  const auto bwd_r = prims::backward_fn<double, graph::Ref>(op);
  const void* a = pr.attrs.get();

  try {
    // Train: forward (updating running state with momentum 0.1), then backward.
    fwd_f(a, F.call);
    fwd_r(a, R.call);
    EXPECT_TRUE(close(F.out, R.out, where + ": train forward output"));
    for (size_t i = 0; i < F.state.size(); ++i)
      EXPECT_TRUE(close(F.state[i], R.state[i], fmt::format("{}: state '{}' after the train forward", where, dc.state[i].name)));
    for (size_t i = 0; i < F.saved8.size(); ++i) EXPECT_TRUE(same(F.saved8[i], R.saved8[i], where + ": saved u8"));
    for (size_t i = 0; i < F.saved32.size(); ++i) EXPECT_TRUE(same(F.saved32[i], R.saved32[i], where + ": saved u32"));

    bwd_f(a, F.call);
    bwd_r(a, R.call);
    for (size_t i = 0; i < F.dx.size(); ++i) EXPECT_TRUE(close(F.dx[i], R.dx[i], fmt::format("{}: dx[{}]", where, i)));
    for (size_t i = 0; i < F.g.size(); ++i)
      EXPECT_TRUE(close(F.g[i], R.g[i], fmt::format("{}: gradient of '{}'", where, dc.params[i].name)));

    // Eval: forward only.
    F.call.mode = R.call.mode = Mode::Eval;
    std::fill(F.out.begin(), F.out.end(), std::numeric_limits<float>::quiet_NaN());
    std::fill(R.out.begin(), R.out.end(), std::numeric_limits<double>::quiet_NaN());
    fwd_f(a, F.call);
    fwd_r(a, R.call);
    EXPECT_TRUE(close(F.out, R.out, where + ": eval forward output"));
    for (size_t i = 0; i < F.state.size(); ++i)
      EXPECT_TRUE(close(F.state[i], R.state[i], fmt::format("{}: state '{}' after the eval forward", where, dc.state[i].name)));
  } catch (const std::exception& e) {
    ADD_FAILURE() << where << ": threw: " << e.what();
  }
}

TEST(PrimitiveTable, EveryFastKernelMatchesTheReference) {
  const auto& t = prims::table();
  size_t cases = 0;
  for (size_t op = 0; op < t.size(); ++op) {
    const auto exs = t[op].examples();
    for (size_t e = 0; e < exs.size(); ++e)
      for (size_t n : {size_t{3}, size_t{1}}) {
        differential(op, t[op], exs[e], n, 1000 * op + 10 * e + n);
        ++cases;
      }
  }
  EXPECT_GE(cases, 2 * t.size());
}

// ---- the same bits from dirty buffers: every fast kernel, called again after its outputs, the buffers it saves
// for its backward and every kernel's per-thread scratch (kernels/scratch.hpp) are filled with garbage ----------

struct FastRun {
  std::vector<float> out, eval_out;
  std::vector<std::vector<float>> saved, state, dx, g;
  std::vector<std::vector<uint8_t>> saved8;
  std::vector<std::vector<uint32_t>> saved32;
  std::vector<std::vector<double>> saved64;
};

// The first differing element of two float buffers by bits (NaN payloads included), or -1.
long first_bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<long>(i);
  return -1;
}

std::vector<std::string> bit_differences(const FastRun& x, const FastRun& y) {
  std::vector<std::string> bad;
  auto cmp = [&](const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    const long i = first_bit_difference(a, b);
    if (i >= 0)
      bad.push_back(fmt::format("{}: element {} is {} clean, {} after the dirtying", what, i,
                                a.empty() ? 0.0f : a[size_t(i)], b.empty() ? 0.0f : b[size_t(i)]));
  };
  cmp(x.out, y.out, "train forward output");
  cmp(x.eval_out, y.eval_out, "eval forward output");
  for (size_t i = 0; i < x.saved.size(); ++i) cmp(x.saved[i], y.saved[i], fmt::format("saved[{}]", i));
  for (size_t i = 0; i < x.state.size(); ++i) cmp(x.state[i], y.state[i], fmt::format("state[{}]", i));
  for (size_t i = 0; i < x.dx.size(); ++i) cmp(x.dx[i], y.dx[i], fmt::format("dx[{}]", i));
  for (size_t i = 0; i < x.g.size(); ++i) cmp(x.g[i], y.g[i], fmt::format("gradient {}", i));
  if (x.saved8 != y.saved8) bad.push_back("a saved u8 buffer differs");
  if (x.saved32 != y.saved32) bad.push_back("a saved u32 buffer differs");
  for (size_t i = 0; i < x.saved64.size(); ++i)
    if (x.saved64[i].size() != y.saved64[i].size() ||
        std::memcmp(x.saved64[i].data(), y.saved64[i].data(), x.saved64[i].size() * sizeof(double)) != 0)
      bad.push_back(fmt::format("saved f64[{}] differs", i));
  return bad;
}

// Runs op's fast train forward, backward and eval forward on an example twice: on the buffers as the
// differential test fills them, then with every output and saved buffer garbage (NaN, all-ones integers) and
// every kernel scratch poisoned; the running state is reset before each run. The differences of the two runs.
std::vector<std::string> dirtied_rerun(size_t op, const OpDef& d, const Example& ex, size_t n, uint64_t seed) {
  const Parsed pr = parse_infer(d, ex);
  const Decl& dc = pr.decl;
  Buffers<float> F(ex, pr, n);
  Buffers<double> unused(ex, pr, n);
  Filler fl(seed);
  for (size_t i = 0; i < F.in.size(); ++i) fl.fill(F.in[i], unused.in[i]);
  for (size_t i = 0; i < F.p.size(); ++i) fl.fill(F.p[i], unused.p[i]);
  for (size_t i = 0; i < F.state.size(); ++i) fl.fill(F.state[i], unused.state[i], dc.state[i].init > 0);
  if (dc.batched_output) {
    fl.fill(F.dy, unused.dy);
  } else {
    F.dy.assign(F.dy.size(), 0.0f);
    F.dy[0] = 1.0f;
    const size_t K = ex.inputs[0].d[0];
    for (size_t b = 0; b < n; ++b) F.labels.push_back(static_cast<int32_t>((b * 7 + seed) % K));
    F.call.labels = F.labels.data();
  }
  const std::vector<std::vector<float>> state0 = F.state;
  const auto fwd = prims::forward_fn<float, graph::Fast>(op);
  const auto bwd = prims::backward_fn<float, graph::Fast>(op);
  const void* a = pr.attrs.get();
  auto run = [&] {
    for (size_t i = 0; i < F.state.size(); ++i) std::copy(state0[i].begin(), state0[i].end(), F.state[i].begin());
    FastRun r;
    F.call.mode = Mode::Train;
    fwd(a, F.call);
    r.out = F.out;
    bwd(a, F.call);
    r.saved = F.saved;
    r.saved8 = F.saved8;
    r.saved32 = F.saved32;
    r.saved64 = F.saved64;
    r.dx = F.dx;
    r.g = F.g;
    F.call.mode = Mode::Eval;
    fwd(a, F.call);
    r.eval_out = F.out;
    r.state = F.state;
    return r;
  };
  const FastRun clean = run();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto dirty = [&](auto& bufs, auto value) {
    for (auto& b : bufs) std::fill(b.begin(), b.end(), value);
  };
  std::fill(F.out.begin(), F.out.end(), nan);
  dirty(F.saved, nan);
  dirty(F.dx, nan);
  dirty(F.g, nan);
  dirty(F.saved8, uint8_t{0xff});
  dirty(F.saved32, uint32_t{0xffffffff});
  dirty(F.saved64, std::numeric_limits<double>::quiet_NaN());
  kernels::poison_scratch();
  return bit_differences(clean, run());
}

TEST(PrimitiveTable, EveryFastKernelGivesTheSameBitsAfterItsOutputsAndScratchAreDirtied) {
  const auto& t = prims::table();
  size_t cases = 0;
  for (size_t op = 0; op < t.size(); ++op) {
    const auto exs = t[op].examples();
    for (size_t e = 0; e < exs.size(); ++e)
      for (size_t n : {size_t{3}, size_t{1}}) {
        const std::string where = fmt::format("{}, n={}", at(t[op], exs[e]), n);
        try {
          for (const std::string& m : dirtied_rerun(op, t[op], exs[e], n, 1000 * op + 10 * e + n))
            ADD_FAILURE() << where << ": " << m;
        } catch (const std::exception& ex) {
          ADD_FAILURE() << where << ": threw: " << ex.what();
        }
        ++cases;
      }
  }
  EXPECT_GE(cases, 2 * t.size());
}

}  // namespace
