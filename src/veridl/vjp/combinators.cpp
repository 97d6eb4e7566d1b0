#include "veridl/vjp/combinators.hpp"

#include <stdexcept>
#include <string>
#include <utility>

namespace veridl {
namespace {

template <class Build>
void for_each_scalar(Vjp& r, Build&& build) {
  std::apply([&](auto&... im) { (build(im), ...); }, r.impls);
}

template <class T>
void add_into(Vec<T>& a, const Vec<T>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
}

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

template <class Im>
using ScalarOf = typename std::decay_t<Im>::scalar;

}  // namespace

Vjp vjp_comp(const Vjp& f, const Vjp& g) {
  require(!g.in_sizes.empty() && g.in_sizes[0] == f.out_size,
          "vjp_comp: the first input of '" + g.name + "' does not match the output size of '" + f.name + "'");
  Vjp r;
  r.name = g.name + " o " + f.name;
  r.in_names = f.in_names;
  r.in_sizes = f.in_sizes;
  for (size_t k = 1; k < g.in_sizes.size(); ++k) {
    r.in_names.push_back(g.in_names[k]);
    r.in_sizes.push_back(g.in_sizes[k]);
  }
  r.out_size = g.out_size;
  const size_t nf = f.in_sizes.size();
  for_each_scalar(r, [f, g, nf](auto& im) {
    using T = ScalarOf<decltype(im)>;
    // g's inputs: f's output, then the composite's inputs after f's.
    auto g_inputs = [nf](const Ins<T>& in, const Vec<T>& fout) {
      Ins<T> gi;
      gi.push_back(fout);
      for (size_t k = nf; k < in.size(); ++k) gi.push_back(in[k]);
      return gi;
    };
    im.forward = [f, g, nf, g_inputs](const Ins<T>& in, Decisions& d) {
      Ins<T> fi(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(nf));
      Ctx<T> cf = f.forward<T>(fi, d);
      Ctx<T> cg = g.forward<T>(g_inputs(in, cf.out), d);
      Ctx<T> c;
      c.out = cg.out;
      c.sub = {std::move(cf), std::move(cg)};
      return c;
    };
    im.backward = [f, g, nf, g_inputs](const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) {
      Ins<T> fi(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(nf));
      Ins<T> gg = g.backward<T>(g_inputs(in, c.sub[0].out), c.sub[1], dy);
      Ins<T> gf = f.backward<T>(fi, c.sub[0], gg[0]);
      for (size_t k = 1; k < gg.size(); ++k) gf.push_back(std::move(gg[k]));
      return gf;
    };
  });
  return r;
}

namespace {
void require_same_signature(const Vjp& f, const Vjp& g, const char* what) {
  require(f.in_sizes == g.in_sizes && f.out_size == g.out_size,
          std::string(what) + ": '" + f.name + "' and '" + g.name + "' differ in input or output sizes");
}
}  // namespace

Vjp bi_path(const Vjp& f, const Vjp& g) {
  require_same_signature(f, g, "bi_path");
  Vjp r;
  r.name = "(" + f.name + " + " + g.name + ")";
  r.in_names = f.in_names;
  r.in_sizes = f.in_sizes;
  r.out_size = f.out_size;
  for_each_scalar(r, [f, g](auto& im) {
    using T = ScalarOf<decltype(im)>;
    im.forward = [f, g](const Ins<T>& in, Decisions& d) {
      Ctx<T> cf = f.forward<T>(in, d);
      Ctx<T> cg = g.forward<T>(in, d);
      Ctx<T> c;
      c.out = cf.out;
      add_into(c.out, cg.out);
      c.sub = {std::move(cf), std::move(cg)};
      return c;
    };
    im.backward = [f, g](const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) {
      Ins<T> a = f.backward<T>(in, c.sub[0], dy);
      Ins<T> b = g.backward<T>(in, c.sub[1], dy);
      for (size_t k = 0; k < a.size(); ++k) add_into(a[k], b[k]);
      return a;
    };
  });
  return r;
}

Vjp elemwise_product(const Vjp& f, const Vjp& g) {
  require_same_signature(f, g, "elemwise_product");
  Vjp r;
  r.name = "(" + f.name + " * " + g.name + ")";
  r.in_names = f.in_names;
  r.in_sizes = f.in_sizes;
  r.out_size = f.out_size;
  for_each_scalar(r, [f, g](auto& im) {
    using T = ScalarOf<decltype(im)>;
    im.forward = [f, g](const Ins<T>& in, Decisions& d) {
      Ctx<T> cf = f.forward<T>(in, d);
      Ctx<T> cg = g.forward<T>(in, d);
      Ctx<T> c;
      c.out.resize(cf.out.size());
      for (size_t i = 0; i < c.out.size(); ++i) c.out[i] = cf.out[i] * cg.out[i];
      c.sub = {std::move(cf), std::move(cg)};
      return c;
    };
    im.backward = [f, g](const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) {
      const Vec<T>& fx = c.sub[0].out;
      const Vec<T>& gx = c.sub[1].out;
      Vec<T> gdy(dy.size()), fdy(dy.size());
      for (size_t i = 0; i < dy.size(); ++i) {
        gdy[i] = gx[i] * dy[i];
        fdy[i] = fx[i] * dy[i];
      }
      Ins<T> a = f.backward<T>(in, c.sub[0], gdy);
      Ins<T> b = g.backward<T>(in, c.sub[1], fdy);
      for (size_t k = 0; k < a.size(); ++k) add_into(a[k], b[k]);
      return a;
    };
  });
  return r;
}

Vjp identity(size_t n) {
  Vjp r;
  r.name = "identity";
  r.in_names = {"x"};
  r.in_sizes = {n};
  r.out_size = n;
  for_each_scalar(r, [](auto& im) {
    using T = ScalarOf<decltype(im)>;
    im.forward = [](const Ins<T>& in, Decisions&) {
      Ctx<T> c;
      c.out = in[0];
      return c;
    };
    im.backward = [](const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) { return Ins<T>{dy}; };
  });
  return r;
}

Vjp reindex(size_t n_in, std::vector<size_t> sigma) {
  for (size_t k = 0; k < sigma.size(); ++k)
    require(sigma[k] < n_in, "reindex: sigma(" + std::to_string(k) + ") = " + std::to_string(sigma[k]) +
                                 " is out of range for " + std::to_string(n_in) + " inputs");
  Vjp r;
  r.name = "reindex";
  r.in_names = {"x"};
  r.in_sizes = {n_in};
  r.out_size = sigma.size();
  for_each_scalar(r, [sigma, n_in](auto& im) {
    using T = ScalarOf<decltype(im)>;
    im.forward = [sigma](const Ins<T>& in, Decisions&) {
      Ctx<T> c;
      c.out.resize(sigma.size());
      for (size_t k = 0; k < sigma.size(); ++k) c.out[k] = in[0][sigma[k]];
      return c;
    };
    im.backward = [sigma, n_in](const Ins<T>&, const Ctx<T>&, const Vec<T>& dy) {
      Vec<T> dx(n_in, T(0));
      for (size_t k = 0; k < sigma.size(); ++k) dx[sigma[k]] += dy[k];
      return Ins<T>{dx};
    };
  });
  return r;
}

}  // namespace veridl
