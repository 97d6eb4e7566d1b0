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

size_t Fields::size(const char* key, std::optional<size_t> dflt) {
  known_.insert(key);
  if (!j_.contains(key)) {
    if (!dflt) where_.fail(fmt::format("missing field '{}'", key));
    return *dflt;
  }
  const nlohmann::json& v = j_.at(key);
  if (!v.is_number_integer() || v.get<long long>() <= 0)
    where_.fail(fmt::format("field '{}' must be a positive integer, got {}", key, v.dump()));
  // No size in a NetSpec comes near this; the cap keeps every product of a few sizes far from 64 bits.
  if (v.get<unsigned long long>() > kMaxSizeField)
    where_.fail(fmt::format("field '{}' is {}, more than the limit of {}", key, v.dump(), kMaxSizeField));
  return v.get<size_t>();
}

std::string Fields::str(const char* key, std::optional<std::string> dflt) {
  known_.insert(key);
  if (!j_.contains(key)) {
    if (!dflt) where_.fail(fmt::format("missing field '{}'", key));
    return *dflt;
  }
  if (!j_.at(key).is_string()) where_.fail(fmt::format("field '{}' must be a string, got {}", key, j_.at(key).dump()));
  return j_.at(key).get<std::string>();
}

std::string Fields::choice(const char* key, const std::vector<std::string>& allowed, std::optional<std::string> dflt) {
  const std::string v = str(key, std::move(dflt));
  for (const auto& a : allowed)
    if (v == a) return v;
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i)
    list += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + ("\"" + allowed[i] + "\"");
  where_.fail(fmt::format("field '{}' must be {}, got \"{}\"", key, list, v));
}

bool Fields::boolean(const char* key, bool dflt) {
  known_.insert(key);
  if (!j_.contains(key)) return dflt;
  if (!j_.at(key).is_boolean()) where_.fail(fmt::format("field '{}' must be true or false, got {}", key, j_.at(key).dump()));
  return j_.at(key).get<bool>();
}

double Fields::real(const char* key, double dflt) {
  known_.insert(key);
  if (!j_.contains(key)) return dflt;
  if (!j_.at(key).is_number()) where_.fail(fmt::format("field '{}' must be a number, got {}", key, j_.at(key).dump()));
  return j_.at(key).get<double>();
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
