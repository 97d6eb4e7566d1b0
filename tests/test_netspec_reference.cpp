// The NetSpec reference (net/reference.hpp): docs/netspec.md's tables are generated from the code that reads
// NetSpecs, and stay so; and the sizes a spec may leave out (fanIn, ic, c, dim, nPatches) are inferred from
// the input, as the reference says.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "net_testutil.hpp"
#include "test_util.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/net/reference.hpp"
#include "veridl/prims/table.hpp"

namespace veridl {
namespace {

using namespace veridl::testutil;
using nlohmann::json;

TEST(NetSpecReference, EveryLayerTypeFieldAndRecipeKeyIsDescribedAndRead) {
  const std::vector<net::LayerRef> layers = net::layer_reference();  // throws on a field read and not described
  std::set<std::string> want, got;
  for (const auto& d : prims::table())
    if (d.layer != graph::LayerUse::Internal) want.insert(d.name);
  for (const auto& b : net::blocks()) want.insert(b.name);
  want.insert("repeat");
  for (const auto& l : layers) {
    got.insert(l.type);
    EXPECT_FALSE(l.inputs.empty()) << l.type;
    EXPECT_FALSE(l.computes.empty()) << l.type;
    for (const auto& f : l.fields) {
      EXPECT_FALSE(f.meaning.empty()) << l.type << "." << f.key;
      EXPECT_FALSE(f.type.empty()) << l.type << "." << f.key;
      EXPECT_FALSE(f.dflt.empty()) << l.type << "." << f.key;
    }
  }
  EXPECT_EQ(got, want);
  EXPECT_GE(net::recipe_reference().size(), 15u);
  EXPECT_GE(net::top_reference().size(), 10u);
}

// Types and defaults are the parse functions' own reads: spot-check a few against what parsing does.
TEST(NetSpecReference, TypesAndDefaultsAreThoseTheParserApplies) {
  auto field = [](const std::string& type, const std::string& key) {
    for (const auto& l : net::layer_reference())
      if (l.type == type)
        for (const auto& f : l.fields)
          if (f.key == key) return f;
    ADD_FAILURE() << type << "." << key << " not in the reference";
    return net::FieldRef{};
  };
  EXPECT_EQ(field("conv2d", "stride").dflt, "1");
  EXPECT_EQ(field("conv2d", "padding").type, "\"same\" or \"valid\"");
  EXPECT_EQ(field("conv2d", "padding").dflt, "same");
  EXPECT_EQ(field("conv2d", "ic").dflt, "inferred");
  EXPECT_EQ(field("conv2d", "oc").dflt, "required");
  EXPECT_EQ(field("dense", "fanIn").dflt, "inferred");
  EXPECT_EQ(field("dense", "activation").dflt, "identity");
  EXPECT_EQ(field("conv2d", "activation").dflt, "relu");
  EXPECT_EQ(field("mbConv", "activation").dflt, "swish");
  EXPECT_EQ(field("maxPool", "stride").dflt, "= size");
  EXPECT_EQ(field("dropout", "rate").dflt, "0.1");
  EXPECT_EQ(field("scale", "by").dflt, "required");
  for (const auto& r : net::recipe_reference()) {
    if (r.key == "augmentCropPad") {
      EXPECT_EQ(r.type, "integer in [0, 64]");
    } else if (r.key == "optimizer") {
      EXPECT_EQ(r.dflt, "sgd");
    } else if (r.key == "lr") {
      EXPECT_EQ(r.dflt, "0.1");
    }
  }
  // What the parser does with a layer that leaves those fields out.
  const net::NetSpec s = net::parse_netspec(
      R"({"name": "d", "layers": [{"type": "maxPool", "size": 2}, {"type": "flatten"}, {"type": "dense", "fanOut": 10}]})",
      "d.json");
  EXPECT_EQ(s.layers[0].fields.at("stride"), 2);
  EXPECT_EQ(s.layers[2].fields.at("activation"), "identity");
}

TEST(NetSpecReference, DocsNetspecMdMatchesTheCode) {
  const std::string path = repo("docs/netspec.md");
  const std::string doc = read_bytes(path);
  EXPECT_EQ(net::with_reference(doc, path), doc)
      << "docs/netspec.md's generated sections differ from the code: run ./build/veridl info --reference-update "
         "docs/netspec.md";
}

// The checks fail when they should.
TEST(NetSpecReference, MutantsAreCaught) {
  // A field read and not described, described and not read, read by other means without a type.
  auto check = [](const char* read, const std::vector<graph::FieldDoc>& docs) {
    graph::Fields f = graph::Fields::describe();
    f.size("k");
    if (read) f.allow(read);
    return net::field_reference("mutant", f, docs);
  };
  EXPECT_NO_THROW(check(nullptr, {{"k", "kernel"}}));
  EXPECT_THROW(check(nullptr, {}), std::logic_error);
  EXPECT_THROW(check(nullptr, {{"k", "kernel"}, {"stride", "step"}}), std::logic_error);
  EXPECT_THROW(check("layers", {{"k", "kernel"}, {"layers", "body"}}), std::logic_error);
  EXPECT_NO_THROW(check("layers", {{"k", "kernel"}, {"layers", "body", "list of layers", "required"}}));
  // A hand edit of a generated default, a row dropped, a missing marker.
  const std::string path = repo("docs/netspec.md");
  const std::string doc = read_bytes(path);
  std::string edited = doc;
  const std::string row = "| `conv2d` | `stride` | positive integer | `1` |";
  ASSERT_NE(edited.find(row), std::string::npos);
  edited.replace(edited.find(row), row.size(), "| `conv2d` | `stride` | positive integer | `2` |");
  EXPECT_NE(net::with_reference(edited, path), edited);
  std::string dropped = doc;
  const size_t at = dropped.find("| `relu6` |");
  ASSERT_NE(at, std::string::npos);
  dropped.erase(at, dropped.find('\n', at) + 1 - at);
  EXPECT_NE(net::with_reference(dropped, path), dropped);
  std::string unmarked = doc;
  const std::string marker = "<!-- end generated: recipe -->";
  unmarked.erase(unmarked.find(marker), marker.size());
  try {
    net::with_reference(unmarked, "x.md");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(mentions(e.what(), {"x.md", "no generated section 'recipe'"}));
  }
}

// ---- inferred sizes ----------------------------------------------------------------------------------------

// `full` with the named fields of some layers erased must lower to the same network (parameters, shapes).
void expect_same_when_left_out(json full, const std::vector<std::pair<size_t, std::string>>& erase) {
  json lean = full;
  for (const auto& [i, key] : erase) {
    ASSERT_TRUE(lean["layers"][i].contains(key)) << i << " " << key;
    lean["layers"][i].erase(key);
  }
  const net::NetSpec a = net::parse_netspec(full.dump(), "full.json");
  const net::NetSpec b = net::parse_netspec(lean.dump(), "lean.json");
  const graph::Graph ga = net::lower(a, "full.json"), gb = net::lower(b, "lean.json");
  ASSERT_EQ(ga.params.size(), gb.params.size());
  for (size_t p = 0; p < ga.params.size(); ++p) {
    EXPECT_EQ(ga.params[p].name, gb.params[p].name);
    EXPECT_EQ(ga.params[p].shape, gb.params[p].shape) << ga.params[p].name;
  }
  ASSERT_EQ(ga.values.size(), gb.values.size());
  for (size_t v = 0; v < ga.values.size(); ++v) EXPECT_EQ(ga.values[v].shape, gb.values[v].shape) << ga.values[v].name;
  // The spec as stored (checkpoints) keeps the fields left out, and reads back to the same network.
  const json stored = b.to_json();
  for (const auto& [i, key] : erase) EXPECT_FALSE(stored["layers"][i].contains(key)) << i << " " << key;
  EXPECT_EQ(net::parse_netspec(stored.dump(), "stored.json").param_count(), a.param_count());
}

TEST(NetSpecInference, ChannelsAndFeaturesLeftOutAreTheInputs) {
  expect_same_when_left_out(json::parse(R"({"name": "cnn", "layers": [
      {"type": "conv2d", "ic": 1, "oc": 8, "k": 3},
      {"type": "convBn", "ic": 8, "oc": 8, "k": 3, "stride": 2},
      {"type": "residualBlock", "ic": 8, "oc": 16, "nBlocks": 2, "firstStride": 2},
      {"type": "invertedResidual", "ic": 16, "oc": 16, "expand": 2},
      {"type": "mbConv", "ic": 16, "oc": 24, "expand": 2, "k": 3},
      {"type": "conv2d", "ic": 24, "oc": 24, "k": 3, "groups": 24},
      {"type": "globalAvgPool"},
      {"type": "dense", "fanIn": 24, "fanOut": 10}]})"),
                            {{0, "ic"}, {1, "ic"}, {2, "ic"}, {3, "ic"}, {4, "ic"}, {5, "ic"}, {7, "fanIn"}});
  expect_same_when_left_out(json::parse(R"({"name": "cnx", "imageH": 32, "imageW": 32, "layers": [
      {"type": "convNextStem", "ic": 1, "oc": 16},
      {"type": "convNextStage", "c": 16, "nBlocks": 1},
      {"type": "convNextDownsample", "ic": 16, "oc": 32},
      {"type": "bottleneckBlock", "ic": 32, "oc": 32},
      {"type": "flatten"},
      {"type": "dense", "fanIn": 512, "fanOut": 10}]})"),
                            {{0, "ic"}, {1, "c"}, {2, "ic"}, {3, "ic"}, {5, "fanIn"}});
  expect_same_when_left_out(json::parse(R"({"name": "vit", "layers": [
      {"type": "patchEmbed", "ic": 1, "dim": 16, "p": 7, "nPatches": 16},
      {"type": "transformerEncoder", "dim": 16, "heads": 2, "mlpDim": 32},
      {"type": "dense", "fanIn": 16, "fanOut": 10}]})"),
                            {{0, "ic"}, {0, "nPatches"}, {1, "dim"}, {2, "fanIn"}});
}

TEST(NetSpecInference, AGivenSizeStillHasToMatchAndALeftOutOneNeedsAnInputThatHasIt) {
  auto error = [](const std::string& layers) {
    try {
      net::parse_netspec(R"({"name": "e", "layers": [)" + layers + "]}", "e.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_TRUE(mentions(error(R"({"type": "conv2d", "ic": 3, "oc": 4, "k": 3}, {"type": "flatten"}, {"type": "dense", "fanOut": 2})"),
                       {"e.json: layer 0 (conv2d): ic is 3 but the incoming activation has 1 channels"}));
  EXPECT_TRUE(mentions(error(R"({"type": "conv2d", "oc": 4, "k": 3}, {"type": "dense", "fanOut": 2})"),
                       {"e.json: layer 1 (dense): needs a flat input: add a flatten layer"}));
  EXPECT_TRUE(mentions(error(R"({"type": "flatten"}, {"type": "convBn", "oc": 4, "k": 3}, {"type": "dense", "fanOut": 2})"),
                       {"e.json: layer 1 (convBn): field 'ic' left out, to be inferred from the input, but the input is 784"}));
  EXPECT_TRUE(mentions(error(R"({"type": "conv2d", "oc": 4, "k": 3, "groups": 3}, {"type": "flatten"}, {"type": "dense", "fanOut": 2})"),
                       {"layer 0 (conv2d): field 'groups' is 3, but ic (1) and oc (4) must both be multiples of it"}));
  EXPECT_TRUE(mentions(error(R"({"type": "dense", "fanIn": 0, "fanOut": 2})"),
                       {"layer 0 (dense): field 'fanIn' must be a positive integer, got 0"}));
}

TEST(NetSpecInference, InfoShowsTheInferredSizes) {
  const std::filesystem::path dir = std::filesystem::path(VERIDL_TEST_RUNS) / "netspec_reference";
  std::filesystem::create_directories(dir);
  write_bytes(dir / "lean.json",
              R"({"name": "lean", "layers": [{"type": "conv2d", "oc": 4, "k": 3}, {"type": "flatten"}, {"type": "dense", "fanOut": 10}]})");
  const Cmd c = sh("info --spec " + (dir / "lean.json").string());
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("40 params ic=1 k=3 oc=4 padding=same stride=1"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("31370 params fanIn=3136 fanOut=10"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("layers.0.relu"), std::string::npos) << c.out;  // the activation node
}

TEST(NetSpecReference, InfoPrintsAndUpdatesTheSections) {
  const Cmd c = sh("info --reference");
  ASSERT_EQ(c.status, 0) << c.out;
  for (const auto& [name, text] : net::reference_sections()) EXPECT_NE(c.out.find(text), std::string::npos) << name;
  const std::filesystem::path dir = std::filesystem::path(VERIDL_TEST_RUNS) / "netspec_reference";
  std::filesystem::create_directories(dir);
  const std::string doc = read_bytes(repo("docs/netspec.md"));
  std::string stale = doc;
  stale.replace(stale.find("| `relu6` |"), 11, "| `relu7` |");
  write_bytes(dir / "netspec.md", stale);
  const Cmd u = sh("info --reference-update " + (dir / "netspec.md").string());
  ASSERT_EQ(u.status, 0) << u.out;
  EXPECT_NE(u.out.find("generated sections rewritten"), std::string::npos) << u.out;
  EXPECT_EQ(read_bytes(dir / "netspec.md"), doc);
  const Cmd again = sh("info --reference-update " + (dir / "netspec.md").string());
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace veridl
