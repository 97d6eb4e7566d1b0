#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "veridl/cli.hpp"
#include "veridl/util/error.hpp"

namespace veridl::cli {

net::NetSpec checkpoint_spec(const train::Checkpoint& ck, const std::string& ck_path, const Args& a) {
  if (auto sp = a.get("--spec")) return net::load_netspec(*sp);
  auto it = ck.metadata.find("spec");
  if (it == ck.metadata.end()) throw Error(ck_path + ": checkpoint has no 'spec' metadata; pass --spec FILE");
  return net::parse_netspec(it->second, ck_path + " (metadata 'spec')");
}

Args::Args(int argc, char** argv, int first, const std::vector<std::string>& value_flags,
           const std::vector<std::string>& switches) {
  auto known = [](const std::vector<std::string>& v, const std::string& a) {
    return std::find(v.begin(), v.end(), a) != v.end();
  };
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    std::optional<std::string> inline_value;  // --flag=value
    if (const size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      a.resize(eq);
    }
    if (known(switches, a)) {
      if (inline_value) throw Error("option " + a + " takes no value (got '" + a + "=" + *inline_value + "')");
      if (known(switches_on_, a)) throw Error("option " + a + " is given twice");
      switches_on_.push_back(a);
    } else if (known(value_flags, a)) {
      if (!inline_value && i + 1 >= argc) throw Error("option " + a + " needs a value");
      std::string v = inline_value ? *inline_value : argv[++i];
      if (auto it = values_.find(a); it != values_.end())
        throw Error("option " + a + " is given twice ('" + it->second + "' and '" + v + "'): give it once");
      values_[a] = std::move(v);
    } else {
      throw Error("unknown option '" + a + "' (see --help)");
    }
  }
}

std::optional<std::string> Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}
bool Args::has(const std::string& flag) const {
  return std::find(switches_on_.begin(), switches_on_.end(), flag) != switches_on_.end() || values_.count(flag);
}
std::string Args::str(const std::string& flag, const std::string& dflt) const { return get(flag).value_or(dflt); }

std::optional<long long> Args::opt_integer(const std::string& flag, long long min, long long max) const {
  auto v = get(flag);
  if (!v) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v->c_str(), &end, 10);
  if (errno || end == v->c_str() || *end)
    throw Error("option " + flag + ": '" + *v + "' is not an integer");
  if (n < min || n > max)
    throw Error("option " + flag + ": " + *v + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return n;
}
long long Args::integer(const std::string& flag, long long dflt, long long min, long long max) const {
  return opt_integer(flag, min, max).value_or(dflt);
}
std::optional<double> Args::opt_real(const std::string& flag) const {
  auto v = get(flag);
  if (!v) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end || !std::isfinite(d)) throw Error("option " + flag + ": '" + *v + "' is not a number");
  return d;
}
double Args::real(const std::string& flag, double dflt) const { return opt_real(flag).value_or(dflt); }

}  // namespace veridl::cli
