// Closes the variant region opened by kernels/target.hpp (the last line of a kernel.cpp).
#ifdef VERIDL_ISA_TARGET
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
