// gpu/src/adjoint.h (private): the reverse mode (adjoint) of one substep of one scene, written by
// hand as __host__ __device__ functions shared by the CPU reference (diffsim.cpp) and the CUDA
// kernels (diffsim_cuda.cu). Notation: a bar is the adjoint (gradient of the loss) of a value.
//
// Forward substep (physics.h), per ball i of a scene, with control force u_i:
//   F_i = sum_j pair(i, j) + sum_walls/obstacles static(i) + u_i
//   v_i' = v_i + h (F_i / m_i + g),   x_i' = x_i + h v_i'
// Reverse, from (x', v')bar:  vbar_tot = v'bar + h x'bar;  xbar = x'bar;  vbar = vbar_tot;
//   Fbar_i = h vbar_tot / m_i;  ubar_i += Fbar_i;  mbar_i -= Fbar_i . F_i / m_i (summed term by term
//   as the force adjoints below meet each F term); then each force term pushes Fbar back into x, v,
//   r, m and the dashpot constant c = 2 zeta omega.
// The reverse sweep is written per ball: ball i computes its own forces and its own side of each
// pair's adjoint (pairs are evaluated twice, once by each ball), so that on CUDA one lane per ball
// runs it with nothing but its own adjoints in registers and no atomics.
// Pair force F_i = mag n, F_j = -F_i, mag = m_eff q(delta, v_n) (physics.h contact_magnitude, with
//   q = omega^2 delta - c v_n past the onset ramp), delta = r_i + r_j - d,
//   d = |x_i - x_j|, n = (x_i - x_j) / d, v_n = (v_i - v_j) . n; its adjoint takes G = Fbar_i - Fbar_j:
//   magbar = G . n, vnbar = m_eff q_vn magbar, deltabar = m_eff q_delta magbar,
//   nbar = mag G + vnbar dv, dxbar = (nbar - (nbar . n) n) / d - deltabar n.
// Static contact F = m q(delta, v_n) n with delta = r - phi(x), n = grad phi(x):
//   xbar += -deltabar n + kappa (nbar - (nbar . n) n)   (the SDF's Hessian is kappa (I - n n^T)).
#pragma once

#include "physics.h"

namespace npe::gpu::detail {

// One substep with control forces (ux, uy: force per ball, may be null = none, added after each
// ball's contact forces): with no controls, scene_substep's bits. Returns contact_forces' bits
// of the balls in contact.
template <class T, class Count>
NPE_HD uint32_t diff_substep(Count n, T* x, T* y, T* vx, T* vy, const T* r, const T* m, const T* inv_m, const T* ux,
                             const T* uy, T* fx, T* fy, const StepParams<T>& p) {
  const uint32_t touched = contact_forces(n, x, y, vx, vy, r, m, fx, fy, p);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    if (ux) {
      fx[i] += ux[i];
      fy[i] += uy[i];
    }
    integrate(p, fx[i], fy[i], inv_m[i], x[i], y[i], vx[i], vy[i]);
  }
  return touched;
}

// Adjoint of the pair force on ball i from ball j, ball i's side only (the header comment's
// formulas): g = Fbar_i - Fbar_j with (gix, giy) = Fbar_i. Adds to ball i's position and velocity
// adjoints, radius and mass adjoints, the dashpot adjoint `cbar`, and `fdot` += Fbar_i . F_ij
// (for the mass adjoint of the integration, d(F/m)/dm = -F/m^2).
template <class T>
NPE_HD void pair_adjoint_ball(T xi, T yi, T vxi, T vyi, T ri, T mi, T xj, T yj, T vxj, T vyj, T rj, T mj, bool i_lower,
                              const ContactLaw<T>& law, T gix, T giy, T gjx, T gjy, T& ax, T& ay, T& avx, T& avy,
                              T& rbar, T& mbar, T& cbar, T& fdot) {
  const T dx = xi - xj, dy = yi - yj;
  const T rr = ri + rj;
  const T d2 = dx * dx + dy * dy;
  if (!(d2 < rr * rr)) return;
  const T d = hd_sqrt(d2);
  // coincident centres: pair_force's fixed normal (+-x by index order); the force has no
  // derivative in the positions there, but one in velocities, radii, masses and the dashpot
  const bool apart = d > T(0);
  const T nx = apart ? dx / d : (i_lower ? T(1) : T(-1)), ny = apart ? dy / d : T(0);
  const T delta = rr - d;
  const T dvx = vxi - vxj, dvy = vyi - vyj;
  const T vn = dvx * nx + dvy * ny;
  const T msum = mi + mj;
  const T meff = mi * mj / msum;
  const ContactMagnitude<T> q = contact_magnitude<T, true>(law, delta, vn);
  const T mag = meff * q.q;
  const T gx = gix - gjx, gy = giy - gjy;
  const T magbar = gx * nx + gy * ny;
  fdot += mag * (gix * nx + giy * ny);
  T nbx = mag * gx, nby = mag * gy;
  const T vnbar = meff * q.q_vn * magbar;
  const T deltabar = meff * q.q_delta * magbar;
  const T meffbar = q.q * magbar;
  cbar += meff * q.q_c * magbar;
  avx += vnbar * nx;
  avy += vnbar * ny;
  nbx += vnbar * dvx;
  nby += vnbar * dvy;
  rbar += deltabar;
  if (apart) {
    const T ndot = nbx * nx + nby * ny;
    ax += (nbx - ndot * nx) / d - deltabar * nx;
    ay += (nby - ndot * ny) / d - deltabar * ny;
  }
  mbar += meffbar * (mj * mj) / (msum * msum);
}

// Adjoint of one static contact (SDF s at the ball's centre) given the force adjoint (fbx, fby);
// `fdot` += Fbar . F as in pair_adjoint_ball.
template <class T>
NPE_HD void static_contact_adjoint(const Sdf<T>& s, T vx, T vy, T r, T m, const ContactLaw<T>& law, T fbx, T fby,
                                   T& xbx, T& xby, T& vbx, T& vby, T& rbar, T& mbar, T& cbar, T& fdot) {
  const T delta = r - s.phi;
  if (!(delta > T(0))) return;
  const T vn = vx * s.nx + vy * s.ny;
  const ContactMagnitude<T> q = contact_magnitude<T, true>(law, delta, vn);
  const T mag = m * q.q;
  const T magbar = fbx * s.nx + fby * s.ny;
  fdot += mag * magbar;
  T nbx = mag * fbx, nby = mag * fby;
  const T vnbar = m * q.q_vn * magbar;
  const T deltabar = m * q.q_delta * magbar;
  mbar += q.q * magbar;
  cbar += m * q.q_c * magbar;
  vbx += vnbar * s.nx;
  vby += vnbar * s.ny;
  nbx += vnbar * vx;
  nby += vnbar * vy;
  rbar += deltabar;
  const T ndot = nbx * s.nx + nby * s.ny;
  xbx += -deltabar * s.nx + s.kappa * (nbx - ndot * s.nx);
  xby += -deltabar * s.ny + s.kappa * (nby - ndot * s.ny);
}

// Adjoint of add_boundary_forces: the four walls and the obstacles.
template <class T>
NPE_HD void boundary_adjoint(const StepParams<T>& p, T x, T y, T vx, T vy, T r, T m, T fbx, T fby, T& xbx, T& xby,
                             T& vbx, T& vby, T& rbar, T& mbar, T& cbar, T& fdot) {
  static_contact_adjoint(sdf_halfplane(x, y, T(1), T(0), T(0)), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar,
                         mbar, cbar, fdot);
  static_contact_adjoint(sdf_halfplane(x, y, T(-1), T(0), -p.width), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby,
                         rbar, mbar, cbar, fdot);
  static_contact_adjoint(sdf_halfplane(x, y, T(0), T(1), T(0)), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar,
                         mbar, cbar, fdot);
  static_contact_adjoint(sdf_halfplane(x, y, T(0), T(-1), -p.height), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby,
                         rbar, mbar, cbar, fdot);
  for (int k = 0; k < p.num_obstacles; ++k)
    static_contact_adjoint(sdf_obstacle(p.obstacles[k], x, y), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar,
                           mbar, cbar, fdot);
}

// The state of a scene's balls as every ball of it reads them in the backward sweep: element j
// of a field at [j * stride] (the CPU: local arrays, stride 1; CUDA: the warp's shared memory,
// interleaved with the warp's other scenes). (gx, gy) is each ball's force adjoint Fbar.
template <class T>
struct SceneView {
  T *x, *y, *vx, *vy, *gx, *gy, *r, *m;  // r and m: the same for both buffers
  int stride;
};

// Force on ball i (state x, y, vx, vy, radius r, mass m) of a scene whose other balls' states
// are in `v`, bitwise as contact_forces computes it: partners in ascending index order, then walls
// and obstacles. contact_forces evaluates each pair with the lower index first and subtracts it
// from the higher-index ball; pair_force is antisymmetric to the bit (a swap negates dx, dy and
// the normal exactly, leaves d, v_n and m_eff unchanged, and i_lower orients coincident centres),
// and a - (-b) == a + b in IEEE arithmetic, so evaluating every pair with ball i first and adding
// gives the same bits.
// Returns whether any pair touched ball i (a partner within contact distance).
template <class T, class Count>
NPE_HD bool ball_contact_force(Count n, int i, T x, T y, T vx, T vy, T r, T m, const SceneView<T>& v,
                               const StepParams<T>& p, T& fx, T& fy) {
  fx = fy = T(0);
  bool touched = false;
  NPE_UNROLL
  for (int j = 0; j < n; ++j) {
    if (j == i) continue;
    const int o = j * v.stride;
    T gx, gy;
    if (pair_force(x, y, vx, vy, r, m, v.x[o], v.y[o], v.vx[o], v.vy[o], v.r[o], v.m[o], i < j, p.law, gx, gy)) {
      fx += gx;
      fy += gy;
      touched = true;
    }
  }
  add_boundary_forces(p, x, y, vx, vy, r, m, fx, fy);
  return touched;
}

// One ball's private part of the backward sweep: its state at the current substep, its control
// force, and the adjoints it accumulates (state, radius, mass, control; `c` is its share of the
// scene's dashpot adjoint: its walls and obstacles and its pairs with higher-index partners).
// `word` caches the forward pass's contact word `word_at` of this ball (DiffArrays::contacts).
template <class T>
struct BallAdjoint {
  T x, y, vx, vy, r, m, im, ux, uy;
  T ax, ay, avx, avy, rb, mb, ubx, uby, c, gx, gy;
  uint32_t word;
  int64_t word_at;
};

// Reverse of ball i's integration, x' = x + h v', v' = v + h (F / m + g): on entry b's state
// adjoint is that after the substep; on return vbar holds vbar' + h xbar' and (gx, gy) = Fbar.
template <class T>
NPE_HD void ball_integration_adjoint(T h, BallAdjoint<T>& b) {
  b.avx += h * b.ax;
  b.avy += h * b.ay;
  b.gx = h * b.avx * b.im;
  b.gy = h * b.avy * b.im;
}

// Reverse of ball i's forces given every ball's Fbar in `v` (after ball_integration_adjoint of
// all of them): b's adjoints become those of the state before the substep. `contact`: whether
// ball i touched anything in this substep; when false, the wall, obstacle and pair adjoints are
// skipped (each would return on the same test that found no contact: no bit changes) and
// neither b's state nor `v` is read.
template <class T, class Count>
NPE_HD void ball_contact_adjoint(Count n, int i, const SceneView<T>& v, const StepParams<T>& p, bool controls,
                                 bool contact, BallAdjoint<T>& b) {
  T fdot = T(0);
  if (controls) {
    b.ubx += b.gx;
    b.uby += b.gy;
    fdot = b.gx * b.ux + b.gy * b.uy;
  }
  if (contact)
    boundary_adjoint(p, b.x, b.y, b.vx, b.vy, b.r, b.m, b.gx, b.gy, b.ax, b.ay, b.avx, b.avy, b.rb, b.mb, b.c, fdot);
  const int st = v.stride;
  NPE_UNROLL
  for (int j = 0; j < n; ++j) {
    if (j == i || !contact) continue;
    const int o = j * st;
    T cpair = T(0);
    pair_adjoint_ball(b.x, b.y, b.vx, b.vy, b.r, b.m, v.x[o], v.y[o], v.vx[o], v.vy[o], v.r[o], v.m[o], i < j, p.law,
                      b.gx, b.gy, v.gx[o], v.gy[o], b.ax, b.ay, b.avx, b.avy, b.rb, b.mb, cpair, fdot);
    if (i < j) b.c += cpair;  // each pair's dashpot term once, by its lower-index ball
  }
  b.mb -= fdot * b.im;
}

// Arrays of one rollout as a kernel sees them (engine layout, body b = ball * S + scene).
template <class T>
struct DiffArrays {
  const T *init, *mass, *radius, *damping, *controls;      // controls may be null
  T *traj, *ckpt;                                          // forward outputs
  const T* traj_bar;                                       // backward input
  T *g_init, *g_mass, *g_radius, *g_damping, *g_controls;  // backward outputs
  T* scratch;                                              // [K][4][N][S] (backward)
  // [ceil(substeps / 32)][N][S]: bit g % 32 of word [g / 32][i][s] is set when ball i of scene s
  // touched a ball, wall or obstacle in substep g. Written by the forward sweep (when not null),
  // read by the backward sweep (null: every substep is treated as one with contacts).
  uint32_t* contacts;
  int64_t S;
  int frames, substeps, k;  // frames, substeps per frame, checkpoint interval
};

// Per-scene local storage: n entries each (registers in the CUDA kernel).
template <class T>
struct SceneLocal {
  T *x, *y, *vx, *vy, *r, *m, *im, *ux, *uy, *fx, *fy;
  uint32_t* words;  // the contact word being filled, per ball
};

template <class T, class Count>
NPE_HD void load_controls(Count n, const DiffArrays<T>& a, int64_t s, int frame, const SceneLocal<T>& l) {
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    l.ux[i] = a.controls[((static_cast<int64_t>(frame) * 2 + 0) * n + i) * a.S + s];
    l.uy[i] = a.controls[((static_cast<int64_t>(frame) * 2 + 1) * n + i) * a.S + s];
  }
}

template <class T, class Count>
NPE_HD void store_state(Count n, T* out, int64_t slot, int64_t S, int64_t s, const T* x, const T* y, const T* vx,
                        const T* vy) {
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    T* o = out + (slot * 4 * n + i) * S + s;
    o[0] = x[i];
    o[n * S] = y[i];
    o[2 * n * S] = vx[i];
    o[3 * n * S] = vy[i];
  }
}

template <class T, class Count>
NPE_HD void load_state(Count n, const T* in, int64_t slot, int64_t S, int64_t s, T* x, T* y, T* vx, T* vy) {
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    const T* o = in + (slot * 4 * n + i) * S + s;
    x[i] = o[0];
    y[i] = o[n * S];
    vx[i] = o[2 * n * S];
    vy[i] = o[3 * n * S];
  }
}

// Scene `s`'s parameters into local arrays and its step parameters (per-scene dashpot).
template <class T, class Count>
NPE_HD StepParams<T> load_scene(Count n, const DiffArrays<T>& a, StepParams<T> p, int64_t s, const SceneLocal<T>& l) {
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    l.r[i] = a.radius[i * a.S + s];
    l.m[i] = a.mass[i * a.S + s];
    l.im[i] = T(1) / l.m[i];
  }
  p.law.damping = a.damping[s];
  return p;
}

// Forward rollout of scene s: records frames into a.traj, every k-th state into a.ckpt and, when
// a.contacts is set, which balls touched something in each substep (DiffArrays::contacts).
template <class T, class Count>
NPE_HD void diff_scene_forward(Count n, const DiffArrays<T>& a, const StepParams<T>& p0, int64_t s,
                               const SceneLocal<T>& l) {
  const StepParams<T> p = load_scene(n, a, p0, s, l);
  load_state(n, a.init, 0, a.S, s, l.x, l.y, l.vx, l.vy);
  store_state(n, a.traj, 0, a.S, s, l.x, l.y, l.vx, l.vy);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) l.words[i] = 0;
  const int64_t total = static_cast<int64_t>(a.frames) * a.substeps;
  for (int64_t g = 0; g < total; ++g) {
    if (g % a.k == 0) store_state(n, a.ckpt, g / a.k, a.S, s, l.x, l.y, l.vx, l.vy);
    if (a.controls && g % a.substeps == 0) load_controls(n, a, s, static_cast<int>(g / a.substeps), l);
    const uint32_t touched = diff_substep(n, l.x, l.y, l.vx, l.vy, l.r, l.m, l.im, a.controls ? l.ux : nullptr, l.uy,
                                          l.fx, l.fy, p);
    if (a.contacts) {
      const int bit = static_cast<int>(g & 31);
      if (touched) {
        NPE_UNROLL
        for (int i = 0; i < n; ++i) l.words[i] |= ((touched >> i) & 1u) << bit;
      }
      if (bit == 31 || g + 1 == total) {
        NPE_UNROLL
        for (int i = 0; i < n; ++i) {
          a.contacts[((g >> 5) * n + i) * a.S + s] = l.words[i];
          l.words[i] = 0;
        }
      }
    }
    if ((g + 1) % a.substeps == 0) store_state(n, a.traj, (g + 1) / a.substeps, a.S, s, l.x, l.y, l.vx, l.vy);
  }
}

// Backward rollout of scene s, checkpointed reverse sweep, run by a team that owns the scene's
// balls: the CPU's team is one thread owning every ball; the CUDA kernel's is one lane per ball.
// A team provides
//   each(f)   calls f(BallAdjoint<T>& b, int i) for each ball i it owns, in ascending order;
//   any(f)    whether f(b, i) holds for some ball the team owns or runs beside (f is called for
//             each ball it owns; CUDA: any lane of the warp, so that the answer is warp-uniform);
//   view(k)   the SceneView of exchange buffer k (0 or 1: an exchanging substep writes one while
//             the previous exchanging substep's may still be read by slower lanes; substeps that
//             do not exchange touch neither, so `buf` flips only on exchanges);
//   sync()    after it, every ball's writes to a view are visible to every ball of the scene.
// Writes scene s's gradients; the dashpot's is the sum of the balls' shares in ball order, so the
// bits do not depend on the team.
//
// Contact-sparse sweep: at a substep where no ball of the team touched anything (the forward
// pass's contact words), the forces are exactly zero, so the recomputation only integrates, the
// adjoint only reverses the integration, and neither stores, loads or exchanges states. Only the
// substeps with a contact pay for the scratch round trip, the exchange and the contact adjoints;
// a ball without contact in such a substep skips its own contact tests (exact: they would find
// none). The bits are those of the dense sweep (a.contacts null), which the tests check.
template <class T, class Count, class Team>
NPE_HD void diff_scene_backward(Count n, const DiffArrays<T>& a, const StepParams<T>& p0, int64_t s, Team& team) {
  StepParams<T> p = p0;
  p.law.damping = a.damping[s];
  const bool controls = a.controls != nullptr;
  // state arrays [slot][4][n][S]: component c of ball i in slot k at (k * 4 n + c n + i) S + s
  const int64_t comp = static_cast<int64_t>(n) * a.S, per_slot = 4 * comp;
  auto at = [&](auto* base, int64_t k, int i) { return base + k * per_slot + i * a.S + s; };
  auto load4 = [&](const T* q, T& x, T& y, T& vx, T& vy) {
    x = q[0];
    y = q[comp];
    vx = q[2 * comp];
    vy = q[3 * comp];
  };
  auto store4 = [&](T* q, T x, T y, T vx, T vy) {
    q[0] = x;
    q[comp] = y;
    q[2 * comp] = vx;
    q[3 * comp] = vy;
  };
  auto add_traj_bar = [&](BallAdjoint<T>& b, int i, int64_t frame) {
    T x, y, vx, vy;
    load4(at(a.traj_bar, frame, i), x, y, vx, vy);
    b.ax += x;
    b.ay += y;
    b.avx += vx;
    b.avy += vy;
  };
  // controls [frame][2][n][S]
  auto control = [&](auto* base, int frame, int c, int i) {
    return base + ((static_cast<int64_t>(frame) * 2 + c) * n + i) * a.S + s;
  };
  auto load_u = [&](BallAdjoint<T>& b, int i, int frame) {
    b.ux = *control(a.controls, frame, 0, i);
    b.uy = *control(a.controls, frame, 1, i);
  };
  // ball i's state into the view, which its partners read after the next sync
  auto publish = [&](const BallAdjoint<T>& b, int i, const SceneView<T>& v) {
    const int o = i * v.stride;
    v.x[o] = b.x;
    v.y[o] = b.y;
    v.vx[o] = b.vx;
    v.vy[o] = b.vy;
  };
  // whether ball i touched anything in substep g (always, without contact words)
  auto contact = [&](BallAdjoint<T>& b, int i, int64_t g) {
    if (!a.contacts) return true;
    const int64_t w = g >> 5;
    if (w != b.word_at) {
      b.word = a.contacts[(w * n + i) * a.S + s];
      b.word_at = w;
    }
    return ((b.word >> (g & 31)) & 1u) != 0;
  };
  team.each([&](BallAdjoint<T>& b, int i) {
    b.r = a.radius[i * a.S + s];
    b.m = a.mass[i * a.S + s];
    b.im = T(1) / b.m;
    b.ux = b.uy = b.gx = b.gy = T(0);
    b.ax = b.ay = b.avx = b.avy = b.rb = b.mb = b.ubx = b.uby = b.c = T(0);
    b.word = 0;
    b.word_at = -1;
    add_traj_bar(b, i, a.frames);
    const SceneView<T> v = team.view(0);
    v.r[i * v.stride] = b.r;
    v.m[i * v.stride] = b.m;
  });
  team.sync();
  int buf = 0;
  const int64_t total = static_cast<int64_t>(a.frames) * a.substeps;
  const int64_t segments = (total + a.k - 1) / a.k;
  for (int64_t seg = segments - 1; seg >= 0; --seg) {
    const int64_t g0 = seg * a.k, g1 = g0 + a.k < total ? g0 + a.k : total;
    const int len = static_cast<int>(g1 - g0);
    // recompute the segment's states from its checkpoint, bitwise as the forward sweep did (a
    // one-substep segment has nothing to recompute: the adjoint loads the checkpoint if it needs it)
    if (len > 1) team.each([&](BallAdjoint<T>& b, int i) { load4(at(a.ckpt, seg, i), b.x, b.y, b.vx, b.vy); });
    int frame = static_cast<int>(g0 / a.substeps), sub = static_cast<int>(g0 % a.substeps);
    // (with len > 1 the segment's last state stays in the balls' registers: the adjoint starts
    // from it, and the state after it, the next checkpoint, is never needed)
    for (int k = 0; k + 1 < len; ++k) {
      const int64_t g = g0 + k;
      const bool exchange = team.any([&](BallAdjoint<T>& b, int i) { return contact(b, i, g); });
      const SceneView<T> v = team.view(buf);
      team.each([&](BallAdjoint<T>& b, int i) {
        if (controls && (k == 0 || sub == 0)) load_u(b, i, frame);
        if (exchange) {
          store4(at(a.scratch, k, i), b.x, b.y, b.vx, b.vy);
          publish(b, i, v);
        }
      });
      if (exchange) team.sync();
      team.each([&](BallAdjoint<T>& b, int i) {
        T fx = T(0), fy = T(0);  // a ball without contact: contact_forces' exact (+0, +0)
        if (exchange && contact(b, i, g)) ball_contact_force(n, i, b.x, b.y, b.vx, b.vy, b.r, b.m, v, p, fx, fy);
        if (controls) {
          fx += b.ux;
          fy += b.uy;
        }
        integrate(p, fx, fy, b.im, b.x, b.y, b.vx, b.vy);
      });
      if (exchange) buf ^= 1;
      if (++sub == a.substeps) sub = 0, ++frame;
    }
    // and run the adjoint back through them
    frame = static_cast<int>((g1 - 1) / a.substeps);
    sub = static_cast<int>((g1 - 1) % a.substeps);
    for (int k = len - 1; k >= 0; --k) {
      const int64_t g = g0 + k;
      const bool exchange = team.any([&](BallAdjoint<T>& b, int i) { return contact(b, i, g); });
      const SceneView<T> v = team.view(buf);
      team.each([&](BallAdjoint<T>& b, int i) {
        if (controls) load_u(b, i, frame);
        ball_integration_adjoint(p.h, b);
        if (exchange) {
          if (k + 1 < len)
            load4(at(a.scratch, k, i), b.x, b.y, b.vx, b.vy);
          else if (len == 1)
            load4(at(a.ckpt, seg, i), b.x, b.y, b.vx, b.vy);
          publish(b, i, v);
          v.gx[i * v.stride] = b.gx;
          v.gy[i * v.stride] = b.gy;
        }
      });
      if (exchange) team.sync();
      team.each([&](BallAdjoint<T>& b, int i) {
        ball_contact_adjoint(n, i, v, p, controls, exchange && contact(b, i, g), b);
        if (sub == 0) {
          add_traj_bar(b, i, frame);
          if (controls) {
            *control(a.g_controls, frame, 0, i) = b.ubx;
            *control(a.g_controls, frame, 1, i) = b.uby;
            b.ubx = b.uby = T(0);
          }
        }
      });
      if (exchange) buf ^= 1;
      if (sub-- == 0) sub = a.substeps - 1, --frame;
    }
  }
  const SceneView<T> v = team.view(buf);
  team.each([&](BallAdjoint<T>& b, int i) {
    store4(at(a.g_init, 0, i), b.ax, b.ay, b.avx, b.avy);
    a.g_radius[i * a.S + s] = b.rb;
    a.g_mass[i * a.S + s] = b.mb;
    v.gx[i * v.stride] = b.c;
  });
  team.sync();
  team.each([&](BallAdjoint<T>&, int i) {
    if (i != 0) return;
    T c = T(0);
    for (int j = 0; j < n; ++j) c += v.gx[j * v.stride];
    a.g_damping[s] = c;
  });
}

}  // namespace npe::gpu::detail
