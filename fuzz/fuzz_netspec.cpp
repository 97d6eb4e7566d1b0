// libFuzzer harness: parse_netspec on arbitrary text. veridl::Error is the expected outcome of bad input; any other
// exception, crash, hang, leak or sanitizer report is a bug. An accepted spec must also
//   - have sizes whose products fit in 64 bits (input shape, each parameter tensor, each inferred activation shape):
//     a product that wraps is how an oversized layer slips past the size limits and later under-allocates;
//   - survive to_json -> parse_netspec unchanged.
#include <cstdint>
#include <initializer_list>
#include <string>

#include "fuzz_util.hpp"
#include "veridl/net/lower.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/util/error.hpp"

namespace {

// Whether the product of xs fits in 64 bits.
bool product_fits(std::initializer_list<size_t> xs) {
  unsigned __int128 p = 1;
  for (size_t x : xs) {
    p *= x;
    if (p > UINT64_MAX) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace veridl::net;
  using veridl_fuzz::die;
  const std::string text(veridl_fuzz::as_view(data, size));
  NetSpec spec;
  try {
    spec = parse_netspec(text, "<fuzz>");
  } catch (const veridl::Error&) {
    return 0;
  }
  if (!product_fits({spec.channels, spec.imageH, spec.imageW}))
    die("accepted a spec whose input size channels*imageH*imageW overflows 64 bits");
  const veridl::graph::Graph g = lower(spec, "<fuzz>");
  for (const auto& t : g.params) {
    unsigned __int128 p = 1;
    for (int64_t d : t.shape) p *= static_cast<unsigned __int128>(d);
    if (p > UINT64_MAX) die("accepted a spec with a parameter tensor (" + t.name + ") whose size overflows 64 bits");
  }
  for (const auto& v : g.values) {
    unsigned __int128 p = 1;
    for (size_t d : v.shape.d) p *= d;
    if (p > UINT64_MAX) die("accepted a spec with an activation (" + v.name + ") whose size overflows 64 bits");
  }
  if (spec.num_classes() < 2) die("accepted a spec with fewer than 2 classes");
  (void)spec.param_count();

  const nlohmann::json j = spec.to_json();
  NetSpec back;
  try {
    back = parse_netspec(j.dump(), "<round-trip>");
  } catch (const veridl::Error& e) {
    die(std::string("to_json of an accepted spec is rejected: ") + e.what());
  }
  if (back.to_json() != j) die("to_json -> parse_netspec does not round-trip: " + j.dump());
  return 0;
}
