// Subnormal floats flushed to zero during training (MXCSR's FTZ and DAZ bits: results that would be subnormal are
// zero, subnormal inputs read as zero), as TensorFlow and XLA (so JAX) run their CPU threads. An x86 core takes a
// microcode assist for a subnormal operand or result (Intel documents on the order of 100 cycles): a few in a GEMM
// make it many times slower. They appear late in training (an MLP's last epoch under the cosine schedule, whose
// learning rate falls to 0, ran about 20% slower than the others on the Intel Xeon; docs/kernels.md). Values change
// only where a float falls below 2^-126 (1.2e-38), the same in every kernel variant (the SSE, AVX2 and AVX-512
// instructions all follow MXCSR).
#pragma once

#include <vector>

namespace veridl::kernels {

// Sets FTZ and DAZ on the calling thread and on every thread of its OpenMP team (omp_get_max_threads() threads), and
// restores each thread's previous MXCSR when it ends. on = false: changes nothing. Not on x86: nothing.
class FlushSubnormals {
 public:
  explicit FlushSubnormals(bool on);
  ~FlushSubnormals();
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
  std::vector<unsigned> saved_;  // per team thread; empty: nothing set
};

// Whether the calling thread flushes subnormals (both bits set).
bool flushing_subnormals();

}  // namespace veridl::kernels
