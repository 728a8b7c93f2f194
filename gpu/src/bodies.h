// gpu/src/bodies.h (private): per-body steps over structure-of-arrays state, shared by the CPU
// reference's grid path and the CUDA per-body kernels (large scenes, grid broad phase).
#pragma once

#include "physics.h"

namespace npe::gpu::detail {

// Read-only view of all bodies: [num_balls][num_scenes] arrays, body b = ball * S + scene.
template <class T>
struct BodiesK {
  const T *x, *y, *vx, *vy;  // px, px/s
  const T *r, *m, *inv_m;    // px, mass, 1 / mass
  int64_t num_scenes, num_balls;
};

// Writable state arrays (the other buffer of a ping-pong pair).
template <class T>
struct StateOutK {
  T *x, *y, *vx, *vy;
};

// The grid after a counting sort: bodies of cell c are sorted[start[c] .. start[c + 1]), in
// ascending body index.
struct CellsK {
  const int* start;   // [num_cells + 1]
  const int* sorted;  // [num_bodies]
};

template <class T>
NPE_HD void add_pair(const BodiesK<T>& b, int64_t i, int64_t j, const ContactLaw<T>& law, T& fx, T& fy) {
  T gx, gy;
  if (pair_force(b.x[i], b.y[i], b.vx[i], b.vy[i], b.r[i], b.m[i], b.x[j], b.y[j], b.vx[j], b.vy[j], b.r[j], b.m[j],
                 i < j, law, gx, gy)) {
    fx += gx;
    fy += gy;
  }
}

// Ball-ball force on body i from every other ball of its scene, in ascending ball order.
template <class T>
NPE_HD void gather_all_pairs(const BodiesK<T>& b, int64_t i, const ContactLaw<T>& law, T& fx, T& fy) {
  const int64_t scene = i % b.num_scenes;
  for (int64_t ball = 0; ball < b.num_balls; ++ball) {
    const int64_t j = ball * b.num_scenes + scene;
    if (j != i) add_pair(b, i, j, law, fx, fy);
  }
}

// Ball-ball force on body i from the balls of the 3 x 3 cells around its own, cell by cell
// (rows then columns), each cell in ascending body order.
template <class T>
NPE_HD void gather_grid(const BodiesK<T>& b, const GridK<T>& g, const CellsK& cells, int64_t i,
                        const ContactLaw<T>& law, T& fx, T& fy) {
  const int64_t scene = i % b.num_scenes;
  int cx, cy;
  cell_coords(g, b.x[i], b.y[i], cx, cy);
  const int64_t base = scene * static_cast<int64_t>(g.nx) * g.ny;
  for (int yy = cy - 1; yy <= cy + 1; ++yy) {
    if (yy < 0 || yy >= g.ny) continue;
    for (int xx = cx - 1; xx <= cx + 1; ++xx) {
      if (xx < 0 || xx >= g.nx) continue;
      const int64_t c = base + static_cast<int64_t>(yy) * g.nx + xx;
      for (int k = cells.start[c]; k < cells.start[c + 1]; ++k) {
        const int64_t j = cells.sorted[k];
        if (j != i) add_pair(b, i, j, law, fx, fy);
      }
    }
  }
}

// Cell index of body i (scene-major, then row, then column).
template <class T>
NPE_HD int64_t body_cell(const BodiesK<T>& b, const GridK<T>& g, int64_t i) {
  int cx, cy;
  cell_coords(g, b.x[i], b.y[i], cx, cy);
  return (i % b.num_scenes) * static_cast<int64_t>(g.nx) * g.ny + static_cast<int64_t>(cy) * g.nx + cx;
}

// One substep of body i: contact forces (all pairs or grid), walls and obstacles, semi-implicit
// Euler; reads the old state `b`, writes the new one to `out`.
template <class T, bool kGrid>
NPE_HD void body_substep(const BodiesK<T>& b, const GridK<T>& g, const CellsK& cells, const StepParams<T>& p, int64_t i,
                         const StateOutK<T>& out) {
  T fx = T(0), fy = T(0);
  if (kGrid)
    gather_grid(b, g, cells, i, p.law, fx, fy);
  else
    gather_all_pairs(b, i, p.law, fx, fy);
  T x = b.x[i], y = b.y[i], vx = b.vx[i], vy = b.vy[i];
  add_boundary_forces(p, x, y, vx, vy, b.r[i], b.m[i], fx, fy);
  integrate(p, fx, fy, b.inv_m[i], x, y, vx, vy);
  out.x[i] = x;
  out.y[i] = y;
  out.vx[i] = vx;
  out.vy[i] = vy;
}

}  // namespace npe::gpu::detail
