#include "veridl/graph/ir.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include "veridl/util/error.hpp"

namespace veridl::graph {

std::string VShape::str() const { return d.empty() ? "scalar" : fmt::format("{}", fmt::join(d, "x")); }

void Where::fail(const std::string& msg) const { throw Error(source + ": " + prefix + msg); }

namespace {
constexpr size_t kMaxSizeField = size_t{1} << 24;  // any one size field (channels, k, fanIn, batch, ...)
}

Fields::Fields(const nlohmann::json& j, Where where, std::set<std::string> known)
    : j_(j), where_(std::move(where)), known_(std::move(known)) {}

Fields Fields::describe() {
  static const nlohmann::json empty = nlohmann::json::object();
  Fields f(empty, Where{"<describe>", "", {}}, {});
  f.describing_ = true;
  return f;
}

void Fields::use(const char* key, std::string type, std::optional<std::string> dflt) {
  known_.insert(key);
  for (const FieldUse& u : uses_)
    if (u.key == key) return;  // read twice (a block's shared helper): the first read describes it
  uses_.push_back({key, std::move(type), std::move(dflt)});
}

void Fields::allow(const char* key) { use(key, "", std::nullopt); }

const nlohmann::json* Fields::find(const char* key, bool required) {
  if (describing_) return nullptr;
  if (!j_.contains(key)) {
    if (required) where_.fail(fmt::format("missing field '{}'", key));
    return nullptr;
  }
  return &j_.at(key);
}

size_t Fields::size(const char* key, std::optional<size_t> dflt) {
  use(key, "integer", dflt ? std::optional<std::string>(std::to_string(*dflt)) : std::nullopt);
  const nlohmann::json* v = find(key, !dflt);
  if (!v) return dflt.value_or(1);  // describing a required field: a placeholder
  if (!v->is_number_integer() || v->get<long long>() <= 0)
    where_.fail(fmt::format("field '{}' must be a positive integer, got {}", key, v->dump()));
  // No size in a NetSpec comes near this; the cap keeps every product of a few sizes far from 64 bits.
  if (v->get<unsigned long long>() > kMaxSizeField)
    where_.fail(fmt::format("field '{}' is {}, more than the limit of {}", key, v->dump(), kMaxSizeField));
  return v->get<size_t>();
}

size_t Fields::inferable(const char* key) {
  if (!describing_ && !j_.contains(key)) {
    use(key, "integer", "inferred");
    return 0;
  }
  const size_t v = size(key, std::nullopt);
  for (FieldUse& u : uses_)
    if (u.key == key) u.dflt = "inferred";
  return describing_ ? 0 : v;
}

long long Fields::integer(const char* key, long long dflt, long long lo, long long hi) {
  use(key, fmt::format("integer in [{}, {}]", lo, hi), std::to_string(dflt));
  const nlohmann::json* v = find(key, false);
  if (!v) return dflt;
  if (!v->is_number_integer() || v->get<long long>() < lo || v->get<long long>() > hi)
    where_.fail(fmt::format("field '{}' must be an integer in [{}, {}], got {}", key, lo, hi, v->dump()));
  return v->get<long long>();
}

std::string Fields::str(const char* key, std::optional<std::string> dflt) {
  use(key, "string", dflt ? std::optional<std::string>(nlohmann::json(*dflt).dump()) : std::nullopt);
  const nlohmann::json* v = find(key, !dflt);
  if (!v) return dflt.value_or("");
  if (!v->is_string()) where_.fail(fmt::format("field '{}' must be a string, got {}", key, v->dump()));
  return v->get<std::string>();
}

std::string Fields::choice(const char* key, const std::vector<std::string>& allowed, std::optional<std::string> dflt) {
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i)
    list += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + ("\"" + allowed[i] + "\"");
  const std::string v = str(key, dflt);
  for (FieldUse& u : uses_)
    if (u.key == key && u.type == "string") u.type = list;
  if (describing_) return dflt.value_or(allowed.at(0));
  for (const auto& a : allowed)
    if (v == a) return v;
  where_.fail(fmt::format("field '{}' must be {}, got \"{}\"", key, list, v));
}

bool Fields::boolean(const char* key, bool dflt) {
  use(key, "bool", dflt ? "true" : "false");
  const nlohmann::json* v = find(key, false);
  if (!v) return dflt;
  if (!v->is_boolean()) where_.fail(fmt::format("field '{}' must be true or false, got {}", key, v->dump()));
  return v->get<bool>();
}

double Fields::real(const char* key, std::optional<double> dflt) {
  use(key, "number", dflt ? std::optional<std::string>(nlohmann::json(*dflt).dump()) : std::nullopt);
  const nlohmann::json* v = find(key, !dflt);
  if (!v) return dflt.value_or(1.0);
  if (!v->is_number()) where_.fail(fmt::format("field '{}' must be a number, got {}", key, v->dump()));
  return v->get<double>();
}

void Fields::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it)
    if (!known_.count(it.key())) {
      std::string list;
      for (const auto& a : known_) list += (list.empty() ? "" : ", ") + a;
      where_.fail(fmt::format("unknown field '{}' (expected one of: {})", it.key(), list));
    }
}

void Emission::set_dx(const Node& n, size_t i, const hlo::Val& v) {
  const size_t value = n.inputs[i];
  const hlo::Val shaped = v.shape == acts.at(value).shape ? v : b.reshape(v, acts.at(value).shape);
  switch (edges.at(index(n)).at(i)) {
    case EdgeKind::None: return;
    case EdgeKind::Write: dacts.at(value) = shaped; return;
    case EdgeKind::Accumulate: dacts.at(value) = b.add(dacts.at(value), shaped); return;
  }
}

}  // namespace veridl::graph
