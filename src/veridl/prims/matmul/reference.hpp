// matmul (the matrix kit, book ch. 10): the product of two activations, batched over a leading group axis:
//   a [G, M, K],  b [G, K, P] (or with transposeB, b [G, P, K]),  y[g] = a[g] b[g]  (or a[g] b[g]^T)   [G, M, P]
// (per example; G = 1 for two token values [M, K] and [K, P]).
//   VJP  da[g] = dy[g] b[g]^T (transposeB: dy[g] b[g]),   db[g] = a[g]^T dy[g] (transposeB: dy[g]^T a[g])
//                                                        matmul_back_A_correct, matmul_back_B_correct
// Bilinear: no atoms, no decisions.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct MatmulShape {
  size_t N = 1, G = 1, M = 1, K = 1, P = 1;
  bool transpose_b = false;
  size_t a_count() const { return N * G * M * K; }
  size_t b_count() const { return N * G * K * P; }
  size_t y_count() const { return N * G * M * P; }
  size_t groups() const { return N * G; }
  // Element (k, p) of b in group q: b[q K P + k P + p], or with transposeB b[q P K + p K + k].
  size_t bi(size_t q, size_t k, size_t p) const { return transpose_b ? (q * P + p) * K + k : (q * K + k) * P + p; }
  std::string str() const {
    return "N=" + std::to_string(N) + " G=" + std::to_string(G) + " " + std::to_string(M) + "x" + std::to_string(K) +
           (transpose_b ? " by (" + std::to_string(P) + "x" + std::to_string(K) + ")^T" : " by " + std::to_string(K) + "x" + std::to_string(P));
  }
};

template <class T>
void matmul_forward(const MatmulShape& s, const T* a, const T* b, T* y) {
  for (size_t q = 0; q < s.groups(); ++q)
    for (size_t m = 0; m < s.M; ++m)
      for (size_t p = 0; p < s.P; ++p) {
        T acc = T(0);
        for (size_t k = 0; k < s.K; ++k) acc += a[(q * s.M + m) * s.K + k] * b[s.bi(q, k, p)];
        y[(q * s.M + m) * s.P + p] = acc;
      }
}

// Overwrites da and db; either may be nullptr when not wanted.
template <class T>
void matmul_backward(const MatmulShape& s, const T* a, const T* b, const T* dy, T* da, T* db) {
  if (da)
    for (size_t q = 0; q < s.groups(); ++q)
      for (size_t m = 0; m < s.M; ++m)
        for (size_t k = 0; k < s.K; ++k) {
          T acc = T(0);
          for (size_t p = 0; p < s.P; ++p) acc += dy[(q * s.M + m) * s.P + p] * b[s.bi(q, k, p)];
          da[(q * s.M + m) * s.K + k] = acc;
        }
  if (db)
    for (size_t q = 0; q < s.groups(); ++q)
      for (size_t k = 0; k < s.K; ++k)
        for (size_t p = 0; p < s.P; ++p) {
          T acc = T(0);
          for (size_t m = 0; m < s.M; ++m) acc += a[(q * s.M + m) * s.K + k] * dy[(q * s.M + m) * s.P + p];
          db[s.bi(q, k, p)] = acc;
        }
}

struct MatmulOp {
  MatmulShape s;
  std::vector<std::string> in_names() const { return {"a", "b"}; }
  std::vector<size_t> in_sizes() const { return {s.a_count(), s.b_count()}; }
  size_t out_size() const { return s.y_count(); }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions&) const {
    Ctx<T> c;
    c.out.resize(s.y_count());
    matmul_forward(s, in[0].data(), in[1].data(), c.out.data());
    return c;
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>&, const Vec<T>& dy) const {
    Ins<T> g{Vec<T>(s.a_count()), Vec<T>(s.b_count())};
    matmul_backward(s, in[0].data(), in[1].data(), dy.data(), g[0].data(), g[1].data());
    return g;
  }
};

// Broken backwards (veridl verify --mutants; Contracts.EveryMutantIsRejected).
struct MatmulMutantOp : MatmulOp {
  std::string kind;
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g = MatmulOp::backward(in, c, dy);
    const T* a = in[0].data();
    const T* b = in[1].data();
    auto set_da = [&](auto b_at) {
      for (size_t q = 0; q < s.groups(); ++q)
        for (size_t m = 0; m < s.M; ++m)
          for (size_t k = 0; k < s.K; ++k) {
            T acc = T(0);
            for (size_t p = 0; p < s.P; ++p) acc += dy[(q * s.M + m) * s.P + p] * b_at(q, k, p);
            g[0][(q * s.M + m) * s.K + k] = acc;
          }
    };
    if (kind == "da_next_b_row") {  // da[m, k] reads row k + 1 of b (an off-by-one)
      set_da([&](size_t q, size_t k, size_t p) { return b[s.bi(q, (k + 1) % s.K, p)]; });
    } else if (kind == "da_first_group_b") {  // every group's da built from group 0's b
      set_da([&](size_t, size_t k, size_t p) { return b[s.bi(0, k, p)]; });
    } else if (kind == "db_first_group_a") {  // every group's db built from group 0's a
      for (size_t q = 0; q < s.groups(); ++q)
        for (size_t k = 0; k < s.K; ++k)
          for (size_t p = 0; p < s.P; ++p) {
            T acc = T(0);
            for (size_t m = 0; m < s.M; ++m) acc += a[m * s.K + k] * dy[(q * s.M + m) * s.P + p];
            g[1][s.bi(q, k, p)] = acc;
          }
    } else if (kind == "db_next_dy_row") {  // dy's row m + 1 paired with a's row m
      for (size_t q = 0; q < s.groups(); ++q)
        for (size_t k = 0; k < s.K; ++k)
          for (size_t p = 0; p < s.P; ++p) {
            T acc = T(0);
            for (size_t m = 0; m < s.M; ++m) acc += a[(q * s.M + m) * s.K + k] * dy[(q * s.M + (m + 1) % s.M) * s.P + p];
            g[1][s.bi(q, k, p)] = acc;
          }
    } else if (kind == "db_scale_1.0001") {
      for (auto& v : g[1]) v *= T(1.0001);
    } else if (kind == "da_sign") {
      for (auto& v : g[0]) v = -v;
    } else {
      throw std::invalid_argument("unknown matmul mutant '" + kind + "'");
    }
    return g;
  }
};

}  // namespace veridl::ops
