#include "npe/gpu/scenes.h"

#include <cmath>

#include <fmt/format.h>

#include "engine_internal.h"
#include "npe/core/error.h"
#include "npe/core/rng.h"

namespace npe::gpu {

Scene large_world(int64_t n, double radius, double phi, double max_speed, uint64_t seed) {
  if (n < 1 || !(radius > 0) || !(phi > 0 && phi <= 0.5) || !(max_speed > 0))
    throw Error(fmt::format("large_world: expected n >= 1, radius > 0, phi in (0, 0.5], max_speed > 0; "
                            "found {}, {}, {}, {}",
                            n, radius, phi, max_speed));
  Scene sc;
  WorldSpec& s = sc.spec;
  const double side = std::sqrt(n * M_PI * radius * radius / phi);
  const int64_t per_row = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const double a = side / per_row;  // lattice spacing, >= 2r * 1.25 for phi <= 0.5
  s.num_scenes = 1;
  s.num_balls = n;
  s.width = s.height = side;
  s.radius.assign(n, radius);
  s.mass.assign(n, 1.0);
  const ContactChoice c = choose_contact(2 * max_speed, radius, s.frame_dt);
  s.contact_omega = c.omega;
  s.substeps = c.substeps;
  s.contact_ramp = c.ramp;
  s.broad_phase = BroadPhase::kGrid;
  sc.state = WorldState<double>(n);
  const double jitter = std::max(0.0, 0.5 * (a - 2 * radius) * 0.9);
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed, static_cast<uint64_t>(i));
    const double cx = (i % per_row + 0.5) * a, cy = (i / per_row + 0.5) * a;
    sc.state.x[i] = cx + rng.uniform(-jitter, jitter);
    sc.state.y[i] = cy + rng.uniform(-jitter, jitter);
    const double ang = rng.uniform(0, 2 * M_PI), v = rng.uniform(0, max_speed);
    sc.state.vx[i] = v * std::cos(ang);
    sc.state.vy[i] = v * std::sin(ang);
  }
  return sc;
}

Scene overlapping_world(int64_t n, double radius, double phi, double max_speed, uint64_t seed) {
  Scene sc = large_world(n, radius, phi, max_speed, seed);
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed ^ 0x9e3779b97f4a7c15ull, static_cast<uint64_t>(i));
    sc.state.x[i] = rng.uniform(radius, sc.spec.width - radius);
    sc.state.y[i] = rng.uniform(radius, sc.spec.height - radius);
  }
  return sc;
}

Scene explicit_scene(const std::vector<BallInit>& balls, double radius, double width, double height, double omega,
                     int substeps, double frame_dt) {
  Scene sc;
  WorldSpec& s = sc.spec;
  s.num_scenes = 1;
  s.num_balls = static_cast<int64_t>(balls.size());
  s.width = width;
  s.height = height;
  s.radius.assign(balls.size(), radius);
  s.contact_omega = omega;
  s.substeps = substeps;
  s.frame_dt = frame_dt;
  sc.state = WorldState<double>(s.num_balls);
  for (size_t i = 0; i < balls.size(); ++i) {
    sc.state.x[i] = balls[i].x, sc.state.y[i] = balls[i].y;
    sc.state.vx[i] = balls[i].vx, sc.state.vy[i] = balls[i].vy;
    s.mass.push_back(balls[i].mass);
  }
  return sc;
}

double kinetic_energy(const WorldSpec& spec, const WorldState<double>& s, int64_t scene) {
  double e = 0;
  for (int64_t i = 0; i < spec.num_balls; ++i) {
    const int64_t b = i * spec.num_scenes + scene;
    e += 0.5 * spec.mass[b] * (s.vx[b] * s.vx[b] + s.vy[b] * s.vy[b]);
  }
  return e;
}

void momentum(const WorldSpec& spec, const WorldState<double>& s, int64_t scene, double& px, double& py) {
  px = py = 0;
  for (int64_t i = 0; i < spec.num_balls; ++i) {
    const int64_t b = i * spec.num_scenes + scene;
    px += spec.mass[b] * s.vx[b];
    py += spec.mass[b] * s.vy[b];
  }
}

double contact_free_energy(const WorldSpec& spec, const std::vector<BallInit>& balls, double r) {
  double k = 0;
  for (const auto& b : balls) k += 0.5 * b.mass * (b.vx * b.vx + b.vy * b.vy);
  return mechanical_energy(spec, balls, r) == k ? k : std::nan("");
}

double mechanical_energy(const WorldSpec& spec, const std::vector<BallInit>& balls, double r) {
  const double w2 = spec.contact_omega * spec.contact_omega;
  const auto obstacles = spec.obstacles.empty() ? std::vector<detail::ObstacleK<double>>{}
                                                : detail::kernel_obstacles<double>(spec);
  double e = 0;
  for (size_t i = 0; i < balls.size(); ++i) {
    const BallInit& a = balls[i];
    e += 0.5 * a.mass * (a.vx * a.vx + a.vy * a.vy);
    auto spring = [&](double delta, double meff) {
      if (delta > 0) e += 0.5 * meff * w2 * delta * delta;
    };
    spring(r - a.x, a.mass);
    spring(r - (spec.width - a.x), a.mass);
    spring(r - a.y, a.mass);
    spring(r - (spec.height - a.y), a.mass);
    for (const auto& o : obstacles) spring(r - detail::sdf_obstacle(o, a.x, a.y).phi, a.mass);
    for (size_t j = i + 1; j < balls.size(); ++j) {
      const BallInit& b = balls[j];
      spring(2 * r - std::hypot(a.x - b.x, a.y - b.y), a.mass * b.mass / (a.mass + b.mass));
    }
  }
  return e;
}

}  // namespace npe::gpu
