// Multi-head self-attention as one record (book ch. 10, mhsa_has_vjp_mat_correct): tokens x [T, D] per example,
//   q = x Wq + bq,  k = x Wk + bk,  v = x Wv + bv      (per token: dense on the rows)
//   a = sdpa(q, k, v)                                  (heads, optional causal mask; prims/sdpa/)
//   y = a Wo + bo
// Its backward is the chain rule written out over the records' own backwards: dense (prims/dense/) back through
// the output projection, sdpa back to dq, dk, dv, the three projections back to their weights and to x, where
// the three fan-out gradients add up (the transformer block's attention branch, as the graph engine runs it).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/dense/reference.hpp"
#include "veridl/prims/sdpa/reference.hpp"
#include "veridl/vjp/record.hpp"

namespace veridl::ops {

struct MhsaOp {
  SdpaShape s;  // N examples of T tokens of width D, heads, causal
  std::string mutant;  // "" = the implementation under test

  DenseShape rows() const { return {s.N * s.T, s.D, s.D}; }
  std::vector<std::string> in_names() const { return {"x", "Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo"}; }
  std::vector<size_t> in_sizes() const {
    const size_t W = s.D * s.D;
    return {s.count(), W, s.D, W, s.D, W, s.D, W, s.D};
  }
  size_t out_size() const { return s.count(); }

  enum Saved : size_t { kQ, kK, kV, kA, kM, kInv };

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    Ctx<T> c;
    c.saved = {Vec<T>(s.count()), Vec<T>(s.count()), Vec<T>(s.count()), Vec<T>(s.count()), Vec<T>(s.rows()),
               Vec<T>(s.rows())};
    for (size_t j = 0; j < 3; ++j) dense_forward(rows(), in[0].data(), in[1 + 2 * j].data(), in[2 + 2 * j].data(), c.saved[j].data());
    sdpa_forward(s, c.saved[kQ].data(), c.saved[kK].data(), c.saved[kV].data(), c.saved[kA].data(), c.saved[kM].data(),
                 c.saved[kInv].data(), D);
    c.out.resize(s.count());
    dense_forward(rows(), c.saved[kA].data(), in[7].data(), in[8].data(), c.out.data());
    return c;
  }

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    Ins<T> g;
    for (size_t n : in_sizes()) g.emplace_back(n);
    const DenseShape r = rows();
    Vec<T> da(s.count()), dq(s.count()), dk(s.count()), dv(s.count()), part(s.count());
    dense_backward_input(r, in[7].data(), dy.data(), da.data());  // the output projection
    dense_backward_weight(r, mutant == "dWo_from_v" ? c.saved[kV].data() : c.saved[kA].data(), dy.data(), g[7].data());
    dense_backward_bias(r, dy.data(), g[8].data());
    sdpa_backward(s, c.saved[kQ].data(), c.saved[kK].data(), c.saved[kV].data(), c.saved[kM].data(), c.saved[kInv].data(),
                  da.data(), dq.data(), dk.data(), dv.data());
    if (mutant == "q_k_grads_swapped") std::swap(dq, dk);
    const Vec<T>* d[3] = {&dq, &dk, &dv};
    for (size_t j = 0; j < 3; ++j) {  // the three projections; dx accumulates their fan-out
      dense_backward_weight(r, in[0].data(), d[j]->data(), g[1 + 2 * j].data());
      dense_backward_bias(r, d[j]->data(), g[2 + 2 * j].data());
      dense_backward_input(r, in[1 + 2 * j].data(), d[j]->data(), part.data());
      const bool overwrite = mutant == "dx_fanout_overwrites";  // dx = the last branch's only
      for (size_t e = 0; e < s.count(); ++e) g[0][e] = (j == 0 || overwrite) ? part[e] : g[0][e] + part[e];
    }
    if (!mutant.empty() && mutant != "dWo_from_v" && mutant != "q_k_grads_swapped" && mutant != "dx_fanout_overwrites")
      throw std::invalid_argument("unknown mhsa mutant '" + mutant + "'");
    return g;
  }
};

}  // namespace veridl::ops
