// The VJP record: the C++ form of the book's HasVJP / HasVJPMat / HasVJP3 (one record over flat
// tensors; rank is a property of the shape the op carries).
//
// A record has named inputs (parameters are ordinary inputs, so dW and db go through the same check),
// one output, and for every scalar type the checker uses:
//   forward(inputs, Decisions&) -> Ctx   (output + the values the backward reuses + decisions)
//   backward(inputs, Ctx, dy)   -> one gradient per input
// Ops are written once as templates (an "Op" type with template member functions) and turned into a
// record by make_vjp; combinators (combinators.hpp) build records from records.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "veridl/calculus/atoms.hpp"
#include "veridl/calculus/decisions.hpp"
#include "veridl/calculus/dual.hpp"
#include "veridl/calculus/field.hpp"

namespace veridl {

template <class T>
using Vec = std::vector<T>;
template <class T>
using Ins = std::vector<Vec<T>>;

// What a forward keeps for its backward. Decisions are kept as plain indices/bits in `dec`, so the
// backward never re-decides; composite records keep their children's contexts in `sub`.
template <class T>
struct Ctx {
  Vec<T> out;
  std::vector<Vec<T>> saved;
  std::vector<uint32_t> dec;
  std::vector<Ctx<T>> sub;
  std::shared_ptr<void> state;  // opaque state a composite forward hands to its backward (e.g. an executor)
};

template <class T>
struct VjpImpl {
  using scalar = T;
  std::function<Ctx<T>(const Ins<T>&, Decisions&)> forward;
  std::function<Ins<T>(const Ins<T>&, const Ctx<T>&, const Vec<T>&)> backward;
};

// The scalar types every record is instantiated for.
using CheckScalars = std::tuple<double, Dual<double>, F61, Dual<F61>, F62, Dual<F62>>;

template <class Tuple>
struct ImplTuple;
template <class... Ts>
struct ImplTuple<std::tuple<Ts...>> {
  using type = std::tuple<VjpImpl<Ts>...>;
};

struct Vjp {
  std::string name;
  std::vector<std::string> in_names;
  std::vector<size_t> in_sizes;
  size_t out_size = 0;
  typename ImplTuple<CheckScalars>::type impls;

  template <class T>
  const VjpImpl<T>& impl() const {
    return std::get<VjpImpl<T>>(impls);
  }
  template <class T>
  VjpImpl<T>& impl() {
    return std::get<VjpImpl<T>>(impls);
  }
  template <class T>
  Ctx<T> forward(const Ins<T>& in, Decisions& d) const {
    return impl<T>().forward(in, d);
  }
  template <class T>
  Ins<T> backward(const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) const {
    return impl<T>().backward(in, c, dy);
  }
  size_t total_in() const {
    size_t n = 0;
    for (auto s : in_sizes) n += s;
    return n;
  }
};

// An Op provides: std::vector<std::string> in_names() const; std::vector<size_t> in_sizes() const;
// size_t out_size() const; template <class T> Ctx<T> forward(const Ins<T>&, Decisions&) const;
// template <class T> Ins<T> backward(const Ins<T>&, const Ctx<T>&, const Vec<T>&) const.
template <class Op, class T>
void fill_impl(VjpImpl<T>& im, const std::shared_ptr<const Op>& op) {
  im.forward = [op](const Ins<T>& in, Decisions& d) { return op->template forward<T>(in, d); };
  im.backward = [op](const Ins<T>& in, const Ctx<T>& c, const Vec<T>& dy) {
    return op->template backward<T>(in, c, dy);
  };
}

template <class Op>
Vjp make_vjp(std::string name, Op op) {
  Vjp r;
  r.name = std::move(name);
  r.in_names = op.in_names();
  r.in_sizes = op.in_sizes();
  r.out_size = op.out_size();
  auto shared = std::make_shared<const Op>(std::move(op));
  std::apply([&](auto&... im) { (fill_impl<Op>(im, shared), ...); }, r.impls);
  return r;
}

}  // namespace veridl
