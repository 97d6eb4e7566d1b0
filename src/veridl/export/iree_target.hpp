// The IREE devices `veridl train --device iree:<driver>` runs on, and the iree-compile flags of each: one table for
// the IREE trainer (python/veridl/iree.py, through veridl._core.iree_compile_flags) and the compile tests
// (tests/test_export.cpp compiles docs/gpu.md's GPU target matrix with these flags).
#pragma once

#include <string>
#include <vector>

namespace veridl::hlo {

struct IreeTarget {
  std::string driver;              // the IREE runtime driver: local-task, local-sync, cuda, hip, vulkan
  std::string target;              // the compiler target: a CPU name ("host") or a GPU architecture ("sm_80")
  std::vector<std::string> flags;  // iree-compile's flags for them
};

// "iree:<driver>" (as --device takes it) and the --iree-target value ("" = the default: "host" for the CPU drivers;
// the GPU drivers have none, their architecture must be given). Throws veridl::Error naming --device or --iree-target.
IreeTarget iree_target(const std::string& device, const std::string& target);

// The devices --device accepts, for messages and help: "native, iree:local-task, ...".
std::string device_names();

}  // namespace veridl::hlo
