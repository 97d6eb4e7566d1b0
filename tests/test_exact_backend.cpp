// The exact backend's own code paths: lazy-reduction dot accumulators (calculus/dot.hpp) and the conv2d
// reference's loop orders for prime-field scalars (prims/conv2d/reference.hpp, detail::*_exact). The
// contracts check the field instantiation of the reference; the float kernels are tested against its
// float and double instantiation, which runs the other loop order. These tests tie the two: on integer
// data, where double arithmetic is exact, the field results are the double results embedded.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "veridl/calculus/dot.hpp"
#include "veridl/prims/conv2d/reference.hpp"

using namespace veridl;
using ops::Conv2dShape;

namespace {

template <class F>
F embed(double v) {
  return F(static_cast<int64_t>(v));
}

std::vector<double> ints(size_t n, std::mt19937_64& rng, int lo = -3, int hi = 3) {
  std::uniform_int_distribution<int> u(lo, hi);
  std::vector<double> v(n);
  for (auto& e : v) e = u(rng);
  return v;
}

template <class F>
std::vector<F> to_field(const std::vector<double>& v) {
  std::vector<F> r;
  for (double e : v) r.push_back(embed<F>(e));
  return r;
}

template <class F>
std::vector<Dual<F>> to_dual(const std::vector<double>& v, const std::vector<double>& d) {
  std::vector<Dual<F>> r;
  for (size_t i = 0; i < v.size(); ++i) r.push_back({embed<F>(v[i]), embed<F>(d[i])});
  return r;
}

// Shapes covering the index paths of the exact loops: stride 1-3, pads on either side (asymmetric, larger
// than the kernel's reach), 1x1 and non-square kernels, groups (depthwise, grouped), batch 1 and 2.
std::vector<Conv2dShape> shapes() {
  std::vector<Conv2dShape> out;
  //                B  C  H  W  O  KH KW s  pt pl pb pr bias G
  out.push_back({1, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, true, 1});
  out.push_back({2, 3, 7, 6, 4, 3, 3, 2, 1, 1, 1, 1, true, 1});
  out.push_back({2, 2, 8, 8, 3, 3, 3, 2, 0, 0, 1, 1, false, 1});   // XLA-style SAME, the extra cell low
  out.push_back({1, 2, 9, 7, 2, 7, 7, 2, 3, 3, 3, 3, true, 1});    // the ResNet stem's kernel
  out.push_back({2, 4, 6, 5, 6, 1, 1, 2, 0, 0, 0, 0, false, 1});   // projection shortcut
  out.push_back({1, 3, 5, 8, 2, 2, 3, 3, 2, 0, 1, 2, true, 1});    // non-square, stride 3, odd pads
  out.push_back({2, 6, 7, 7, 6, 3, 3, 2, 1, 1, 1, 1, false, 6});   // depthwise
  out.push_back({1, 4, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, true, 2});    // grouped
  out.push_back({1, 3, 4, 4, 6, 3, 3, 1, 2, 2, 2, 2, true, 3});    // channel multiplier 2, wide pads
  out.push_back({1, 2, 3, 3, 2, 3, 3, 1, 0, 0, 0, 0, true, 1});    // one output
  return out;
}

template <class F>
void expect_conv_paths_agree() {
  std::mt19937_64 rng(7);
  for (const Conv2dShape& s : shapes()) {
    SCOPED_TRACE(s.str());
    const auto x = ints(s.x_size(), rng), w = ints(s.w_size(), rng), b = ints(s.O, rng), dy = ints(s.y_size(), rng);
    const auto xd = ints(s.x_size(), rng), wd = ints(s.w_size(), rng), bd = ints(s.O, rng);
    // double, the plain loops
    std::vector<double> y(s.y_size()), y1(s.y_size()), y2(s.y_size()), dx(s.x_size()), dw(s.w_size());
    ops::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    ops::conv2d_backward_input(s, w.data(), dy.data(), dx.data());
    ops::conv2d_backward_weight(s, x.data(), dy.data(), dw.data());
    // the tangent of y along (xd, wd, bd): conv(xd, w) + conv(x, wd) + bd
    ops::conv2d_forward(s, xd.data(), w.data(), bd.data(), y1.data());
    const std::vector<double> zero(s.O, 0.0);
    ops::conv2d_forward(s, x.data(), wd.data(), zero.data(), y2.data());
    // the field, the exact loops
    const auto xf = to_field<F>(x), wf = to_field<F>(w), bf = to_field<F>(b), dyf = to_field<F>(dy);
    std::vector<F> yf(s.y_size()), dxf(s.x_size()), dwf(s.w_size());
    ops::conv2d_forward(s, xf.data(), wf.data(), bf.data(), yf.data());
    ops::conv2d_backward_input(s, wf.data(), dyf.data(), dxf.data());
    ops::conv2d_backward_weight(s, xf.data(), dyf.data(), dwf.data());
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(yf[i], embed<F>(y[i])) << "y[" << i << "]";
    for (size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dxf[i], embed<F>(dx[i])) << "dx[" << i << "]";
    for (size_t i = 0; i < dw.size(); ++i) ASSERT_EQ(dwf[i], embed<F>(dw[i])) << "dW[" << i << "]";
    // dual numbers over the field: value and tangent
    const auto xdual = to_dual<F>(x, xd), wdual = to_dual<F>(w, wd), bdual = to_dual<F>(b, bd);
    std::vector<Dual<F>> yd(s.y_size());
    ops::conv2d_forward(s, xdual.data(), wdual.data(), s.bias ? bdual.data() : nullptr, yd.data());
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_EQ(yd[i].v, embed<F>(y[i])) << "dual y[" << i << "]";
      const double tangent = y1[i] + y2[i];
      ASSERT_EQ(yd[i].d, embed<F>(tangent)) << "dual y'[" << i << "]";
    }
  }
}

}  // namespace

TEST(ExactBackend, ConvLoopsInTheFieldEqualThePlainLoopsOnIntegers) {
  expect_conv_paths_agree<F61>();
  expect_conv_paths_agree<F62>();
}

// The lazy accumulator against the reduced sum, where the 128-bit sum overflows many times: products of
// elements near p (each close to 2^122 / 2^124), 10,000 of them.
TEST(ExactBackend, LazyDotEqualsTheReducedSumAcrossOverflows) {
  std::mt19937_64 rng(3);
  for (int rep = 0; rep < 3; ++rep) {
    F62 plain(0);
    DotAcc<F62> lazy(F62(5));
    plain += F62(5);
    Dual<F61> dplain(F61(0), F61(0));
    DotAcc<Dual<F61>> dlazy;
    for (int k = 0; k < 10000; ++k) {
      const F62 a = -F62::from_raw(rng() % 1000), b = -F62::from_raw(rng() % 1000);  // p - small
      plain += a * b;
      lazy.add_mul(a, b);
      const Dual<F61> u(-F61::from_raw(rng() % 7), F61::from_raw(rng())), v(F61::from_raw(rng()), -F61(1));
      dplain += u * v;
      dlazy.add_mul(u, v);
      if (k % 3 == 0) {
        plain += a;
        lazy.add(a);
      }
    }
    EXPECT_NE(lazy.hi, 0u);  // the 128-bit sum did overflow
    EXPECT_EQ(lazy.value(), plain);
    EXPECT_EQ(dlazy.value(), dplain);
  }
}
