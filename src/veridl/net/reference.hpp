// The NetSpec reference (docs/netspec.md's generated tables), made from the code that reads NetSpecs: every
// layer type of the primitive table and every block, each field with its type and default as its parse
// function reads it (graph::Fields::describe()) and its meaning from the layer's LayerDoc (a primitive's
// prims/<name>/doc.cpp, a block's net/blocks_doc.cpp), the top-level fields and the recipe keys likewise.
// A field read and not described, or described and not read, is a std::logic_error naming both: the
// NetSpecReference tests fail on it, and on a docs/netspec.md whose generated sections differ from these.
// `veridl info --reference` prints the sections; `veridl info --reference-update FILE` rewrites them in FILE.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "veridl/graph/ir.hpp"

namespace veridl::net {

struct FieldRef {
  std::string key, type, dflt, meaning;  // dflt: "required", "inferred", the default as a spec writes it, or prose
  bool literal = false;                  // dflt is a value (shown as code), not "required"/"inferred"/prose
};
struct LayerRef {
  std::string type;  // "dense", "convBn", "repeat"
  bool block = false;
  std::string inputs, computes;
  std::vector<FieldRef> fields;
};

// The reference of one field list: the reads `f` recorded (a parse function run on graph::Fields::describe()),
// each with its doc; throws std::logic_error naming `what` and the field when they disagree.
std::vector<FieldRef> field_reference(const std::string& what, const graph::Fields& f,
                                      const std::vector<graph::FieldDoc>& docs);
std::vector<FieldRef> top_reference();
std::vector<FieldRef> recipe_reference();
std::vector<LayerRef> layer_reference();  // the layer types, sorted by name

// The generated sections of docs/netspec.md, in order: {name, markdown}. In the file each stands between
// "<!-- generated: NAME (veridl info --reference-update docs/netspec.md) -->" and "<!-- end generated: NAME -->".
std::vector<std::pair<std::string, std::string>> reference_sections();
// `doc` with every generated section replaced by today's; throws veridl::Error naming `path` when a section's
// markers are missing.
std::string with_reference(const std::string& doc, const std::string& path);

}  // namespace veridl::net
