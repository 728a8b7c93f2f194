// Property-based tests (rapidcheck) of the engine's signed distance functions and contact law
// (gpu/src/physics.h).
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "physics.h"

namespace npe::gpu::detail {
namespace {

// A finite coordinate in [-1000, 1000] px with sub-pixel resolution.
rc::Gen<double> coord() {
  return rc::gen::map(rc::gen::inRange(-1000000, 1000001), [](int v) { return v * 1e-3; });
}
rc::Gen<double> positive(double lo, double hi) {
  return rc::gen::map(rc::gen::inRange(0, 1000001), [lo, hi](int v) { return lo + (hi - lo) * v * 1e-6; });
}

RC_GTEST_PROP(Sdf, CircleIsDistanceMinusRadiusWithUnitNormal, ()) {
  const double px = *coord(), py = *coord(), cx = *coord(), cy = *coord(), r = *positive(0.1, 100);
  const Sdf<double> s = sdf_circle(px, py, cx, cy, r);
  RC_ASSERT(std::abs(s.phi - (std::hypot(px - cx, py - cy) - r)) <= 1e-9 * (1 + std::abs(s.phi)));
  RC_ASSERT(std::abs(std::hypot(s.nx, s.ny) - 1.0) < 1e-12);
}

RC_GTEST_PROP(Sdf, ZeroLengthCapsuleEqualsCircle, ()) {
  const double px = *coord(), py = *coord(), ax = *coord(), ay = *coord(), r = *positive(0.1, 100);
  const Sdf<double> c = sdf_capsule(px, py, ax, ay, ax, ay, r);
  const Sdf<double> b = sdf_circle(px, py, ax, ay, r);
  RC_ASSERT(c.phi == b.phi);
  RC_ASSERT(c.nx == b.nx);
  RC_ASSERT(c.ny == b.ny);
}

RC_GTEST_PROP(Sdf, CapsuleIsSymmetricInItsEnds, ()) {
  const double px = *coord(), py = *coord(), ax = *coord(), ay = *coord(), bx = *coord(), by = *coord();
  const double r = *positive(0.1, 100);
  const Sdf<double> s = sdf_capsule(px, py, ax, ay, bx, by, r), t = sdf_capsule(px, py, bx, by, ax, ay, r);
  RC_ASSERT(std::abs(s.phi - t.phi) <= 1e-9 * (1 + std::abs(s.phi)));
  RC_ASSERT(std::abs(std::hypot(s.nx, s.ny) - 1.0) < 1e-9);
}

// The SDF is 1-Lipschitz and its normal is its gradient: phi(p + e n) ~ phi(p) + e.
RC_GTEST_PROP(Sdf, BoxNormalIsUnitGradient, ()) {
  const double px = *coord(), py = *coord(), cx = *coord(), cy = *coord();
  const double hx = *positive(1, 200), hy = *positive(1, 200), a = *positive(0, 2 * M_PI);
  const double c = std::cos(a), s = std::sin(a);
  const Sdf<double> d = sdf_box(px, py, cx, cy, hx, hy, c, s);
  RC_ASSERT(std::abs(std::hypot(d.nx, d.ny) - 1.0) < 1e-9);
  const double e = 1e-4;
  const Sdf<double> f = sdf_box(px + e * d.nx, py + e * d.ny, cx, cy, hx, hy, c, s);
  // away from the inner medial axis (qx = qy inside, where the gradient jumps) a step of e
  // along the normal raises phi by e
  const double lx = c * (px - cx) + s * (py - cy), ly = c * (py - cy) - s * (px - cx);
  const double qx = std::abs(lx) - hx, qy = std::abs(ly) - hy;
  RC_PRE((qx > 1e-3 || qy > 1e-3) || std::abs(qx - qy) > 1e-3);
  RC_PRE(std::abs(lx) > 1e-3 && std::abs(ly) > 1e-3);
  RC_ASSERT(std::abs((f.phi - d.phi) - e) < 2e-6);
  // a point on the box's axis-aligned frame: symmetric under reflection through the centre
  const Sdf<double> m = sdf_box(2 * cx - px, 2 * cy - py, cx, cy, hx, hy, c, s);
  RC_ASSERT(std::abs(m.phi - d.phi) <= 1e-9 * (1 + std::abs(d.phi)));
}

RC_GTEST_PROP(Sdf, BoxMatchesDistanceToUnrotatedRectangle, ()) {
  const double px = *coord(), py = *coord(), hx = *positive(1, 200), hy = *positive(1, 200);
  const Sdf<double> d = sdf_box(px, py, 0.0, 0.0, hx, hy, 1.0, 0.0);
  const double qx = std::abs(px) - hx, qy = std::abs(py) - hy;
  const double expect = std::hypot(std::max(qx, 0.0), std::max(qy, 0.0)) + std::min(std::max(qx, qy), 0.0);
  RC_ASSERT(std::abs(d.phi - expect) <= 1e-9 * (1 + std::abs(expect)));
}

RC_GTEST_PROP(Sdf, HalfPlane, ()) {
  const double px = *coord(), py = *coord(), a = *positive(0, 2 * M_PI), off = *coord();
  const Sdf<double> s = sdf_halfplane(px, py, std::cos(a), std::sin(a), off);
  RC_ASSERT(std::abs(s.phi - (std::cos(a) * px + std::sin(a) * py - off)) < 1e-9);
}

// Pair forces are exactly antisymmetric (bit for bit), in float and double, so momentum is
// conserved to rounding.
template <class T>
void check_antisymmetry() {
  const T xi = T(*coord()), yi = T(*coord()), vxi = T(*coord()), vyi = T(*coord());
  const T ri = T(*positive(1, 100)), rj = T(*positive(1, 100)), mi = T(*positive(0.1, 30)), mj = T(*positive(0.1, 30));
  const T ang = T(*positive(0, 2 * M_PI)), depth = T(*positive(0, 1));
  const T d = (ri + rj) * (T(1) - depth * T(0.5));
  const T xj = xi + d * T(std::cos(ang)), yj = yi + d * T(std::sin(ang));
  const T vxj = T(*coord()), vyj = T(*coord());
  const T ramp = T(*positive(0, 2));
  const ContactLaw<T> law{T(40000), T(*positive(0, 100)), ramp, ramp > T(0) ? T(1) / ramp : T(0)};
  T f1x = 0, f1y = 0, f2x = 0, f2y = 0;
  const bool a = pair_force(xi, yi, vxi, vyi, ri, mi, xj, yj, vxj, vyj, rj, mj, true, law, f1x, f1y);
  const bool b = pair_force(xj, yj, vxj, vyj, rj, mj, xi, yi, vxi, vyi, ri, mi, false, law, f2x, f2y);
  RC_ASSERT(a == b);
  if (a) {
    RC_ASSERT(f1x == -f2x);
    RC_ASSERT(f1y == -f2y);
  }
}
RC_GTEST_PROP(PairForce, ExactlyAntisymmetricDouble, ()) { check_antisymmetry<double>(); }
RC_GTEST_PROP(PairForce, ExactlyAntisymmetricFloat, ()) { check_antisymmetry<float>(); }

TEST(PairForce, RepelsAlongTheLineOfCentresWithSpringMagnitude) {
  // two balls of radius 10 overlapping by 0.5 px along +x, at rest: F = m_eff omega^2 delta with
  // the linear law, m_eff omega^2 (delta - rho / 2) past a ramp rho = 0.2 px
  double fx = 0, fy = 0;
  const ContactLaw<double> law{400.0, 0.0, 0.0, 0.0};
  ASSERT_TRUE(pair_force(0.0, 0.0, 0.0, 0.0, 10.0, 2.0, 19.5, 0.0, 0.0, 0.0, 10.0, 6.0, true, law, fx, fy));
  EXPECT_DOUBLE_EQ(fx, -(2.0 * 6.0 / 8.0) * 400.0 * 0.5);
  EXPECT_EQ(fy, 0.0);
  EXPECT_FALSE(pair_force(0.0, 0.0, 0.0, 0.0, 10.0, 2.0, 20.0, 0.0, 0.0, 0.0, 10.0, 6.0, true, law, fx, fy));
  const ContactLaw<double> ramped{400.0, 0.0, 0.2, 5.0};
  ASSERT_TRUE(pair_force(0.0, 0.0, 0.0, 0.0, 10.0, 2.0, 19.5, 0.0, 0.0, 0.0, 10.0, 6.0, true, ramped, fx, fy));
  EXPECT_NEAR(fx, -(2.0 * 6.0 / 8.0) * 400.0 * 0.4, 1e-12);
}

// The contact magnitude q(delta, v_n) is C1: zero value and zero derivatives at onset, value and
// derivatives continuous where the ramp ends, and the derivatives the adjoint uses equal central
// differences everywhere else; past the ramp, q = omega^2 (delta - rho / 2) - c v_n.
RC_GTEST_PROP(ContactMagnitude, IsC1WithExactDerivatives, ()) {
  const double rho = *positive(0.01, 2), w2 = *positive(1, 1e5), c = *positive(0, 200);
  const double vn = *positive(-500, 500);
  const ContactLaw<double> law{w2, c, rho, 1 / rho};
  auto q = [&](double d, double v, double cc) {
    ContactLaw<double> l = law;
    l.damping = cc;
    return contact_magnitude<double, true>(l, d, v);
  };
  const double scale = w2 * rho + c * std::abs(vn) + 1;
  // onset: q, q_delta and q_vn tend to 0
  const auto at0 = q(1e-9 * rho, vn, c);
  RC_ASSERT(std::abs(at0.q) < 1e-8 * scale);
  RC_ASSERT(std::abs(at0.q_delta) * rho < 1e-7 * scale);
  RC_ASSERT(std::abs(at0.q_vn) < 1e-8 * (c + 1));
  // the end of the ramp: value and derivative continuous
  const auto lo = q(rho * (1 - 1e-9), vn, c), hi = q(rho * (1 + 1e-9), vn, c);
  RC_ASSERT(std::abs(lo.q - hi.q) < 1e-7 * scale);
  RC_ASSERT(std::abs(lo.q_delta - hi.q_delta) * rho < 1e-6 * scale);
  // derivatives against central differences inside and past the ramp
  const double d = *positive(0.05, 3) * rho;
  if (std::abs(d - rho) > 1e-3 * rho) {
    const double e = 1e-6 * rho;
    const auto a = q(d, vn, c);
    RC_ASSERT(std::abs(a.q_delta - (q(d + e, vn, c).q - q(d - e, vn, c).q) / (2 * e)) * rho < 1e-6 * scale);
    RC_ASSERT(std::abs(a.q_vn - (q(d, vn + 1e-3, c).q - q(d, vn - 1e-3, c).q) / 2e-3) < 1e-6 * (c + 1));
    RC_ASSERT(std::abs(a.q_c - (q(d, vn, c + 1e-3).q - q(d, vn, c - 1e-3).q) / 2e-3) < 1e-6 * (std::abs(vn) + 1));
  }
  const double past = rho * *positive(1.01, 10);
  RC_ASSERT(std::abs(q(past, vn, c).q - (w2 * (past - rho / 2) - c * vn)) < 1e-12 * scale * 10);
}

TEST(Grid, CellCoordsClampNaNAndFarPoints) {
  GridK<float> g{10.f, 0.1f, 8, 6};
  int cx, cy;
  cell_coords(g, std::nanf(""), 1e30f, cx, cy);
  EXPECT_EQ(cx, 0);
  EXPECT_EQ(cy, 5);
  cell_coords(g, -5.f, 35.f, cx, cy);
  EXPECT_EQ(cx, 0);
  EXPECT_EQ(cy, 3);
}

// The portable logarithm (the dashpot's, on the host and CUDA alike) against the platform's: within
// 4 ulp over (0, 1] and beyond; ln 1 = 0 exactly.
RC_GTEST_PROP(PortableLog, MatchesTheLibraryLogWithinFourUlp, ()) {
  const int exponent = *rc::gen::inRange(-60, 61);
  const double mantissa = *positive(0.5, 1.0);
  const double x = std::ldexp(mantissa, exponent);
  RC_PRE(x > 0);
  const double want = std::log(x), got = portable_log(x);
  RC_ASSERT(std::abs(got - want) <= 4 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(want)));
}

TEST(PortableLog, ExactWhereTheLogIsZeroAndAccurateAtEdges) {
  EXPECT_EQ(portable_log(1.0), 0.0);
  EXPECT_EQ(dashpot_constant(1.0, 200.0), 0.0);
  for (double x : {1e-300, 0.5, 0.70710678118654752440, 0.9999999999, 2.0, 1e300})
    EXPECT_NEAR(portable_log(x), std::log(x), 4e-16 * std::max(1.0, std::abs(std::log(x)))) << x;
}

// c(e) = 2 zeta(e) omega, zeta = -ln e / sqrt(pi^2 + ln^2 e), and dc/de against central
// differences; e = exp(-zeta pi / sqrt(1 - zeta^2)) recovers the restitution.
RC_GTEST_PROP(Dashpot, ConstantInvertsTheRestitutionAndSlopeIsItsDerivative, ()) {
  const double e = *positive(0.05, 0.99), omega = *positive(1, 1000);
  const double c = dashpot_constant(e, omega), zeta = c / (2 * omega);
  RC_ASSERT(std::abs(std::exp(-zeta * M_PI / std::sqrt(1 - zeta * zeta)) - e) < 1e-12);
  const double h = 1e-6;
  const double fd = (dashpot_constant(e + h, omega) - dashpot_constant(e - h, omega)) / (2 * h);
  RC_ASSERT(std::abs(dashpot_slope(e, omega) - fd) <= 1e-6 * std::abs(fd));
}

}  // namespace
}  // namespace npe::gpu::detail
