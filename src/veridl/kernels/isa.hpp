// Runtime ISA dispatch of the float kernels. The library itself is built for a portable x86-64 (CMake's
// VERIDL_BASE_ARCH, x86-64-v2 by default); every fast kernel (prims/<name>/kernel.cpp) is compiled three times,
// once per variant, into its own namespace:
//   isa_portable   the base target's code (SSE4.2): plain loops, vectorized by the compiler
//   isa_avx2       AVX2 + FMA (x86-64-v3): the register-tiled 8-lane kernels
//   isa_avx512     AVX-512 F/BW/DQ/VL/CD (x86-64-v4): the same kernels with 16-lane vectors where written so
// (kernels/target.hpp opens a variant's region). A kernel's public name, e.g. kernels::dense_forward, is a
// Dispatch: a constant table of the three variants' addresses, called through the one chosen at start:
// the best variant the CPU (and OS) supports, capped by the environment variable VERIDL_ISA (avx512, avx2,
// portable). Inside a variant's translation unit an unqualified call (sdpa calling dense_backward_input) finds
// the same variant's function directly.
//
// Declaring a kernel, in its kernel.hpp (inside namespace veridl::kernels):
//   VERIDL_KERNEL(dense_forward, void(const ops::DenseShape& s, const float* x, const float* W, const float* b, float* y));
// and defining it, in its kernel.cpp, inside namespace veridl::kernels::VERIDL_ISA_NS (kernels/target.hpp).
#pragma once

#include <atomic>
#include <string>
#include <type_traits>
#include <vector>

namespace veridl::kernels {

enum class Isa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };
inline constexpr int kIsaCount = 3;

// "portable", "avx2", "avx512" (the values VERIDL_ISA accepts).
const char* isa_name(Isa isa);
// What the variant needs, for messages ("AVX2 + FMA (x86-64-v3)").
const char* isa_description(Isa isa);
// The best variant this CPU and OS can run (cpuid and xgetbv, through the compiler's __builtin_cpu_supports).
Isa cpu_isa();
// The CPU's brand string (cpuid), e.g. "Intel(R) Xeon(R) Processor"; "unknown CPU" when it has none.
std::string cpu_model();
// The variants this CPU can run, lowest first.
std::vector<Isa> supported_isas();
// The variant in use: cpu_isa(), capped by VERIDL_ISA when set. Throws std::runtime_error with a one-line
// message when VERIDL_ISA is not one of the names above. The first kernel call decides it (the CLI asks first,
// so a bad value fails before any work).
Isa active_isa();
// Makes `isa` the variant in use (tests run each supported variant); throws std::invalid_argument when the CPU
// cannot run it. Not to be called while kernels run on other threads.
void set_active_isa(Isa isa);

// Whether the 3x3 stride-1 convolutions take Winograd F(4x4, 3x3) (prims/conv2d/winograd.hpp; the AVX2 and
// AVX-512 variants) rather than im2col + GEMM (another rounding of the same convolution, like a kernel variant):
//   On   (VERIDL_WINOGRAD unset or 1) every eligible one (one group, pads <= 2, 16+ channels in and out)
//   Off  (VERIDL_WINOGRAD=0) none
// Any other value is a std::runtime_error naming it, on the first call. set_conv_winograd overrides the environment
// (tests, benches).
enum class Winograd : int { Off = 0, On = 1 };
Winograd conv_winograd();
void set_conv_winograd(Winograd w);
const char* winograd_name(Winograd w);

namespace detail {
inline std::atomic<int> g_active_isa{-1};  // -1: not decided yet
int decide_isa();
inline int active_index() {
  const int i = g_active_isa.load(std::memory_order_relaxed);
  return i >= 0 ? i : decide_isa();
}
}  // namespace detail

template <class F>
struct Dispatch;

// A kernel's three variants; calling it calls the active one.
template <class R, class... A>
struct Dispatch<R(A...)> {
  R (*variant[kIsaCount])(A...);
  R operator()(A... a) const { return variant[detail::active_index()](static_cast<A>(a)...); }
  R (*at(Isa isa) const)(A...) { return variant[static_cast<int>(isa)]; }
};

// Declares name's three variants (type: the function type) and defines the dispatching kernels::name.
#define VERIDL_KERNEL(name, ...)                                                                      \
  namespace isa_portable {                                                                          \
  std::type_identity_t<__VA_ARGS__> name;                                                           \
  }                                                                                                 \
  namespace isa_avx2 {                                                                              \
  std::type_identity_t<__VA_ARGS__> name;                                                           \
  }                                                                                                 \
  namespace isa_avx512 {                                                                            \
  std::type_identity_t<__VA_ARGS__> name;                                                           \
  }                                                                                                 \
  inline constexpr ::veridl::kernels::Dispatch<__VA_ARGS__> name {                                  \
    { &isa_portable::name, &isa_avx2::name, &isa_avx512::name }                                     \
  }

// The same for a function template of one type parameter (the elementwise activations, one instantiation per
// policy F, made by VERIDL_INSTANTIATE_... in the policy's kernel.cpp): kernels::name<F> dispatches.
#define VERIDL_KERNEL_TEMPLATE(name, ...)                                                             \
  namespace isa_portable {                                                                          \
  template <class F>                                                                                \
  std::type_identity_t<__VA_ARGS__> name;                                                           \
  }                                                                                                 \
  namespace isa_avx2 {                                                                              \
  template <class F>                                                                                \
  std::type_identity_t<__VA_ARGS__> name;                                                           \
  }                                                                                                 \
  namespace isa_avx512 {                                                                            \
  template <class F>                                                                                \
  std::type_identity_t<__VA_ARGS__> name;                                                           \
  }                                                                                                 \
  template <class F>                                                                                \
  inline constexpr ::veridl::kernels::Dispatch<__VA_ARGS__> name {                                  \
    { &isa_portable::name<F>, &isa_avx2::name<F>, &isa_avx512::name<F> }                            \
  }

}  // namespace veridl::kernels
