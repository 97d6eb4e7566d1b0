// The optimizers' elementwise updates: see kernel.hpp for the contract and the bit-identity argument.
//
// Each is one loop without branches over restrict pointers, so that the compiler vectorizes it in every variant:
// the per-element decay flag selects a coefficient w (wd on weights, 0 elsewhere) that always multiplies, because
// GCC 12 does not if-convert "flag ? wd * p : 0" (for finite values the two are the same number); -fno-math-errno,
// set for the whole build, lets sqrt vectorize.
#include "veridl/prims/optimizer/kernel.hpp"

#include <cmath>

#include "veridl/kernels/parallel.hpp"

#include "veridl/kernels/target.hpp"

namespace veridl::kernels::VERIDL_ISA_NS {
namespace {

template <bool Momentum>
void sgd_range(size_t n, float* __restrict p, const float* __restrict g, float* __restrict vel,
               const uint8_t* __restrict dm, float lr, float wd, float mu) {
  for (size_t i = 0; i < n; ++i) {
    const float w = dm[i] ? wd : 0.0f;
    float gi = g[i] + w * p[i];
    if constexpr (Momentum) {
      gi = mu * vel[i] + gi;
      vel[i] = gi;
    }
    p[i] -= lr * gi;
  }
}

template <AdamDecay Form>
void adam_range(size_t n, float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                const uint8_t* __restrict dm, AdamConsts k) {
  for (size_t i = 0; i < n; ++i) {
    const float pi = Form == AdamDecay::Before && dm[i] ? p[i] * k.before : p[i];
    const float w = dm[i] ? k.wd : 0.0f;
    const float gi = Form == AdamDecay::Coupled ? g[i] + w * pi : g[i];
    const float mi = k.b1 * m[i] + k.omb1 * gi;
    const float vi = k.b2 * v[i] + k.omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float q = pi - k.step * mi / (std::sqrt(vi) * k.isb2 + k.eps);
    p[i] = Form == AdamDecay::After ? q - k.lr * w * q : q;
  }
}

}  // namespace

void sgd_update(size_t n, float* p, const float* g, float* vel, const uint8_t* decay, float lr, float wd, float mu) {
  for_chunks(n, n, [&](size_t lo, size_t hi) {
    if (vel)
      sgd_range<true>(hi - lo, p + lo, g + lo, vel + lo, decay + lo, lr, wd, mu);
    else
      sgd_range<false>(hi - lo, p + lo, g + lo, nullptr, decay + lo, lr, wd, mu);
  });
}

void adam_update(AdamDecay form, size_t n, float* p, const float* g, float* m, float* v, const uint8_t* decay,
                 const AdamConsts& k) {
  for_chunks(n, n, [&](size_t lo, size_t hi) {
    switch (form) {
      case AdamDecay::Coupled:
        return adam_range<AdamDecay::Coupled>(hi - lo, p + lo, g + lo, m + lo, v + lo, decay + lo, k);
      case AdamDecay::After:
        return adam_range<AdamDecay::After>(hi - lo, p + lo, g + lo, m + lo, v + lo, decay + lo, k);
      case AdamDecay::Before:
        return adam_range<AdamDecay::Before>(hi - lo, p + lo, g + lo, m + lo, v + lo, decay + lo, k);
    }
  });
}

}  // namespace veridl::kernels::VERIDL_ISA_NS

#include "veridl/kernels/target_end.hpp"
