// The pre-norm transformer encoder block as one record (book ch. 10, transformerBlock_has_vjp_mat_correct), on
// tokens x [T, D] per example, MLP width M, LayerNorm eps 1e-6 (the transformerEncoder block, net/lower.cpp):
//   a = LN1(x);  h = x + MHSA(a);  b = LN2(h);  y = h + fc2(geluErf(fc1(b)))
// Its backward is the chain rule written out over the pieces' own backwards: the MLP branch (dense, the GELU
// derivative, dense), LayerNorm 2, the residual fan-in (dh = dy + the branch's), multi-head attention
// (mhsa.hpp), LayerNorm 1 and the second residual (dx = dh + the branch's).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "veridl/prims/geluErf/primitive.hpp"
#include "veridl/prims/layerNorm/reference.hpp"
#include "veridl/prims/models/mhsa.hpp"

namespace veridl::ops {

struct TransformerBlockOp {
  SdpaShape s;         // N examples of T tokens of width D, heads, causal
  size_t M = 1;        // MLP width
  std::string mutant;  // "" = the implementation under test
  static constexpr double kEps = 1e-6;

  // Inputs: x, LN1 (gamma, beta), the attention's 8 (Wq bq Wk bk Wv bv Wo bo), LN2 (gamma, beta), fc1 (W, b),
  // fc2 (W, b).
  enum In : size_t { kX = 0, kG1 = 1, kB1 = 2, kAtt = 3, kG2 = 11, kB2 = 12, kW1 = 13, kC1 = 14, kW2 = 15, kC2 = 16 };
  LayerNormShape ln() const { return {s.N, s.T, s.D, 1}; }
  MhsaOp mhsa() const { return {s, ""}; }
  DenseShape fc1() const { return {s.N * s.T, s.D, M}; }
  DenseShape fc2() const { return {s.N * s.T, M, s.D}; }
  std::vector<std::string> in_names() const {
    std::vector<std::string> n{"x", "ln1.gamma", "ln1.beta"};
    for (const auto& a : mhsa().in_names())
      if (a != "x") n.push_back("attn." + a);
    for (const char* a : {"ln2.gamma", "ln2.beta", "fc1.W", "fc1.b", "fc2.W", "fc2.b"}) n.push_back(a);
    return n;
  }
  std::vector<size_t> in_sizes() const {
    std::vector<size_t> z{s.count(), s.D, s.D};
    const auto m = mhsa().in_sizes();
    z.insert(z.end(), m.begin() + 1, m.end());
    for (size_t v : {s.D, s.D, s.D * M, M, M * s.D, s.D}) z.push_back(v);
    return z;
  }
  size_t out_size() const { return s.count(); }

  // Saved: LN1's r, xhat; a; the attention's context (flattened after these); h; LN2's r, xhat; b; u = fc1(b);
  // g = gelu(u).
  template <class T>
  Ins<T> mhsa_inputs(const Ins<T>& in, const Vec<T>& a) const {
    Ins<T> m{a};
    for (size_t k = kAtt; k < kG2; ++k) m.push_back(in[k]);
    return m;
  }

  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& D) const {
    const size_t n = s.count(), rows = s.N * s.T;
    Ctx<T> c;
    Vec<T> r1(rows), h1(n), a(n);
    layernorm_forward(ln(), kEps, in[kX].data(), in[kG1].data(), in[kB1].data(), a.data(), r1.data(), h1.data());
    const Ctx<T> cm = mhsa().forward(mhsa_inputs(in, a), D);
    Vec<T> h(n), r2(rows), h2(n), b(n), u(rows * M), g(rows * M);
    for (size_t e = 0; e < n; ++e) h[e] = in[kX][e] + cm.out[e];
    layernorm_forward(ln(), kEps, h.data(), in[kG2].data(), in[kB2].data(), b.data(), r2.data(), h2.data());
    dense_forward(fc1(), b.data(), in[kW1].data(), in[kC1].data(), u.data());
    for (size_t e = 0; e < u.size(); ++e) g[e] = prims::GeluErfFn::value(u[e], 0);
    c.out.resize(n);
    dense_forward(fc2(), g.data(), in[kW2].data(), in[kC2].data(), c.out.data());
    for (size_t e = 0; e < n; ++e) c.out[e] += h[e];
    c.saved = {r1, h1, a, h, r2, h2, b, u, g};
    for (const auto& v : cm.saved) c.saved.push_back(v);
    c.saved.push_back(cm.out);
    return c;
  }

  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    enum { R1, H1, A, H, R2, H2, B, U, G, Mhsa };
    Ins<T> gr;
    for (size_t z : in_sizes()) gr.emplace_back(z);
    const size_t n = s.count();
    // the MLP branch: dz = dy
    Vec<T> dg(c.saved[U].size()), db(n), dh(n);
    dense_backward_input(fc2(), in[kW2].data(), dy.data(), dg.data());
    dense_backward_weight(fc2(), c.saved[G].data(), dy.data(), gr[kW2].data());
    dense_backward_bias(fc2(), dy.data(), gr[kC2].data());
    const Vec<T>& at = mutant == "gelu_derivative_at_output" ? c.saved[G] : c.saved[U];
    for (size_t e = 0; e < dg.size(); ++e) dg[e] = prims::GeluErfFn::derivative(at[e], 0) * dg[e];
    dense_backward_input(fc1(), in[kW1].data(), dg.data(), db.data());
    dense_backward_weight(fc1(), c.saved[B].data(), dg.data(), gr[kW1].data());
    dense_backward_bias(fc1(), dg.data(), gr[kC1].data());
    layernorm_backward(ln(), in[kG2].data(), c.saved[R2].data(), c.saved[H2].data(), db.data(), dh.data(),
                       gr[kG2].data(), gr[kB2].data());
    if (mutant != "mlp_skip_gradient_forgotten")
      for (size_t e = 0; e < n; ++e) dh[e] += dy[e];  // h feeds the output directly too
    // the attention branch
    Ctx<T> cm;
    cm.saved.assign(c.saved.begin() + Mhsa, c.saved.end() - 1);
    cm.out = c.saved.back();
    const Ins<T> gm = mhsa().backward(mhsa_inputs(in, c.saved[A]), cm, dh);
    for (size_t k = kAtt; k < kG2; ++k) gr[k] = gm[k - kAtt + 1];
    layernorm_backward(ln(), in[kG1].data(), c.saved[R1].data(), c.saved[H1].data(), gm[0].data(), gr[kX].data(),
                       gr[kG1].data(), gr[kB1].data());
    if (mutant != "attention_skip_gradient_forgotten")
      for (size_t e = 0; e < n; ++e) gr[kX][e] += dh[e];
    if (!mutant.empty() && mutant != "gelu_derivative_at_output" && mutant != "mlp_skip_gradient_forgotten" &&
        mutant != "attention_skip_gradient_forgotten")
      throw std::invalid_argument("unknown transformerBlock mutant '" + mutant + "'");
    return gr;
  }
};

}  // namespace veridl::ops
