// Opens the region of one kernel variant in a prims/<name>/kernel.cpp, which CMake compiles three times with
// VERIDL_ISA_LEVEL 0, 1, 2 (kernels/isa.hpp). Include it after every other #include of the file, put the kernels
// in namespace veridl::kernels::VERIDL_ISA_NS, and end the file with #include "veridl/kernels/target_end.hpp".
//
// The variant's instruction set is a function attribute on every function defined in the region (GCC's
// #pragma GCC target, clang's #pragma clang attribute), not a command-line -m flag: the inline functions and
// templates of the headers included before it (the standard library's among them) keep the base target, so
// the copy the linker keeps of, say, std::vector<float>::resize never holds AVX-512 instructions that a
// lesser CPU would fault on (tests/test_isa.cpp checks the binaries for that). Code in the region tests
// VERIDL_ISA_AVX2 / VERIDL_ISA_AVX512, not __AVX2__ (a pragma does not set the compiler's ISA macros in C++).
#ifndef VERIDL_ISA_LEVEL
#error "kernels/target.hpp: compile this file through CMake's per-ISA kernel objects (VERIDL_ISA_LEVEL is not set)"
#endif

#if VERIDL_ISA_LEVEL == 0
#define VERIDL_ISA_NS isa_portable
#define VERIDL_ISA_AVX2 0
#define VERIDL_ISA_AVX512 0
#elif VERIDL_ISA_LEVEL == 1
#define VERIDL_ISA_NS isa_avx2
#define VERIDL_ISA_AVX2 1
#define VERIDL_ISA_AVX512 0
#define VERIDL_ISA_TARGET "avx2,fma,bmi,bmi2,lzcnt,movbe,popcnt"
#elif VERIDL_ISA_LEVEL == 2
#define VERIDL_ISA_NS isa_avx512
#define VERIDL_ISA_AVX2 1
#define VERIDL_ISA_AVX512 1
#define VERIDL_ISA_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,lzcnt,movbe,popcnt"
#else
#error "VERIDL_ISA_LEVEL must be 0, 1 or 2"
#endif

#include <immintrin.h>

#ifdef VERIDL_ISA_TARGET
#define VERIDL_ISA_PRAGMA_(x) _Pragma(#x)
#if defined(__clang__)
#define VERIDL_ISA_PRAGMA(t) VERIDL_ISA_PRAGMA_(clang attribute push(__attribute__((target(t))), apply_to = function))
#else
#pragma GCC push_options
#define VERIDL_ISA_PRAGMA(t) VERIDL_ISA_PRAGMA_(GCC target(t))
#endif
VERIDL_ISA_PRAGMA(VERIDL_ISA_TARGET)
#endif
