#include "veridl/kernels/isa.hpp"

#include <cstdlib>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdexcept>
#include <string>

namespace veridl::kernels {

namespace {
struct IsaInfo {
  const char* name;
  const char* description;
};
constexpr IsaInfo kIsaInfo[kIsaCount] = {
    {"portable", "the base target (x86-64-v2: SSE4.2), compiler-vectorized loops"},
    {"avx2", "AVX2 + FMA (x86-64-v3), 8-lane kernels"},
    {"avx512", "AVX-512 F/BW/DQ/VL/CD (x86-64-v4), 16-lane kernels"}};
}  // namespace

const char* isa_name(Isa isa) { return kIsaInfo[static_cast<int>(isa)].name; }
const char* isa_description(Isa isa) { return kIsaInfo[static_cast<int>(isa)].description; }

Isa cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // (clang 14's builtin knows no "f16c": the variants do not ask for it either.)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512cd");
  return avx512 ? Isa::Avx512 : avx2 ? Isa::Avx2 : Isa::Portable;
#else
  return Isa::Portable;
#endif
}

std::string cpu_model() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned regs[12] = {};
  unsigned max = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0x80000000u, &max, &b, &c, &d) || max < 0x80000004u) return "unknown CPU";
  for (unsigned leaf = 0; leaf < 3; ++leaf)
    __get_cpuid(0x80000002u + leaf, &regs[4 * leaf], &regs[4 * leaf + 1], &regs[4 * leaf + 2], &regs[4 * leaf + 3]);
  std::string s(reinterpret_cast<const char*>(regs), sizeof(regs));
  s = s.substr(0, s.find('\0'));
  const size_t first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
  return first == std::string::npos ? "unknown CPU" : s.substr(first, last - first + 1);
#else
  return "unknown CPU";
#endif
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (int i = 0; i <= static_cast<int>(cpu_isa()); ++i) v.push_back(static_cast<Isa>(i));
  return v;
}

namespace {
Isa requested_cap() {
  const char* env = std::getenv("VERIDL_ISA");
  if (!env || !*env) return Isa::Avx512;
  const std::string s = env;
  for (int i = 0; i < kIsaCount; ++i)
    if (s == isa_name(static_cast<Isa>(i))) return static_cast<Isa>(i);
  throw std::runtime_error("VERIDL_ISA='" + s + "' is not a kernel variant: expected avx512, avx2 or portable (or unset: the best the CPU runs)");
}
}  // namespace

int detail::decide_isa() {
  const Isa cpu = cpu_isa(), cap = requested_cap();
  const int i = static_cast<int>(cap) < static_cast<int>(cpu) ? static_cast<int>(cap) : static_cast<int>(cpu);
  g_active_isa.store(i, std::memory_order_relaxed);
  return i;
}

Isa active_isa() { return static_cast<Isa>(detail::active_index()); }

void set_active_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(cpu_isa()))
    throw std::invalid_argument(std::string("kernel variant ") + isa_name(isa) + " needs " + isa_description(isa) +
                                ", which this CPU does not have (it runs " + isa_name(cpu_isa()) + ")");
  detail::g_active_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

namespace {
std::atomic<int> g_winograd{-1};  // -1: not read from the environment yet
}  // namespace

Winograd conv_winograd() {
  int v = g_winograd.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("VERIDL_WINOGRAD");
    const std::string s = env ? env : "";
    if (s.empty() || s == "1")
      v = static_cast<int>(Winograd::On);
    else if (s == "0")
      v = static_cast<int>(Winograd::Off);
    else
      throw std::runtime_error("VERIDL_WINOGRAD='" + s + "' is not 0 or 1 (0: 3x3 convolutions by im2col + GEMM; 1 or unset: Winograd F(4x4, 3x3) wherever it applies)");
    g_winograd.store(v, std::memory_order_relaxed);
  }
  return static_cast<Winograd>(v);
}

void set_conv_winograd(Winograd w) { g_winograd.store(static_cast<int>(w), std::memory_order_relaxed); }

const char* winograd_name(Winograd w) { return w == Winograd::Off ? "0" : "1"; }

}  // namespace veridl::kernels
