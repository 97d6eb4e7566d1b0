// Plans checked against the spec independently (issue 20 item 3). Every check here compares what the engine's plan
// resolved (each conv2d / maxPool / avgPool node's pads and output extent) with numbers the test obtains on its
// own: a hand-written table, and the test's own "same"/"valid" arithmetic written from the definitions in
// docs/netspec.md (not from ops::conv_pads), applied to the spec's JSON as the test reads it. The mutation test
// re-injects the bug of a plan that maps padStyle the wrong way round (util/plumbing_fault.hpp) and requires
// the checks to fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/prims/avgPool/primitive.hpp"
#include "veridl/prims/conv2d/primitive.hpp"
#include "veridl/prims/maxPool/primitive.hpp"
#include "veridl/prims/table.hpp"
#include "veridl/util/plumbing_fault.hpp"

namespace plan_pads_test {  // named, not anonymous: the unity build puts other test files' helpers beside these

using veridl::testutil::repo;

// One spatial dimension: input n, window k, stride s, "same" or "valid"; the pads (lo = top/left, hi =
// bottom/right) and output extent under xlaSame and under symmetric, worked out by hand.
struct PadRow {
  const char* op;  // "conv2d", "maxPool" (same iff size > stride), "avgPool"
  size_t n, k, s;
  bool same;
  size_t xla_lo, xla_hi, xla_out;
  size_t sym_lo, sym_hi, sym_out;
};

// clang-format off
constexpr PadRow kPadTable[] = {
    // op        n    k  s  same   xlaSame      symmetric
    {"conv2d",   28,  3, 2, true,  0, 1, 14,    1, 1, 14},  // the example
    {"conv2d",   56,  3, 2, true,  0, 1, 28,    1, 1, 28},
    {"conv2d",   27,  3, 2, true,  1, 1, 14,    1, 1, 14},  // odd n: the styles agree
    {"conv2d",   13,  3, 2, true,  1, 1,  7,    1, 1,  7},
    {"conv2d",   28,  3, 1, true,  1, 1, 28,    1, 1, 28},
    {"conv2d",   28,  3, 3, true,  1, 1, 10,    1, 1, 10},
    {"conv2d",   28,  1, 2, true,  0, 0, 14,    0, 0, 14},  // k1
    {"conv2d",    7,  1, 2, true,  0, 0,  4,    0, 0,  4},
    {"conv2d",   28,  5, 2, true,  1, 2, 14,    2, 2, 14},  // k5
    {"conv2d",   14,  5, 2, true,  1, 2,  7,    2, 2,  7},
    {"conv2d",    9,  5, 2, true,  2, 2,  5,    2, 2,  5},
    {"conv2d",  224,  7, 2, true,  2, 3, 112,   3, 3, 112}, // ResNet's stem
    {"conv2d",   14,  7, 2, true,  2, 3,  7,    3, 3,  7},
    {"conv2d",    7,  7, 2, true,  3, 3,  4,    3, 3,  4},
    {"conv2d",   28,  4, 1, true,  1, 2, 28,    1, 1, 27},  // an even kernel: symmetric loses a row
    {"conv2d",   28,  3, 2, false, 0, 0, 13,    0, 0, 13},  // valid
    {"conv2d",    9,  5, 2, false, 0, 0,  3,    0, 0,  3},
    {"maxPool", 112,  3, 2, true,  0, 1, 56,    1, 1, 56},  // ResNet's 3x3/2 max-pool, "pad 1" in torchvision
    {"maxPool",  14,  3, 2, true,  0, 1,  7,    1, 1,  7},
    {"maxPool",   7,  3, 2, true,  1, 1,  4,    1, 1,  4},
    {"maxPool",  28,  2, 2, false, 0, 0, 14,    0, 0, 14},  // size == stride: valid
    {"maxPool",   7,  2, 2, false, 0, 0,  3,    0, 0,  3},
    {"avgPool",  28,  3, 2, true,  0, 1, 14,    1, 1, 14},
    {"avgPool",   2,  3, 2, true,  0, 1,  1,    1, 1,  1},
    {"avgPool",  28,  2, 2, false, 0, 0, 14,    0, 0, 14},
};
// clang-format on

struct Expect1d {
  size_t lo, hi, out;
  friend bool operator==(const Expect1d&, const Expect1d&) = default;
};

// The test's own arithmetic, from the definitions (docs/netspec.md, padStyle): "valid" pads nothing; symmetric
// pads floor((k - 1) / 2) on both sides; xlaSame (XLA / TensorFlow SAME) makes the output ceil(n / s) and pads
// the cells that needs, max((out - 1) s + k - n, 0), the odd one at the high end. The output extent is then the
// number of window positions in the padded input.
Expect1d pads_by_definition(size_t n, size_t k, size_t s, bool same, bool xla) {
  size_t lo = 0, hi = 0;
  if (same && !xla) lo = hi = (k - 1) / 2;
  if (same && xla) {
    const size_t want = n / s + (n % s != 0);
    const long total = std::max(0L, static_cast<long>((want - 1) * s + k) - static_cast<long>(n));
    lo = static_cast<size_t>(total) / 2;
    hi = static_cast<size_t>(total) - lo;
  }
  size_t out = 0;
  for (size_t start = 0; start + k <= n + lo + hi; start += s) ++out;
  return {lo, hi, out};
}

std::string op_name(const veridl::graph::Node& n) { return veridl::prims::table()[n.op].name; }

// A window node's parameters and the pads its plan resolved.
struct WindowNode {
  size_t k, stride;
  bool same;
  size_t pt, pb, pl, pr;
};
std::optional<WindowNode> window_of(const veridl::graph::Node& n) {
  namespace P = veridl::prims;
  const std::string op = op_name(n);
  if (op == "conv2d") {
    const auto& a = n.attrs_as<P::Conv2d::Attrs>();
    return WindowNode{a.k, a.stride, a.same, a.shape.pad_top, a.shape.pad_bottom, a.shape.pad_left, a.shape.pad_right};
  }
  if (op == "maxPool") {
    const auto& a = n.attrs_as<P::MaxPool::Attrs>();
    return WindowNode{a.size, a.stride, a.size > a.stride, a.shape.pad_top, a.shape.pad_bottom, a.shape.pad_left,
                      a.shape.pad_right};
  }
  if (op == "avgPool") {
    const auto& a = n.attrs_as<P::AvgPool::Attrs>();
    return WindowNode{a.size, a.stride, a.same, a.shape.pad_top, a.shape.pad_bottom, a.shape.pad_left, a.shape.pad_right};
  }
  return std::nullopt;
}

struct PadReport {
  std::vector<std::string> mismatches;
  size_t windows = 0;        // conv / pool nodes checked
  size_t style_matters = 0;  // of those, the ones whose pads differ between the two styles
};

// Every conv2d / maxPool / avgPool node of g against pads_by_definition under the style `xla`: its pads, and its
// output extent (the value the next node reads, so the input extents are checked along the whole graph).
void check_windows(const veridl::graph::Graph& g, bool xla, const std::string& what, PadReport& r) {
  for (const auto& n : g.nodes) {
    const std::optional<WindowNode> w = window_of(n);
    if (!w) continue;
    ++r.windows;
    const auto& x = g.values[n.inputs[0]].shape;
    const auto& y = g.values[n.output].shape;
    const Expect1d eh = pads_by_definition(x.d[1], w->k, w->stride, w->same, xla);
    const Expect1d ew = pads_by_definition(x.d[2], w->k, w->stride, w->same, xla);
    const Expect1d other = pads_by_definition(x.d[1], w->k, w->stride, w->same, !xla);
    r.style_matters += !(other == eh);
    const Expect1d got_h{w->pt, w->pb, y.d[1]}, got_w{w->pl, w->pr, y.d[2]};
    if (!(got_h == eh) || !(got_w == ew))
      r.mismatches.push_back(fmt::format(
          "{} {} ({} k{} s{} {} on {}x{}, {}): plan pads (t{},b{},l{},r{}) output {}x{}, expected (t{},b{},l{},r{}) "
          "output {}x{}",
          what, n.name, op_name(n), w->k, w->stride, w->same ? "same" : "valid", x.d[1], x.d[2],
          xla ? "xlaSame" : "symmetric", w->pt, w->pb, w->pl, w->pr, y.d[1], y.d[2], eh.lo, eh.hi, ew.lo, ew.hi, eh.out,
          ew.out));
  }
}

// The top-level layers of a spec's JSON, walked by the test alone from imageH x imageW: every conv2d, convBn,
// maxPool and avgPool layer's output extent by pads_by_definition (its fields and their documented defaults read
// from the JSON), for as long as the layers are ones whose spatial effect the test knows (elementwise layers keep
// it); the plan's node of each such layer must have that output and the JSON's window and stride.
void check_json_chain(const nlohmann::json& spec, const veridl::graph::Graph& g, const std::string& what,
                      PadReport& r) {
  const bool xla = spec.value("padStyle", std::string("xlaSame")) == "xlaSame";
  size_t H = spec.value("imageH", size_t{28}), W = spec.value("imageW", size_t{28});
  static const std::vector<std::string> keeps = {"relu", "relu6", "batchNorm", "sigmoid", "swish", "hardSwish",
                                                 "gelu", "geluErf", "dropout", "layerNorm", "layerScale"};
  const auto& layers = spec.at("layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    const std::string type = l.at("type");
    if (std::find(keeps.begin(), keeps.end(), type) != keeps.end()) continue;
    const bool conv = type == "conv2d" || type == "convBn";
    if (!conv && type != "maxPool" && type != "avgPool") return;  // a block, flatten, ...: the walk ends here
    const size_t k = conv ? l.at("k").get<size_t>() : l.at("size").get<size_t>();
    const size_t s = l.value("stride", conv ? size_t{1} : k);
    const bool same = type == "maxPool" ? k > s : l.value("padding", std::string(conv ? "same" : "valid")) == "same";
    const Expect1d eh = pads_by_definition(H, k, s, same, xla), ew = pads_by_definition(W, k, s, same, xla);
    const std::string name = l.value("name", "layers." + std::to_string(i));
    auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const auto& n) { return n.name == name; });
    if (it == g.nodes.end()) {
      r.mismatches.push_back(fmt::format("{} layer {} ({}): no node named {} in the plan", what, i, type, name));
      return;
    }
    const std::optional<WindowNode> w = window_of(*it);
    const auto& y = g.values[it->output].shape;
    if (!w || w->k != k || w->stride != s || w->same != same || y.d.size() != 3 || y.d[1] != eh.out ||
        y.d[2] != ew.out)
      r.mismatches.push_back(fmt::format("{} layer {} ({} k{} s{} {} on {}x{}): the plan's node {} is {} with output "
                                         "{}, the spec's JSON gives {}x{}",
                                         what, i, type, k, s, same ? "same" : "valid", H, W, name, op_name(*it),
                                         y.str(), eh.out, ew.out));
    H = eh.out;
    W = ew.out;
  }
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// One row of the table as a spec: the row's window on an n x n image, then a head.
std::string row_spec(const PadRow& row, bool xla) {
  nlohmann::json win = {{"type", row.op}};
  if (std::string(row.op) == "conv2d") {
    win.update({{"ic", 1}, {"oc", 2}, {"k", row.k}, {"stride", row.s}, {"padding", row.same ? "same" : "valid"}});
  } else {
    win.update({{"size", row.k}, {"stride", row.s}});
    if (std::string(row.op) == "avgPool") win["padding"] = row.same ? "same" : "valid";
  }
  const size_t c = std::string(row.op) == "conv2d" ? 2 : 1;
  nlohmann::json spec = {{"name", "pad-table"},
                         {"imageH", row.n},
                         {"imageW", row.n},
                         {"channels", 1},
                         {"padStyle", xla ? "xlaSame" : "symmetric"},
                         {"layers",
                          {win,
                           {{"type", "globalAvgPool"}},
                           {{"type", "dense"}, {"fanIn", c}, {"fanOut", 2}, {"activation", "identity"}}}}};
  return spec.dump();
}

// The table against the plans of its one-window specs: the mismatches.
std::vector<std::string> table_vs_plans() {
  std::vector<std::string> bad;
  for (const PadRow& row : kPadTable)
    for (bool xla : {true, false}) {
      const veridl::graph::Graph g = veridl::net::lower(veridl::net::parse_netspec(row_spec(row, xla)), "pad-table");
      const veridl::graph::Node& n = g.nodes.at(0);
      const std::optional<WindowNode> w = window_of(n);
      const auto& y = g.values[n.output].shape;
      const size_t lo = xla ? row.xla_lo : row.sym_lo, hi = xla ? row.xla_hi : row.sym_hi;
      const size_t out = xla ? row.xla_out : row.sym_out;
      if (!w || w->pt != lo || w->pb != hi || w->pl != lo || w->pr != hi || y.d[1] != out || y.d[2] != out)
        bad.push_back(fmt::format("{} {}x{} k{} s{} {} ({}): plan pads (t{},b{}) output {}, the table says ({},{}) {}",
                                  row.op, row.n, row.n, row.k, row.s, row.same ? "same" : "valid",
                                  xla ? "xlaSame" : "symmetric", w ? w->pt : 0, w ? w->pb : 0, y.d[1], lo, hi, out));
    }
  return bad;
}

std::vector<std::string> shipped_specs() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(repo("specs")))
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// A spec under its own padStyle and under the other: the checks of both walks.
PadReport check_spec_both_styles(const std::string& file) {
  PadReport r;
  const nlohmann::json j = nlohmann::json::parse(read_text(file));
  const std::string name = std::filesystem::path(file).filename().string();
  for (bool flip : {false, true}) {
    nlohmann::json s = j;
    const bool xla = (s.value("padStyle", std::string("xlaSame")) == "xlaSame") != flip;
    s["padStyle"] = xla ? "xlaSame" : "symmetric";
    const std::string what = name + (flip ? " (padStyle flipped to " : " (") + std::string(s["padStyle"]) + ")";
    const veridl::graph::Graph g = veridl::net::lower(veridl::net::parse_netspec(s.dump(), what), what);
    check_windows(g, xla, what, r);
    check_json_chain(s, g, what, r);
  }
  return r;
}

TEST(PlanPads, TheHandTableAgreesWithTheTestsArithmetic) {
  for (const PadRow& row : kPadTable) {
    const bool same = std::string(row.op) == "maxPool" ? row.k > row.s : row.same;
    ASSERT_EQ(same, row.same) << row.op << " k" << row.k << " s" << row.s;
    EXPECT_EQ(pads_by_definition(row.n, row.k, row.s, same, true), (Expect1d{row.xla_lo, row.xla_hi, row.xla_out}))
        << row.op << " n" << row.n << " k" << row.k << " s" << row.s << " xlaSame";
    EXPECT_EQ(pads_by_definition(row.n, row.k, row.s, same, false), (Expect1d{row.sym_lo, row.sym_hi, row.sym_out}))
        << row.op << " n" << row.n << " k" << row.k << " s" << row.s << " symmetric";
  }
}

TEST(PlanPads, EveryWindowOfTheTableIsPlannedAsTheTableSays) {
  for (const std::string& m : table_vs_plans()) ADD_FAILURE() << m;
}

// Every spec in specs/ (whatever is shipped: the list is read from the directory), under its own padStyle and the
// other one: every conv and pool node's pads and output extent by the definition, and the top-level layers'
// extents walked from the JSON.
TEST(PlanPads, EveryShippedSpecsWindowsArePlannedByTheDefinitionUnderBothPadStyles) {
  const std::vector<std::string> files = shipped_specs();
  ASSERT_GE(files.size(), 25u) << "specs/ lost files?";
  size_t windows = 0, style_matters = 0;
  for (const std::string& f : files) {
    const PadReport r = check_spec_both_styles(f);
    for (const std::string& m : r.mismatches) ADD_FAILURE() << m;
    windows += r.windows;
    style_matters += r.style_matters;
  }
  // Not vacuous: 1404 windows over both styles today, 96 of them with pads that depend on the style.
  EXPECT_GE(windows, 1400u) << windows << " windows";
  EXPECT_GE(style_matters, 90u) << style_matters << " windows whose pads depend on the style";
}

// specs/mnist_strided_same.json exists to exercise strided "same" windows whose pads depend on the style: four of
// its layers do (conv 3x3/2 on 28, convBn 7x7/2 on 14, convBn 5x5/2 on 4, avgPool 3x3/2 "same" on 2), in the order
// the spec's description lists, and the plan gives the table's numbers for them.
TEST(PlanPads, TheStridedSameSpecPadsAsTheTableSaysInBothStyles) {
  const nlohmann::json j = nlohmann::json::parse(read_text(repo("specs/mnist_strided_same.json")));
  EXPECT_EQ(j.value("padStyle", std::string()), "xlaSame");
  struct Want {
    const char* node;
    size_t xla_lo, xla_hi, sym_lo, sym_hi, out;
  };
  const Want want[] = {{"layers.0", 0, 1, 1, 1, 14}, {"layers.1", 2, 3, 3, 3, 7}, {"layers.2", 1, 1, 1, 1, 7},
                       {"layers.3", 1, 1, 1, 1, 4},  {"layers.4", 1, 2, 2, 2, 2}, {"layers.5", 0, 1, 1, 1, 1},
                       {"layers.6", 0, 0, 0, 0, 1}};
  for (bool xla : {true, false}) {
    nlohmann::json s = j;
    s["padStyle"] = xla ? "xlaSame" : "symmetric";
    const veridl::graph::Graph g = veridl::net::lower(veridl::net::parse_netspec(s.dump()), "strided-same");
    for (const Want& w : want) {
      auto it = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const auto& n) { return n.name == w.node; });
      ASSERT_NE(it, g.nodes.end()) << w.node;
      const std::optional<WindowNode> win = window_of(*it);
      ASSERT_TRUE(win) << w.node;
      const size_t lo = xla ? w.xla_lo : w.sym_lo, hi = xla ? w.xla_hi : w.sym_hi;
      EXPECT_EQ(win->pt, lo) << w.node << (xla ? " xlaSame" : " symmetric");
      EXPECT_EQ(win->pb, hi) << w.node << (xla ? " xlaSame" : " symmetric");
      EXPECT_EQ(win->pl, lo) << w.node << (xla ? " xlaSame" : " symmetric");
      EXPECT_EQ(win->pr, hi) << w.node << (xla ? " xlaSame" : " symmetric");
      EXPECT_EQ(g.values[it->output].shape.d.at(1), w.out) << w.node;
    }
  }
  EXPECT_EQ(check_spec_both_styles(repo("specs/mnist_strided_same.json")).style_matters, 8u);  // 4 per style
}

// The mutant: a plan that maps padStyle the wrong way round (PlumbingFault::PadStyleSwapped in net::lower). Every
// check above must then fail: the table on each of its rows whose styles differ (11 rows, both styles), and the
// strided-same spec on its four style-dependent layers under both styles.
TEST(PlanPads, APlanThatSwapsThePadStyleFailsTheChecks) {
  size_t differing_rows = 0;
  for (const PadRow& row : kPadTable)
    differing_rows += row.xla_lo != row.sym_lo || row.xla_hi != row.sym_hi || row.xla_out != row.sym_out;
  ASSERT_EQ(differing_rows, 11u);
  ASSERT_TRUE(table_vs_plans().empty());
  ASSERT_TRUE(check_spec_both_styles(repo("specs/mnist_strided_same.json")).mismatches.empty());
  veridl::ScopedPlumbingFault fault(veridl::PlumbingFault::PadStyleSwapped);
  EXPECT_EQ(table_vs_plans().size(), 2 * differing_rows);
  const PadReport r = check_spec_both_styles(repo("specs/mnist_strided_same.json"));
  // 4 window nodes per style (their odd kernels give the same extents in both styles, so the JSON walk, which
  // compares extents, finds nothing more).
  EXPECT_EQ(r.mismatches.size(), 8u);
  for (const std::string& m : r.mismatches) EXPECT_NE(m.find("expected"), std::string::npos) << m;
}

}  // namespace plan_pads_test
