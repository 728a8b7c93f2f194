// gpu/src/physics.h (private): the engine's per-body and per-contact physics, written once as
// __host__ __device__ functions and shared by the CPU reference (cpu_engine.cpp) and the CUDA
// kernels (cuda_engine.cu).
//
// Model (see gpu/README.md for the derivations and error analysis):
// - Semi-implicit (symplectic) Euler per substep h:  v' = v + h (F(x, v) / m + g),  x' = x + h v'.
// - Penalty contact along the signed-distance-function (SDF) normal n of the other body: for a
//   penetration delta = r - phi > 0 and normal velocity v_n = (v_i - v_j) . n,
//       F_i = m_eff (omega^2 g(delta) - c s(delta) v_n) n,   m_eff = m_i m_j / (m_i + m_j)
//   (m_eff = m_i against walls and obstacles), c = 2 zeta omega. Scaling the spring by m_eff
//   gives every contact the same duration pi / omega and the same peak penetration v_n / omega
//   whatever the masses. zeta follows from the restitution e of a linear spring-dashpot:
//   e = exp(-zeta pi / sqrt(1 - zeta^2)).
//   Onset ramp (contact_magnitude): over the first rho px of penetration the spring and the
//   dashpot are switched on by the smoothstep s(t) = 3 t^2 - 2 t^3, t = delta / rho, with the
//   spring g = integral of s (g = rho (t^3 - t^4 / 2), then delta - rho / 2): the force is C1 in
//   the state, so the rollout is differentiable everywhere and its gradient converges as the
//   substeps grow (gpu/README.md, "Gradients through contact"). rho = 0 is the linear law
//   (g = delta, s = 1), whose force has a kink at onset (a jump where c > 0).
// - Determinism and exactness: every function is a fixed sequence of IEEE operations (the CUDA
//   code is built with --fmad=false, the host code with -ffp-contract=off), so the CPU reference
//   in float32 and the CUDA kernels give the same bits. Pair forces are exactly antisymmetric:
//   pair_force(j, i) == -pair_force(i, j) bit for bit, hence momentum is conserved to rounding.
#pragma once

#include <cmath>
#include <cstdint>

#include "npe/core/host_device.h"

namespace npe::gpu::detail {

NPE_HD float hd_sqrt(float a) { return sqrtf(a); }
NPE_HD double hd_sqrt(double a) { return sqrt(a); }

// The dashpot constant c = 2 zeta(e) omega of restitution e in (0, 1] (zeta = -ln e /
// sqrt(pi^2 + ln^2 e), engine.h damping_ratio) and its derivative dc/de = 2 omega dzeta/de,
// dzeta/de = -pi^2 / (e (pi^2 + ln^2 e)^(3/2)). The logarithm is computed here from frexp, +, -,
// *, / and sqrt (each exact or correctly rounded on the host and on CUDA) rather than with the
// platform's log, whose last bit differs between glibc and CUDA: the CPU reference and the
// kernels then start from the same c, bit for bit. Accurate to a few ulp; ln 1 = 0 exactly.
NPE_HD double portable_log(double x) {
  int ex = 0;
  double m = frexp(x, &ex);  // x = m 2^ex, m in [1/2, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    ex -= 1;
  }
  // ln m = 2 atanh z, z = (m - 1) / (m + 1), |z| < 0.1716: the series' 12th term is below 1e-19.
  const double z = (m - 1.0) / (m + 1.0), z2 = z * z;
  double s = 0.0;
  for (int k = 11; k >= 0; --k) s = s * z2 + 1.0 / (2 * k + 1);
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  return ex * ln2_hi + (ex * ln2_lo + 2.0 * z * s);
}
constexpr double kPi2 = 9.86960440108935861883;  // pi^2
// The damping ratio zeta(e) for e in (0, 1) (engine.h damping_ratio).
NPE_HD double dashpot_zeta(double e) {
  const double l = portable_log(e);
  return -l / sqrt(kPi2 + l * l);
}
// Outside (0, 1] both are NaN (the operators check no values: a bad restitution shows in the result).
NPE_HD double dashpot_constant(double e, double omega) {
  if (!(e > 0.0 && e <= 1.0)) return NAN;
  if (e == 1.0) return 0.0;
  return 2.0 * omega * dashpot_zeta(e);
}
NPE_HD double dashpot_slope(double e, double omega) {
  if (!(e > 0.0 && e <= 1.0)) return NAN;
  const double l = portable_log(e), q = kPi2 + l * l;
  return 2.0 * omega * (-kPi2 / (e * q * sqrt(q)));
}

// Signed distance from a point to a shape (phi > 0 outside), the unit outward normal n (the
// SDF's gradient) at that point, and the curvature kappa of the level set through it, so that
// the SDF's Hessian is dn/dp = kappa (I - n n^T) (1 / distance around a point, 0 along flat
// faces and inside boxes). The forward step uses phi and n; the adjoint (adjoint.h) kappa too.
template <class T>
struct Sdf {
  T phi, nx, ny, kappa;
};

// Circle of centre (cx, cy) and radius r. At the centre itself the normal is (1, 0).
template <class T>
NPE_HD Sdf<T> sdf_circle(T px, T py, T cx, T cy, T r) {
  const T dx = px - cx, dy = py - cy;
  const T d = hd_sqrt(dx * dx + dy * dy);
  Sdf<T> s;
  s.phi = d - r;
  if (d > T(0)) {
    s.nx = dx / d;
    s.ny = dy / d;
    s.kappa = T(1) / d;
  } else {
    s.nx = T(1);
    s.ny = T(0);
    s.kappa = T(0);
  }
  return s;
}

// Half-plane {p : n . p >= offset} seen from inside: phi = n . p - offset, normal n (unit).
template <class T>
NPE_HD Sdf<T> sdf_halfplane(T px, T py, T nx, T ny, T offset) {
  Sdf<T> s;
  s.phi = nx * px + ny * py - offset;
  s.nx = nx;
  s.ny = ny;
  s.kappa = T(0);
  return s;
}

// Capsule: the points within r of the segment a-b. A zero-length segment is a circle at a.
template <class T>
NPE_HD Sdf<T> sdf_capsule(T px, T py, T ax, T ay, T bx, T by, T r) {
  const T abx = bx - ax, aby = by - ay;
  const T len2 = abx * abx + aby * aby;
  T t = T(0);
  bool side = false;  // the closest point is inside the segment: a flat side of the capsule
  if (len2 > T(0)) {
    t = ((px - ax) * abx + (py - ay) * aby) / len2;
    side = t > T(0) && t < T(1);
    t = t < T(0) ? T(0) : (t > T(1) ? T(1) : t);
  }
  Sdf<T> s = sdf_circle(px, py, ax + t * abx, ay + t * aby, r);
  if (side) s.kappa = T(0);
  return s;
}

// Oriented box: centre (cx, cy), half extents (hx, hy), rotated by the angle whose cosine and
// sine are (c, s) (counter-clockwise). Inside, the normal is that of the nearest face.
template <class T>
NPE_HD Sdf<T> sdf_box(T px, T py, T cx, T cy, T hx, T hy, T c, T s) {
  // the point in the box's frame: R^T (p - centre)
  const T dx = px - cx, dy = py - cy;
  const T lx = c * dx + s * dy, ly = c * dy - s * dx;
  const T ax = lx < T(0) ? -lx : lx, ay = ly < T(0) ? -ly : ly;
  const T sx = lx < T(0) ? T(-1) : T(1), sy = ly < T(0) ? T(-1) : T(1);
  const T qx = ax - hx, qy = ay - hy;
  T nlx, nly, phi, kappa = T(0);
  if (qx > T(0) || qy > T(0)) {
    // outside: distance to the nearest point of the boundary
    const T ox = qx > T(0) ? qx : T(0), oy = qy > T(0) ? qy : T(0);
    phi = hd_sqrt(ox * ox + oy * oy);
    nlx = sx * ox / phi;
    nly = sy * oy / phi;
    if (qx > T(0) && qy > T(0)) kappa = T(1) / phi;  // around a corner
  } else if (qx > qy) {
    phi = qx;  // inside, nearest face is x = +-hx
    nlx = sx;
    nly = T(0);
  } else {
    phi = qy;
    nlx = T(0);
    nly = sy;
  }
  Sdf<T> out;
  out.phi = phi;
  out.nx = c * nlx - s * nly;  // back to the world frame: R n
  out.ny = s * nlx + c * nly;
  out.kappa = kappa;
  return out;
}

// Contact law constants: spring omega^2 (1/s^2) and damping c = 2 zeta omega (1/s), per unit of
// effective mass; onset ramp rho (px, 0 = linear law) and 1 / rho (0 when rho = 0).
template <class T>
struct ContactLaw {
  T omega2;
  T damping;
  T ramp;
  T inv_ramp;
};

// Normal force per unit of effective mass for a penetration delta > 0 (px) and normal velocity
// v_n (px/s): q = omega^2 g(delta) - c s(delta) v_n (see the header comment), with its partial
// derivatives when asked for (the adjoint's): q_delta = omega^2 s - c s' v_n, q_vn = -c s,
// q_c = -s v_n.
template <class T>
struct ContactMagnitude {
  T q, q_delta, q_vn, q_c;
};

template <class T, bool kDerivatives = false>
NPE_HD ContactMagnitude<T> contact_magnitude(const ContactLaw<T>& law, T delta, T vn) {
  T g, s, ds = T(0);
  if (delta < law.ramp) {
    const T t = delta * law.inv_ramp;
    const T t2 = t * t;
    s = t2 * (T(3) - T(2) * t);
    g = law.ramp * (t2 * t) * (T(1) - T(0.5) * t);
    if (kDerivatives) ds = T(6) * t * (T(1) - t) * law.inv_ramp;
  } else {
    s = T(1);
    g = delta - T(0.5) * law.ramp;
  }
  ContactMagnitude<T> out;
  out.q = law.omega2 * g - law.damping * (s * vn);
  if (kDerivatives) {
    out.q_delta = law.omega2 * s - law.damping * (ds * vn);
    out.q_vn = -law.damping * s;
    out.q_c = -(s * vn);
  } else {
    out.q_delta = out.q_vn = out.q_c = T(0);
  }
  return out;
}

// Static obstacle in kernel form. kind 0: capsule (segment a-b, radius); kind 1: oriented box
// (centre a, half extents b, orientation cos/sin).
template <class T>
struct ObstacleK {
  int kind;
  T ax, ay, bx, by, radius, cos_a, sin_a;
};

template <class T>
NPE_HD Sdf<T> sdf_obstacle(const ObstacleK<T>& o, T px, T py) {
  if (o.kind == 0) return sdf_capsule(px, py, o.ax, o.ay, o.bx, o.by, o.radius);
  return sdf_box(px, py, o.ax, o.ay, o.bx, o.by, o.cos_a, o.sin_a);
}

// Everything a substep needs besides the bodies: the box [0, width] x [0, height] (px), the
// substep h (s), gravity (px/s^2), the contact law and the obstacles.
template <class T>
struct StepParams {
  T width, height, h, gx, gy;
  ContactLaw<T> law;
  int num_obstacles;
  const ObstacleK<T>* obstacles;  // host or device memory, matching the caller
};

// Force on ball i from ball j (both radius/mass/state given). Returns false, touching nothing,
// when the balls do not overlap. `i_lower` (i < j) orients the normal when the centres coincide,
// so that the pair stays antisymmetric there too.
template <class T>
NPE_HD bool pair_force(T xi, T yi, T vxi, T vyi, T ri, T mi, T xj, T yj, T vxj, T vyj, T rj, T mj, bool i_lower,
                       const ContactLaw<T>& law, T& fx, T& fy) {
  const T dx = xi - xj, dy = yi - yj;
  const T rr = ri + rj;
  const T d2 = dx * dx + dy * dy;
  if (!(d2 < rr * rr)) return false;
  const T d = hd_sqrt(d2);
  T nx, ny;
  if (d > T(0)) {
    nx = dx / d;
    ny = dy / d;
  } else {
    nx = i_lower ? T(1) : T(-1);
    ny = T(0);
  }
  const T delta = rr - d;
  const T vn = (vxi - vxj) * nx + (vyi - vyj) * ny;
  const T meff = mi * mj / (mi + mj);
  const T mag = meff * contact_magnitude(law, delta, vn).q;
  fx = mag * nx;
  fy = mag * ny;
  return true;
}

// Penalty force of a static surface with SDF value/normal `s` on a ball (radius r, mass m,
// velocity v), added to (fx, fy) when the ball penetrates it. Returns whether it does.
template <class T>
NPE_HD bool add_static_contact(const Sdf<T>& s, T vx, T vy, T r, T m, const ContactLaw<T>& law, T& fx, T& fy) {
  const T delta = r - s.phi;
  if (!(delta > T(0))) return false;
  const T vn = vx * s.nx + vy * s.ny;
  const T mag = m * contact_magnitude(law, delta, vn).q;
  fx += mag * s.nx;
  fy += mag * s.ny;
  return true;
}

// Forces of the four walls (left, right, bottom, top: half-planes facing into the box) and of
// the obstacles, in that order, added to (fx, fy). Returns whether any of them touches the ball.
template <class T>
NPE_HD bool add_boundary_forces(const StepParams<T>& p, T x, T y, T vx, T vy, T r, T m, T& fx, T& fy) {
  bool touched = add_static_contact(sdf_halfplane(x, y, T(1), T(0), T(0)), vx, vy, r, m, p.law, fx, fy);
  touched |= add_static_contact(sdf_halfplane(x, y, T(-1), T(0), -p.width), vx, vy, r, m, p.law, fx, fy);
  touched |= add_static_contact(sdf_halfplane(x, y, T(0), T(1), T(0)), vx, vy, r, m, p.law, fx, fy);
  touched |= add_static_contact(sdf_halfplane(x, y, T(0), T(-1), -p.height), vx, vy, r, m, p.law, fx, fy);
  for (int k = 0; k < p.num_obstacles; ++k)
    touched |= add_static_contact(sdf_obstacle(p.obstacles[k], x, y), vx, vy, r, m, p.law, fx, fy);
  return touched;
}

// Semi-implicit Euler: velocity first, then position with the new velocity.
template <class T>
NPE_HD void integrate(const StepParams<T>& p, T fx, T fy, T inv_m, T& x, T& y, T& vx, T& vy) {
  vx = vx + p.h * (fx * inv_m + p.gx);
  vy = vy + p.h * (fy * inv_m + p.gy);
  x = x + p.h * vx;
  y = y + p.h * vy;
}

// A ball count known at compile time (the CUDA kernels' template parameter): converts to int in
// host and device code, so that scene_substep's loops unroll and its arrays stay in registers.
template <int N>
struct FixedCount {
  NPE_HD constexpr operator int() const { return N; }
};

// Contact forces on the n balls of one scene held in local arrays (registers in the CUDA
// kernels, where n is a compile-time constant), written to (fx, fy). Ball-ball forces are
// computed once per pair i < j and applied to both balls; each ball therefore sums its partners
// in ascending index order, which is the order of the per-body all-pairs path too. Then walls
// and obstacles. Returns the balls in contact (bit i: ball i touches a ball, wall or obstacle;
// n <= 32); a ball whose bit is clear got exactly (+0, +0).
template <class T, class Count>
NPE_HD uint32_t contact_forces(Count n, const T* x, const T* y, const T* vx, const T* vy, const T* r, const T* m, T* fx,
                               T* fy, const StepParams<T>& p) {
  uint32_t touched = 0;
  NPE_UNROLL
  for (int i = 0; i < n; ++i) fx[i] = fy[i] = T(0);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    NPE_UNROLL
    for (int j = i + 1; j < n; ++j) {
      T gx, gy;
      if (pair_force(x[i], y[i], vx[i], vy[i], r[i], m[i], x[j], y[j], vx[j], vy[j], r[j], m[j], true, p.law, gx, gy)) {
        fx[i] += gx;
        fy[i] += gy;
        fx[j] -= gx;
        fy[j] -= gy;
        touched |= (1u << i) | (1u << j);
      }
    }
  }
  NPE_UNROLL
  for (int i = 0; i < n; ++i)
    if (add_boundary_forces(p, x[i], y[i], vx[i], vy[i], r[i], m[i], fx[i], fy[i])) touched |= 1u << i;
  return touched;
}

// One substep of one scene of n balls held in local arrays: contact forces, then semi-implicit
// Euler.
template <class T, class Count>
NPE_HD void scene_substep(Count n, T* x, T* y, T* vx, T* vy, const T* r, const T* m, const T* inv_m, T* fx, T* fy,
                          const StepParams<T>& p) {
  contact_forces(n, x, y, vx, vy, r, m, fx, fy, p);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) integrate(p, fx[i], fy[i], inv_m[i], x[i], y[i], vx[i], vy[i]);
}

// Uniform grid for the broad phase: square cells of side `cell` (>= the largest diameter, so
// that touching balls lie in the same or adjacent cells), nx * ny cells per scene, scenes'
// cells one after another. Centres outside the box are clamped to the border cells.
template <class T>
struct GridK {
  T cell, inv_cell;
  int nx, ny;
};

template <class T>
NPE_HD void cell_coords(const GridK<T>& g, T x, T y, int& cx, int& cy) {
  // compare before converting: NaN and values beyond int range never reach the conversion
  const T fx = x * g.inv_cell, fy = y * g.inv_cell;
  cx = !(fx >= T(0)) ? 0 : (fx >= T(g.nx) ? g.nx - 1 : static_cast<int>(fx));
  cy = !(fy >= T(0)) ? 0 : (fy >= T(g.ny) ? g.ny - 1 : static_cast<int>(fy));
}

}  // namespace npe::gpu::detail
