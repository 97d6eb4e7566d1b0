// libFuzzer harness: parse_netspec on arbitrary text. veridl::Error is the expected outcome of bad input; any other
// exception, crash, hang, leak or sanitizer report is a bug. An accepted spec must survive to_json -> parse unchanged.
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "veridl/net/netspec.hpp"
#include "veridl/util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace veridl::net;
  const std::string text(veridl_fuzz::as_view(data, size));
  NetSpec spec;
  try {
    spec = parse_netspec(text, "<fuzz>");
  } catch (const veridl::Error&) {
    return 0;
  }
  // Accepted: the derived quantities are consistent and the spec round-trips through its JSON form.
  if (spec.num_classes() < 2) veridl_fuzz::die("accepted a spec with fewer than 2 classes");
  (void)spec.param_count();
  const nlohmann::json j = spec.to_json();
  NetSpec back;
  try {
    back = parse_netspec(j.dump(), "<round-trip>");
  } catch (const veridl::Error& e) {
    veridl_fuzz::die(std::string("to_json of an accepted spec is rejected: ") + e.what());
  }
  if (back.to_json() != j) veridl_fuzz::die("to_json -> parse_netspec does not round-trip: " + j.dump());
  return 0;
}
