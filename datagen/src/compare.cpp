#include "npe/datagen/compare.h"

#include <algorithm>
#include <cmath>

#include "npe/datagen/engine_world.h"
#include "npe/gpu/engine.h"
#include "npe/gpu/scenes.h"
#include "npe/core/parallel.h"

namespace npe::datagen {
namespace {

using gpu::Recorder;
using gpu::Scene;

using Trajectory = std::vector<std::vector<BallInit>>;  // [T][N] px, px/s

// Collisions: frames t >= 1 at which some ball's velocity changed since frame t - 1; a run of
// consecutive such frames counts once (a penalty contact can straddle a frame boundary).
// Returns the first frame of each run.
std::vector<int> collision_frames(const Trajectory& tr, double threshold) {
  std::vector<int> out;
  bool previous = false;
  for (size_t t = 1; t < tr.size(); ++t) {
    bool changed = false;
    for (size_t i = 0; i < tr[t].size(); ++i)
      changed = changed || std::hypot(tr[t][i].vx - tr[t - 1][i].vx, tr[t][i].vy - tr[t - 1][i].vy) > threshold;
    if (changed && !previous) out.push_back(static_cast<int>(t));
    previous = changed;
  }
  return out;
}

// Max over frames of |E_t - E_0| / E_0, E from `energy`.
template <class Energy>
double drift(const Trajectory& tr, const Energy& energy) {
  const double e0 = energy(tr[0]);
  double d = 0;
  if (!(e0 > 1e-12)) return 0;
  for (const auto& f : tr) {
    const double e = energy(f);
    if (!std::isnan(e)) d = std::max(d, std::abs(e - e0) / e0);  // NaN: inside a contact
  }
  return d;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1) + 0.5)];
}

double ks_statistic(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::abs(double(i) / a.size() - double(j) / b.size()));
  }
  return d;
}

template <class Energy>
void add_stats(EngineStats& s, const Trajectory& tr, double threshold, const Energy& energy,
               std::vector<double>& speeds) {
  s.collisions_per_scene += static_cast<double>(collision_frames(tr, threshold).size());
  const double d = drift(tr, energy);
  s.mean_energy_drift += d;
  s.max_energy_drift = std::max(s.max_energy_drift, d);
  for (const auto& f : tr)
    for (const BallInit& b : f) speeds.push_back(std::hypot(b.vx, b.vy));
}

}  // namespace

EngineComparison compare_with_box2d(const WorldDef& world, int64_t scenes, uint64_t seed, int threads) {
  const EngineSettings ew = resolve_engine(world);
  WorldDef bw = world;
  if (bw.box2d.substeps <= 0) bw.box2d.substeps = kBox2dDefaultSubsteps;
  validate(bw);
  validate_box2d(bw);
  const int64_t N = world.num_balls, T = world.timesteps;

  // engine: all scenes at once, every frame recorded in float64
  Scene sc = dataset_scenes(world, scenes, seed);
  std::vector<double> frames(static_cast<size_t>(T) * 4 * sc.spec.num_bodies());
  const Recorder<double> rec = gpu::engine_layout(frames.data(), sc.spec);
  gpu::record_cpu(sc.spec, sc.state, rec, 0);
  gpu::advance_cpu(sc.spec, sc.state, static_cast<int>(T - 1), rec, 1, threads);
  auto engine_traj = [&](int64_t s) {
    Trajectory tr(T, std::vector<BallInit>(N));
    const int64_t nb = sc.spec.num_bodies();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < N; ++i) {
        const int64_t b = i * scenes + s;
        const double* f = frames.data() + t * 4 * nb + b;
        tr[t][i] = {f[0], f[nb], f[2 * nb], f[3 * nb], sc.spec.mass[b]};
      }
    return tr;
  };

  // Box2D, scene by scene on worker threads
  std::vector<Trajectory> box(scenes);
  parallel_for(scenes, threads, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) box[s] = simulate_box2d_px(bw, sample_scene(world, seed, s));
  });

  EngineComparison c;
  c.scenes = scenes;
  c.substeps = ew.substeps;
  c.omega = ew.contact_omega;
  const double threshold = 1e-3 * world.max_speed;
  std::vector<double> speeds_b, speeds_e, dv_single, dx_single;
  for (int64_t s = 0; s < scenes; ++s) {
    const Trajectory e = engine_traj(s);
    const Trajectory& b = box[s];
    const std::vector<int> cb = collision_frames(b, threshold), ce = collision_frames(e, threshold);
    // The two contacts begin up to a substep apart (the penalty contact as soon as the balls
    // touch, Box2D's at its next step): compare up to the frame before the one in which either
    // engine's first collision shows (the engine's alone near the end of a scene).
    const int first = std::min(cb.empty() ? static_cast<int>(T) : cb[0], ce.empty() ? static_cast<int>(T) : ce[0]) - 1;
    for (int t = 0; t < first; ++t)
      for (int64_t i = 0; i < N; ++i) {
        c.pre_collision_max_dx = std::max(
            {c.pre_collision_max_dx, std::abs(e[t][i].x - b[t][i].x), std::abs(e[t][i].y - b[t][i].y)});
        c.pre_collision_max_dv = std::max(
            {c.pre_collision_max_dv, std::abs(e[t][i].vx - b[t][i].vx), std::abs(e[t][i].vy - b[t][i].vy)});
      }
    if (!cb.empty()) {
      const int lo = cb[0] + 2, hi = cb.size() > 1 ? cb[1] - 1 : static_cast<int>(T);
      double dv = -1, dx = 0;
      for (int t = lo; t < hi; ++t)
        for (int64_t i = 0; i < N; ++i) {
          dv = std::max({dv, std::abs(e[t][i].vx - b[t][i].vx) / world.max_speed,
                         std::abs(e[t][i].vy - b[t][i].vy) / world.max_speed});
          dx = std::max({dx, std::abs(e[t][i].x - b[t][i].x), std::abs(e[t][i].y - b[t][i].y)});
        }
      if (dv >= 0) {
        dv_single.push_back(dv);
        dx_single.push_back(dx);
      }
    }
    // Box2D's contacts are instantaneous; the engine's energy is taken on contact-free frames
    auto kinetic = [](const std::vector<BallInit>& f) {
      double k = 0;
      for (const BallInit& x : f) k += 0.5 * x.mass * (x.vx * x.vx + x.vy * x.vy);
      return k;
    };
    auto free_energy = [&](const std::vector<BallInit>& f) {
      return gpu::contact_free_energy(sc.spec, f, world.radius);
    };
    add_stats(c.box2d, b, threshold, kinetic, speeds_b);
    add_stats(c.engine, e, threshold, free_energy, speeds_e);
  }
  for (EngineStats* st : {&c.box2d, &c.engine}) {
    st->collisions_per_scene /= scenes;
    st->mean_energy_drift /= scenes;
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
  };
  c.box2d.mean_speed = mean(speeds_b);
  c.engine.mean_speed = mean(speeds_e);
  c.speed_ks = ks_statistic(speeds_b, speeds_e);
  c.single_collision_scenes = static_cast<int64_t>(dv_single.size());
  c.single_collision_dv_median = quantile(dv_single, 0.5);
  c.single_collision_dv_p90 = quantile(dv_single, 0.9);
  c.single_collision_dx_median = quantile(dx_single, 0.5);
  c.single_collision_dx_p90 = quantile(dx_single, 0.9);
  return c;
}

nlohmann::json EngineComparison::to_json() const {
  auto stats = [](const EngineStats& s) {
    return nlohmann::json{{"collisions_per_scene", s.collisions_per_scene},
                          {"mean_energy_drift", s.mean_energy_drift},
                          {"max_energy_drift", s.max_energy_drift},
                          {"mean_speed_px_per_s", s.mean_speed}};
  };
  return {{"scenes", scenes},
          {"engine_substeps", substeps},
          {"engine_contact_omega", omega},
          {"pre_collision_max_dx_px", pre_collision_max_dx},
          {"pre_collision_max_dv_px_per_s", pre_collision_max_dv},
          {"single_collision_scenes", single_collision_scenes},
          {"single_collision_dv_over_max_speed",
           {{"median", single_collision_dv_median}, {"p90", single_collision_dv_p90}}},
          {"single_collision_dx_px", {{"median", single_collision_dx_median}, {"p90", single_collision_dx_p90}}},
          {"box2d", stats(box2d)},
          {"engine", stats(engine)},
          {"speed_ks_statistic", speed_ks}};
}

}  // namespace npe::datagen
