#pragma once
// The one exception type VeriDL throws for user-facing failures: bad files, bad specs, bad shapes.
// Messages are a single line that names the file, field or shape at fault.
#include <stdexcept>

namespace veridl {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace veridl
