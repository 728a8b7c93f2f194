// gpu/src/adjoint.h (private): the reverse mode (adjoint) of one substep of one scene, written by
// hand as __host__ __device__ functions shared by the CPU reference (diffsim.cpp) and the CUDA
// kernels (diffsim_cuda.cu). Notation: a bar is the adjoint (gradient of the loss) of a value.
//
// Forward substep (physics.h), per ball i of a scene, with control force u_i:
//   F_i = sum_j pair(i, j) + sum_walls/obstacles static(i) + u_i
//   v_i' = v_i + h (F_i / m_i + g),   x_i' = x_i + h v_i'
// Reverse, from (x', v')bar:  vbar_tot = v'bar + h x'bar;  xbar = x'bar;  vbar = vbar_tot;
//   Fbar_i = h vbar_tot / m_i;  ubar_i += Fbar_i;  mbar_i -= h vbar_tot . (F_i - ... ) / m_i^2 (via 1/m);
//   then each force term pushes Fbar back into x, v, r, m and the dashpot constant c = 2 zeta omega.
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

// Contact forces plus control forces (ux, uy: force per ball, may be null = none), added after
// each ball's contact forces.
template <class T, class Count>
NPE_HD void diff_forces(Count n, const T* x, const T* y, const T* vx, const T* vy, const T* r, const T* m,
                        const T* ux, const T* uy, T* fx, T* fy, const StepParams<T>& p) {
  contact_forces(n, x, y, vx, vy, r, m, fx, fy, p);
  if (ux) {
    NPE_UNROLL
    for (int i = 0; i < n; ++i) {
      fx[i] += ux[i];
      fy[i] += uy[i];
    }
  }
}

// One substep with control forces: with no controls, scene_substep's bits.
template <class T, class Count>
NPE_HD void diff_substep(Count n, T* x, T* y, T* vx, T* vy, const T* r, const T* m, const T* inv_m,
                         const T* ux, const T* uy, T* fx, T* fy, const StepParams<T>& p) {
  diff_forces(n, x, y, vx, vy, r, m, ux, uy, fx, fy, p);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) integrate(p, fx[i], fy[i], inv_m[i], x[i], y[i], vx[i], vy[i]);
}

// Adjoints a scene accumulates besides the state's: radius, mass (per ball) and the dashpot
// constant c (per scene).
template <class T>
struct ParamBars {
  T* r;  // [n]
  T* m;  // [n]
  T c;
};

// Adjoint of the pair force between balls i and j (see the header comment); g = Fbar_i - Fbar_j.
template <class T>
NPE_HD void pair_force_adjoint(T xi, T yi, T vxi, T vyi, T ri, T mi, T xj, T yj, T vxj, T vyj, T rj,
                               T mj, const ContactLaw<T>& law, T gx, T gy, T& dxbar_x, T& dxbar_y,
                               T& dvbar_x, T& dvbar_y, T& rbar, T& mibar, T& mjbar, T& cbar) {
  const T dx = xi - xj, dy = yi - yj;
  const T rr = ri + rj;
  const T d2 = dx * dx + dy * dy;
  dxbar_x = dxbar_y = dvbar_x = dvbar_y = rbar = mibar = mjbar = T(0);
  if (!(d2 < rr * rr)) return;
  const T d = hd_sqrt(d2);
  if (!(d > T(0))) return;  // coincident centres: the normal is a constant, no gradient
  const T nx = dx / d, ny = dy / d;
  const T delta = rr - d;
  const T dvx = vxi - vxj, dvy = vyi - vyj;
  const T vn = dvx * nx + dvy * ny;
  const T msum = mi + mj;
  const T meff = mi * mj / msum;
  const ContactMagnitude<T> q = contact_magnitude<T, true>(law, delta, vn);
  const T mag = meff * q.q;
  const T magbar = gx * nx + gy * ny;
  T nbx = mag * gx, nby = mag * gy;
  const T vnbar = meff * q.q_vn * magbar;
  const T deltabar = meff * q.q_delta * magbar;
  const T meffbar = q.q * magbar;
  cbar += meff * q.q_c * magbar;
  dvbar_x = vnbar * nx;
  dvbar_y = vnbar * ny;
  nbx += vnbar * dvx;
  nby += vnbar * dvy;
  rbar = deltabar;
  const T dbar = -deltabar;
  const T ndot = nbx * nx + nby * ny;
  dxbar_x = (nbx - ndot * nx) / d + dbar * nx;
  dxbar_y = (nby - ndot * ny) / d + dbar * ny;
  mibar = meffbar * (mj * mj) / (msum * msum);
  mjbar = meffbar * (mi * mi) / (msum * msum);
}

// Adjoint of one static contact (SDF s at the ball's centre) given the force adjoint (fbx, fby).
template <class T>
NPE_HD void static_contact_adjoint(const Sdf<T>& s, T vx, T vy, T r, T m, const ContactLaw<T>& law,
                                   T fbx, T fby, T& xbx, T& xby, T& vbx, T& vby, T& rbar, T& mbar,
                                   T& cbar) {
  const T delta = r - s.phi;
  if (!(delta > T(0))) return;
  const T vn = vx * s.nx + vy * s.ny;
  const ContactMagnitude<T> q = contact_magnitude<T, true>(law, delta, vn);
  const T mag = m * q.q;
  const T magbar = fbx * s.nx + fby * s.ny;
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
NPE_HD void boundary_adjoint(const StepParams<T>& p, T x, T y, T vx, T vy, T r, T m, T fbx, T fby,
                             T& xbx, T& xby, T& vbx, T& vby, T& rbar, T& mbar, T& cbar) {
  static_contact_adjoint(sdf_halfplane(x, y, T(1), T(0), T(0)), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar, mbar, cbar);
  static_contact_adjoint(sdf_halfplane(x, y, T(-1), T(0), -p.width), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar, mbar, cbar);
  static_contact_adjoint(sdf_halfplane(x, y, T(0), T(1), T(0)), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar, mbar, cbar);
  static_contact_adjoint(sdf_halfplane(x, y, T(0), T(-1), -p.height), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar, mbar, cbar);
  for (int k = 0; k < p.num_obstacles; ++k)
    static_contact_adjoint(sdf_obstacle(p.obstacles[k], x, y), vx, vy, r, m, p.law, fbx, fby, xbx, xby, vbx, vby, rbar, mbar, cbar);
}

// Reverse of diff_substep: (x, y, vx, vy) is the state *before* the substep (recomputed from a
// checkpoint), (ax, ay, avx, avy) the adjoint of the state after it on entry and of the state
// before it on return. Control adjoints are added to (ubx, uby) when given; parameter adjoints to
// `pb`. fx, fy, gx, gy are scratch of n entries.
template <class T, class Count>
NPE_HD void diff_substep_adjoint(Count n, const T* x, const T* y, const T* vx, const T* vy, const T* r,
                                 const T* m, const T* inv_m, const T* ux, const T* uy,
                                 const StepParams<T>& p, T* ax, T* ay, T* avx, T* avy, T* ubx, T* uby,
                                 ParamBars<T>& pb, T* fx, T* fy, T* gx, T* gy) {
  // forces at the state before the substep (as the forward step computed them)
  diff_forces(n, x, y, vx, vy, r, m, ux, uy, fx, fy, p);
  // integration: x' = x + h v', v' = v + h (F / m + g)
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    const T vbx = avx[i] + p.h * ax[i], vby = avy[i] + p.h * ay[i];
    avx[i] = vbx;
    avy[i] = vby;
    gx[i] = p.h * vbx * inv_m[i];  // Fbar
    gy[i] = p.h * vby * inv_m[i];
    // d(F / m)/dm = -F / m^2
    pb.m[i] += -(gx[i] * fx[i] + gy[i] * fy[i]) * inv_m[i];
    if (ubx) {
      ubx[i] += gx[i];
      uby[i] += gy[i];
    }
  }
  // walls and obstacles
  NPE_UNROLL
  for (int i = 0; i < n; ++i)
    boundary_adjoint(p, x[i], y[i], vx[i], vy[i], r[i], m[i], gx[i], gy[i], ax[i], ay[i], avx[i], avy[i],
                     pb.r[i], pb.m[i], pb.c);
  // pairs
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    NPE_UNROLL
    for (int j = i + 1; j < n; ++j) {
      T dxx, dxy, dvx, dvy, rb, mib, mjb;
      pair_force_adjoint(x[i], y[i], vx[i], vy[i], r[i], m[i], x[j], y[j], vx[j], vy[j], r[j], m[j], p.law,
                         gx[i] - gx[j], gy[i] - gy[j], dxx, dxy, dvx, dvy, rb, mib, mjb, pb.c);
      ax[i] += dxx;
      ay[i] += dxy;
      ax[j] -= dxx;
      ay[j] -= dxy;
      avx[i] += dvx;
      avy[i] += dvy;
      avx[j] -= dvx;
      avy[j] -= dvy;
      pb.r[i] += rb;
      pb.r[j] += rb;
      pb.m[i] += mib;
      pb.m[j] += mjb;
    }
  }
}

// Arrays of one rollout as a kernel sees them (engine layout, body b = ball * S + scene).
template <class T>
struct DiffArrays {
  const T *init, *mass, *radius, *damping, *controls;  // controls may be null
  T *traj, *ckpt;                                          // forward outputs
  const T* traj_bar;                                       // backward input
  T *g_init, *g_mass, *g_radius, *g_damping, *g_controls;  // backward outputs
  T* scratch;                                              // [K][4][N][S] (backward)
  int64_t S;
  int frames, substeps, k;  // frames, substeps per frame, checkpoint interval
};

// Per-scene local storage: n entries each (registers in the CUDA kernel).
template <class T>
struct SceneLocal {
  T *x, *y, *vx, *vy, *r, *m, *im, *ux, *uy, *fx, *fy;
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
NPE_HD void store_state(Count n, T* out, int64_t slot, int64_t S, int64_t s, const T* x, const T* y,
                        const T* vx, const T* vy) {
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

// Forward rollout of scene s: records frames into a.traj and every k-th state into a.ckpt.
template <class T, class Count>
NPE_HD void diff_scene_forward(Count n, const DiffArrays<T>& a, const StepParams<T>& p0, int64_t s,
                               const SceneLocal<T>& l) {
  const StepParams<T> p = load_scene(n, a, p0, s, l);
  load_state(n, a.init, 0, a.S, s, l.x, l.y, l.vx, l.vy);
  store_state(n, a.traj, 0, a.S, s, l.x, l.y, l.vx, l.vy);
  const int64_t total = static_cast<int64_t>(a.frames) * a.substeps;
  for (int64_t g = 0; g < total; ++g) {
    if (g % a.k == 0) store_state(n, a.ckpt, g / a.k, a.S, s, l.x, l.y, l.vx, l.vy);
    if (a.controls && g % a.substeps == 0) load_controls(n, a, s, static_cast<int>(g / a.substeps), l);
    diff_substep(n, l.x, l.y, l.vx, l.vy, l.r, l.m, l.im, a.controls ? l.ux : nullptr, l.uy, l.fx, l.fy, p);
    if ((g + 1) % a.substeps == 0) store_state(n, a.traj, (g + 1) / a.substeps, a.S, s, l.x, l.y, l.vx, l.vy);
  }
}

// Adjoint accumulators of one scene: n entries each.
template <class T>
struct SceneAdjoint {
  T *ax, *ay, *avx, *avy, *rb, *mb, *ubx, *uby, *gx, *gy;
};

// Adds a.traj_bar's frame `frame` of scene s to the state adjoint.
template <class T, class Count>
NPE_HD void add_traj_bar(Count n, const DiffArrays<T>& a, int64_t s, int64_t frame, const SceneAdjoint<T>& j) {
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    const T* o = a.traj_bar + (frame * 4 * n + i) * a.S + s;
    j.ax[i] += o[0];
    j.ay[i] += o[n * a.S];
    j.avx[i] += o[2 * n * a.S];
    j.avy[i] += o[3 * n * a.S];
  }
}

// Backward rollout of scene s: checkpointed reverse sweep; writes scene s's gradients.
template <class T, class Count>
NPE_HD void diff_scene_backward(Count n, const DiffArrays<T>& a, const StepParams<T>& p0, int64_t s,
                                const SceneLocal<T>& l, const SceneAdjoint<T>& j) {
  const StepParams<T> p = load_scene(n, a, p0, s, l);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) j.ax[i] = j.ay[i] = j.avx[i] = j.avy[i] = j.rb[i] = j.mb[i] = j.ubx[i] = j.uby[i] = T(0);
  ParamBars<T> pb{j.rb, j.mb, T(0)};
  add_traj_bar(n, a, s, a.frames, j);
  const int64_t total = static_cast<int64_t>(a.frames) * a.substeps;
  const int64_t segments = (total + a.k - 1) / a.k;
  for (int64_t seg = segments - 1; seg >= 0; --seg) {
    const int64_t g0 = seg * a.k, g1 = g0 + a.k < total ? g0 + a.k : total;
    // recompute the segment's states from its checkpoint
    load_state(n, a.ckpt, seg, a.S, s, l.x, l.y, l.vx, l.vy);
    for (int64_t g = g0; g < g1; ++g) {
      store_state(n, a.scratch, g - g0, a.S, s, l.x, l.y, l.vx, l.vy);
      if (a.controls && (g == g0 || g % a.substeps == 0)) load_controls(n, a, s, static_cast<int>(g / a.substeps), l);
      diff_substep(n, l.x, l.y, l.vx, l.vy, l.r, l.m, l.im, a.controls ? l.ux : nullptr, l.uy, l.fx, l.fy, p);
    }
    // and run the adjoint back through them
    for (int64_t g = g1 - 1; g >= g0; --g) {
      load_state(n, a.scratch, g - g0, a.S, s, l.x, l.y, l.vx, l.vy);
      const int frame = static_cast<int>(g / a.substeps);
      if (a.controls) load_controls(n, a, s, frame, l);
      diff_substep_adjoint(n, l.x, l.y, l.vx, l.vy, l.r, l.m, l.im, a.controls ? l.ux : nullptr, l.uy, p, j.ax,
                           j.ay, j.avx, j.avy, a.controls ? j.ubx : nullptr, j.uby, pb, l.fx, l.fy, j.gx, j.gy);
      if (g % a.substeps == 0) {
        add_traj_bar(n, a, s, frame, j);
        if (a.controls) {
          NPE_UNROLL
          for (int i = 0; i < n; ++i) {
            a.g_controls[((static_cast<int64_t>(frame) * 2 + 0) * n + i) * a.S + s] = j.ubx[i];
            a.g_controls[((static_cast<int64_t>(frame) * 2 + 1) * n + i) * a.S + s] = j.uby[i];
            j.ubx[i] = j.uby[i] = T(0);
          }
        }
      }
    }
  }
  store_state(n, a.g_init, 0, a.S, s, j.ax, j.ay, j.avx, j.avy);
  NPE_UNROLL
  for (int i = 0; i < n; ++i) {
    a.g_radius[i * a.S + s] = j.rb[i];
    a.g_mass[i * a.S + s] = j.mb[i];
  }
  a.g_damping[s] = pb.c;
}

}  // namespace npe::gpu::detail
