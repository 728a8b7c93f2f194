// The CPU reference: the same per-scene and per-body functions as the CUDA kernels, looped on
// host threads. Results do not depend on the thread count: every scene (or body) is computed by
// exactly one thread from the previous substep's state.
#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "bodies.h"
#include "engine_internal.h"
#include "npe/core/error.h"
#include "npe/core/parallel.h"

namespace npe::gpu {
namespace {

using namespace detail;

template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Counting sort of bodies by cell, in body order, so every cell lists its bodies ascending.
template <class T>
void build_cells(const BodiesK<T>& b, const GridK<T>& g, int64_t num_cells, std::vector<int>& start,
                 std::vector<int>& sorted, std::vector<int64_t>& cell_of) {
  const int64_t n = b.num_balls * b.num_scenes;
  start.assign(static_cast<size_t>(num_cells) + 1, 0);
  cell_of.resize(static_cast<size_t>(n));
  sorted.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    cell_of[i] = body_cell(b, g, i);
    ++start[cell_of[i] + 1];
  }
  for (int64_t c = 0; c < num_cells; ++c) start[c + 1] += start[c];
  std::vector<int> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) sorted[fill[cell_of[i]]++] = static_cast<int>(i);
}

// Scenes one at a time: each thread keeps its scene in local arrays for all substeps.
template <class T>
void advance_scenes(const WorldSpec& spec, WorldState<T>& st, int frames, const Recorder<T>& rec, int first_frame,
                    int threads, const StepParams<T>& p, const std::vector<T>& radius, const std::vector<T>& mass,
                    const std::vector<T>& inv_mass) {
  const int64_t S = spec.num_scenes, N = spec.num_balls;
  parallel_for(S, threads, [&](int64_t s0, int64_t s1) {
    std::vector<T> x(N), y(N), vx(N), vy(N), r(N), m(N), im(N), fx(N), fy(N);
    for (int64_t s = s0; s < s1; ++s) {
      for (int64_t i = 0; i < N; ++i) {
        const int64_t b = i * S + s;
        x[i] = st.x[b], y[i] = st.y[b], vx[i] = st.vx[b], vy[i] = st.vy[b];
        r[i] = radius[b], m[i] = mass[b], im[i] = inv_mass[b];
      }
      for (int f = 0; f < frames; ++f) {
        for (int k = 0; k < spec.substeps; ++k)
          scene_substep(static_cast<int>(N), x.data(), y.data(), vx.data(), vy.data(), r.data(), m.data(), im.data(),
                        fx.data(), fy.data(), p);
        if (rec.out)
          for (int64_t i = 0; i < N; ++i) record_body(rec, first_frame + f, i, s, x[i], y[i], vx[i], vy[i], m[i]);
      }
      for (int64_t i = 0; i < N; ++i) {
        const int64_t b = i * S + s;
        st.x[b] = x[i], st.y[b] = y[i], st.vx[b] = vx[i], st.vy[b] = vy[i];
      }
    }
  });
}

// Bodies one at a time per substep (large scenes): ping-pong between two state buffers.
template <class T, bool kGrid>
void advance_bodies(const WorldSpec& spec, WorldState<T>& st, int frames, const Recorder<T>& rec, int first_frame,
                    int threads, const StepParams<T>& p, const std::vector<T>& radius, const std::vector<T>& mass,
                    const std::vector<T>& inv_mass) {
  const int64_t n = spec.num_bodies();
  WorldState<T> other(n);
  WorldState<T>* cur = &st;
  WorldState<T>* next = &other;
  const GridK<T> g = grid_params<T>(spec);
  const int64_t num_cells = kGrid ? grid_cells(spec) : 0;
  std::vector<int> start, sorted;
  std::vector<int64_t> cell_of;
  for (int f = 0; f < frames; ++f) {
    for (int k = 0; k < spec.substeps; ++k) {
      const BodiesK<T> b{cur->x.data(), cur->y.data(),   cur->vx.data(),  cur->vy.data(), radius.data(),
                         mass.data(),   inv_mass.data(), spec.num_scenes, spec.num_balls};
      if (kGrid) build_cells(b, g, num_cells, start, sorted, cell_of);
      const CellsK cells{start.data(), sorted.data()};
      const StateOutK<T> out{next->x.data(), next->y.data(), next->vx.data(), next->vy.data()};
      parallel_for(n, threads, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) body_substep<T, kGrid>(b, g, cells, p, i, out);
      });
      std::swap(cur, next);
    }
    if (rec.out) record_cpu(spec, *cur, rec, first_frame + f);
  }
  if (cur != &st) st = std::move(*cur);
}

}  // namespace

template <class T>
void record_cpu(const WorldSpec& spec, const WorldState<T>& st, const Recorder<T>& rec, int frame) {
  check_state(spec, st, "record_cpu");
  const int64_t S = spec.num_scenes;
  for (int64_t b = 0; b < spec.num_bodies(); ++b)
    record_body(rec, frame, b / S, b % S, st.x[b], st.y[b], st.vx[b], st.vy[b], static_cast<T>(spec.mass[b]));
}

template <class T>
void advance_cpu(const WorldSpec& spec, WorldState<T>& st, int frames, const Recorder<T>& rec, int first_frame,
                 int threads) {
  validate(spec);
  check_state(spec, st, "advance_cpu");
  if (frames < 0) throw Error(fmt::format("advance_cpu: expected frames >= 0, found {}", frames));
  const std::vector<ObstacleK<T>> obstacles = kernel_obstacles<T>(spec);
  const StepParams<T> p = step_params<T>(spec, obstacles.data());
  const std::vector<T> radius = cast_vector<T>(spec.radius), mass = cast_vector<T>(spec.mass);
  std::vector<T> inv_mass(mass.size());
  for (size_t b = 0; b < mass.size(); ++b) inv_mass[b] = T(1) / mass[b];
  switch (spec.resolved_broad_phase()) {
    case BroadPhase::kGrid:
      advance_bodies<T, true>(spec, st, frames, rec, first_frame, threads, p, radius, mass, inv_mass);
      break;
    default:
      if (spec.num_balls <= kAllPairsMaxBalls)
        advance_scenes(spec, st, frames, rec, first_frame, threads, p, radius, mass, inv_mass);
      else
        advance_bodies<T, false>(spec, st, frames, rec, first_frame, threads, p, radius, mass, inv_mass);
  }
}

std::vector<std::pair<int64_t, int64_t>> contact_pairs_cpu(const WorldSpec& spec, const WorldState<double>& st,
                                                           BroadPhase bp) {
  validate(spec);
  check_state(spec, st, "contact_pairs_cpu");
  const int64_t n = spec.num_bodies();
  std::vector<double> inv_mass(spec.mass.size());
  for (size_t b = 0; b < inv_mass.size(); ++b) inv_mass[b] = 1.0 / spec.mass[b];
  const BodiesK<double> b{st.x.data(),      st.y.data(),     st.vx.data(),    st.vy.data(),  spec.radius.data(),
                          spec.mass.data(), inv_mass.data(), spec.num_scenes, spec.num_balls};
  std::vector<std::pair<int64_t, int64_t>> out;
  auto test = [&](int64_t i, int64_t j) {
    double fx, fy;
    if (i < j && pair_force(b.x[i], b.y[i], b.vx[i], b.vy[i], b.r[i], b.m[i], b.x[j], b.y[j], b.vx[j], b.vy[j], b.r[j],
                            b.m[j], true, ContactLaw<double>{1, 0, 0, 0}, fx, fy))
      out.emplace_back(i, j);
  };
  if (bp == BroadPhase::kAuto) bp = spec.resolved_broad_phase();
  if (bp == BroadPhase::kGrid) {
    const GridK<double> g = grid_params<double>(spec);
    std::vector<int> start, sorted;
    std::vector<int64_t> cell_of;
    build_cells(b, g, grid_cells(spec), start, sorted, cell_of);
    for (int64_t i = 0; i < n; ++i) {
      int cx, cy;
      cell_coords(g, b.x[i], b.y[i], cx, cy);
      const int64_t base = (i % spec.num_scenes) * static_cast<int64_t>(g.nx) * g.ny;
      for (int yy = std::max(0, cy - 1); yy <= std::min(g.ny - 1, cy + 1); ++yy)
        for (int xx = std::max(0, cx - 1); xx <= std::min(g.nx - 1, cx + 1); ++xx) {
          const int64_t c = base + static_cast<int64_t>(yy) * g.nx + xx;
          for (int k = start[c]; k < start[c + 1]; ++k) test(i, sorted[k]);
        }
    }
  } else {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ball = 0; ball < spec.num_balls; ++ball) test(i, ball * spec.num_scenes + i % spec.num_scenes);
  }
  std::sort(out.begin(), out.end());
  return out;
}

template void advance_cpu(const WorldSpec&, WorldState<float>&, int, const Recorder<float>&, int, int);
template void advance_cpu(const WorldSpec&, WorldState<double>&, int, const Recorder<double>&, int, int);
template void record_cpu(const WorldSpec&, const WorldState<float>&, const Recorder<float>&, int);
template void record_cpu(const WorldSpec&, const WorldState<double>&, const Recorder<double>&, int);

}  // namespace npe::gpu
