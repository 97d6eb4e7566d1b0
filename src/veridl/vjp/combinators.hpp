// Combinators that build VJP records from records -- the book's vjp_comp, biPath, elemwiseProduct,
// identity and reindex. Their backwards are the book's formulas; a record built this way is a record
// like any other, so the checker checks the combined backward too (tests/test_combinators.cpp).
#pragma once

#include <cstddef>
#include <vector>

#include "veridl/vjp/record.hpp"

namespace veridl {

// g after f: g's first input is f's output; the composite's inputs are f's inputs then g's others.
// backward x dy = f.back x (g.back (f x) dy)                                     (vjp_comp)
Vjp vjp_comp(const Vjp& f, const Vjp& g);

// f + g over the same inputs; backward = f.back + g.back                           (biPath, residuals)
Vjp bi_path(const Vjp& f, const Vjp& g);

// f (.) g over the same inputs; backward x dy = f.back x (g x (.) dy) + g.back x (f x (.) dy)
//                                                           (elemwiseProduct, squeeze-excitation)
Vjp elemwise_product(const Vjp& f, const Vjp& g);

// x -> x; backward = dy                                                            (identity)
Vjp identity(size_t n);

// y_k = x_{sigma(k)}; backward scatters: dx_i = sum over k with sigma(k) = i of dy_k
// (permutation, reshape, slice, broadcast)                                         (pdiv_reindex)
Vjp reindex(size_t n_in, std::vector<size_t> sigma);

}  // namespace veridl
