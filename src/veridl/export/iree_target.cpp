#include "veridl/export/iree_target.hpp"

#include <fmt/core.h>

#include <algorithm>

#include "veridl/util/error.hpp"
#include "veridl/util/text.hpp"

namespace veridl::hlo {

namespace {
struct Driver {
  const char* name;
  const char* hal_device;  // --iree-hal-target-device
  const char* target_flag;
  const char* example;  // a target that compiles (docs/gpu.md's table); "" for the CPU
};
constexpr Driver kDrivers[] = {
    {"local-task", "local", "--iree-llvmcpu-target-cpu", ""},
    {"local-sync", "local", "--iree-llvmcpu-target-cpu", ""},
    {"cuda", "cuda", "--iree-cuda-target", "sm_80"},
    {"hip", "hip", "--iree-rocm-target", "gfx942"},
    {"vulkan", "vulkan", "--iree-vulkan-target", "rdna3"},
};
}  // namespace

std::string device_names() {
  std::string s = "native";
  for (const Driver& d : kDrivers) s += fmt::format(", iree:{}", d.name);
  return s;
}

IreeTarget iree_target(const std::string& device, const std::string& target) {
  const std::string prefix = "iree:";
  const Driver* drv = nullptr;
  if (device.rfind(prefix, 0) == 0)
    for (const Driver& d : kDrivers)
      if (device.substr(prefix.size()) == d.name) drv = &d;
  if (!drv)
    throw Error(fmt::format("--device: '{}' is not supported (supported: {})", printable(device, 80), device_names()));
  const bool cpu = std::string(drv->example).empty();
  if (!cpu && target.empty())
    throw Error(fmt::format("--device {} needs --iree-target, the GPU's architecture (e.g. {}; docs/gpu.md lists the "
                            "targets IREE 3.13 compiles)",
                            device, drv->example));
  const bool ok = !target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
  if (!target.empty() && !ok)
    throw Error(fmt::format("--iree-target: '{}' is not a target name (letters, digits, '_', '-', '.')", printable(target, 80)));
  IreeTarget t;
  t.driver = drv->name;
  t.target = target.empty() ? "host" : target;
  t.flags.push_back(fmt::format("--iree-hal-target-device={}", drv->hal_device));
  if (cpu) t.flags.push_back("--iree-hal-local-target-device-backends=llvm-cpu");
  t.flags.push_back(fmt::format("{}={}", drv->target_flag, t.target));
  // On the CPU, convolutions as im2col + matmul: the BN CNN's train step at batch 32 ran in 0.72 s instead of 2.2 s
  // here (IREE 3.13; docs/gpu.md), for half again the compile time.
  if (cpu) t.flags.push_back("--iree-global-opt-use-im2col-for-convs");
  return t;
}

}  // namespace veridl::hlo
