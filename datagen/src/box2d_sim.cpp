// Ball-world simulation with Box2D 2.4.1.
//
// Box2D works in metres and is tuned for objects of 0.1 to 10 m, so pixels are scaled by
// Box2dSettings::pixels_per_meter (60 px = 0.6 m). Two Box2D defaults would break elasticity here:
// - restitutionThreshold (1 m/s by default): contacts approaching slower than it get no
//   restitution, and every speed in this world (<= 0.6 m/s) is below it. Set to 0.
// - polygon skin (b2_polygonRadius = 0.01 m): walls are boxes whose collision surface lies one
//   skin outside the box, so each wall box is moved out by one skin to put the surface exactly
//   at x = 0, x = W, y = 0, y = H.
// - a walls world's walls: the outline of the space they enclose is one chain loop (one-sided,
//   with smooth junctions) rather than a box per block, whose seams a ball sliding along the wall
//   catches on (ghost collisions: up to +2% kinetic energy in a bounce, seen in 3 of 42 scenes).
// Position correction (Baumgarte/NGS) moves positions only, never velocities, so it cannot change
// kinetic energy; sleeping is disabled so that slow balls keep moving.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <utility>

#include <box2d/box2d.h>
#include <fmt/format.h>

#include "npe/core/error.h"

#include "npe/datagen/world.h"

namespace npe::datagen {
namespace {

struct Box2dScene {
  std::unique_ptr<b2World> world;
  std::vector<b2Body*> balls;
};

Box2dScene build(const WorldDef& d, const std::vector<BallInit>& init, const WallLayout* walls) {
  const float s = static_cast<float>(1.0 / d.box2d.pixels_per_meter);
  Box2dScene sc;
  sc.world = std::make_unique<b2World>(b2Vec2(0.0f, 0.0f));
  sc.world->SetAllowSleeping(false);

  // Four static walls: boxes 1 m thick outside the [0, W] x [0, H] box.
  const float W = static_cast<float>(d.width) * s, H = static_cast<float>(d.height) * s;
  const float t = 1.0f, skin = b2_polygonRadius;
  b2BodyDef wall_def;
  b2Body* walls_body = sc.world->CreateBody(&wall_def);
  auto add_static = [&](const b2Shape& shape) {  // the contact material of every static surface
    b2FixtureDef fd;
    fd.shape = &shape;
    fd.friction = static_cast<float>(d.friction);
    fd.restitution = static_cast<float>(d.restitution);
    fd.restitutionThreshold = 0.0f;
    walls_body->CreateFixture(&fd);
  };
  auto add_wall = [&](float cx, float cy, float hx, float hy) {
    b2PolygonShape box;
    box.SetAsBox(hx, hy, b2Vec2(cx, cy), 0.0f);
    add_static(box);
  };
  add_wall(W / 2, -t / 2 - skin, W / 2 + 2 * t, t / 2);     // bottom, y = 0
  add_wall(W / 2, H + t / 2 + skin, W / 2 + 2 * t, t / 2);  // top, y = H
  add_wall(-t / 2 - skin, H / 2, t / 2, H / 2 + 2 * t);     // left, x = 0
  add_wall(W + t / 2 + skin, H / 2, t / 2, H / 2 + 2 * t);  // right, x = W
  if (walls) {
    // the outline of the enclosed space, moved out by the skin (chain shapes have one too) so that
    // the surface lies on the blocks' sides: each corner by the skin along both of its edges'
    // outward normals (the outline's edges are axis-aligned)
    const std::vector<std::array<double, 2>> outline = walls->room_outline();
    const size_t n = outline.size();
    std::vector<b2Vec2> loop(n);
    for (size_t v = 0; v < n; ++v) {
      const auto &a = outline[(v + n - 1) % n], &b = outline[v], &c = outline[(v + 1) % n];
      auto outward = [](const std::array<double, 2>& p, const std::array<double, 2>& q) {  // -(right normal)
        const double ex = q[0] - p[0], ey = q[1] - p[1], len = std::hypot(ex, ey);
        return b2Vec2(static_cast<float>(-ey / len), static_cast<float>(ex / len));
      };
      loop[v] = b2Vec2(static_cast<float>(b[0]) * s, static_cast<float>(b[1]) * s) +
                skin * (outward(a, b) + outward(b, c));
    }
    b2ChainShape chain;
    chain.CreateLoop(loop.data(), static_cast<int32>(n));
    add_static(chain);
    // free blocks: boxes shrunk by the skin
    for (const FreeBlock& f : walls->free_blocks)
      add_wall(static_cast<float>(f.x) * s, static_cast<float>(f.y) * s, static_cast<float>(kWallBlock / 2) * s - skin,
               static_cast<float>(kWallBlock / 2) * s - skin);
  }

  for (const BallInit& b : init) {
    b2BodyDef bd;
    bd.type = b2_dynamicBody;
    bd.position.Set(static_cast<float>(b.x) * s, static_cast<float>(b.y) * s);
    bd.linearVelocity.Set(static_cast<float>(b.vx) * s, static_cast<float>(b.vy) * s);
    bd.fixedRotation = true;  // frictionless: no torque ever acts
    bd.linearDamping = 0.0f;
    bd.angularDamping = 0.0f;
    b2Body* body = sc.world->CreateBody(&bd);
    b2CircleShape circle;
    circle.m_radius = static_cast<float>(d.radius) * s;
    b2FixtureDef fd;
    fd.shape = &circle;
    fd.density = 1.0f;
    fd.friction = static_cast<float>(d.friction);
    fd.restitution = static_cast<float>(d.restitution);
    fd.restitutionThreshold = 0.0f;
    body->CreateFixture(&fd);
    b2MassData md;
    md.mass = static_cast<float>(b.mass);
    md.center.SetZero();
    md.I = 0.5f * md.mass * circle.m_radius * circle.m_radius;
    body->SetMassData(&md);
    sc.balls.push_back(body);
  }
  return sc;
}

// One frame's balls as Box2D reports them, metres and m/s.
using Frames = std::vector<std::vector<std::pair<b2Vec2, b2Vec2>>>;

Frames run_substeps(const WorldDef& d, const std::vector<BallInit>& init, const WallLayout* walls, int substeps) {
  Box2dScene sc = build(d, init, walls);
  const float h = static_cast<float>(d.frame_dt / substeps);
  Frames frames(d.timesteps);
  for (int t = 0; t < d.timesteps; ++t) {
    if (t > 0)
      for (int k = 0; k < substeps; ++k) sc.world->Step(h, d.box2d.velocity_iterations, d.box2d.position_iterations);
    for (b2Body* b : sc.balls) frames[t].emplace_back(b->GetPosition(), b->GetLinearVelocity());
  }
  return frames;
}

double max_energy_drift(const Frames& frames, const std::vector<BallInit>& init) {
  auto energy = [&](int t) {
    double e = 0;
    for (size_t i = 0; i < init.size(); ++i) {
      const b2Vec2 v = frames[t][i].second;
      e += 0.5 * init[i].mass * (static_cast<double>(v.x) * v.x + static_cast<double>(v.y) * v.y);
    }
    return e;
  };
  const double e0 = energy(0);
  if (!(e0 > 0)) return 0;
  double worst = 0;
  for (size_t t = 1; t < frames.size(); ++t) worst = std::max(worst, std::abs(energy(t) - e0) / e0);
  return worst;
}

// Box2D's sequential-impulse solver applies restitution once per contact per step. When a light
// ball is pinned between a heavy ball and a wall (or another heavy ball), the exact motion is a
// rapid chain of bounces inside one step, and the solver turns it into a nearly plastic or an
// energy-creating event (seen: kinetic energy -85% and +585% in about 1 of 20,000 variable-mass
// scenes; ordinary scenes drift at most 1.2e-6). In an elastic, frictionless world such a scene
// is re-simulated with 4x and then 16x the substeps, keeping the first run whose kinetic energy
// holds to kBox2dEnergyTolerance. The choice depends on the scene alone, so datasets stay
// reproducible byte for byte.
Frames run(const WorldDef& d, const std::vector<BallInit>& init, const WallLayout* walls) {
  const int substeps = d.box2d.substeps > 0 ? d.box2d.substeps : kBox2dDefaultSubsteps;
  Frames frames = run_substeps(d, init, walls, substeps);
  if (d.restitution != 1.0 || d.friction != 0.0) return frames;
  for (int refine = 4; refine <= 16 && max_energy_drift(frames, init) > kBox2dEnergyTolerance; refine *= 4)
    frames = run_substeps(d, init, walls, substeps * refine);
  return frames;
}

}  // namespace

namespace {
// Records `frames` of `init`'s balls into [timesteps, num_balls, kStateDim] (absent slots zero).
void record(const WorldDef& d, const std::vector<BallInit>& init, const Frames& frames, float* out) {
  const double px = d.box2d.pixels_per_meter;
  const Normalisation unit = normalisation(d);
  const size_t n = init.size(), slots = static_cast<size_t>(d.num_balls);
  std::fill(out, out + static_cast<size_t>(d.timesteps) * slots * kStateDim, 0.0f);
  for (int t = 0; t < d.timesteps; ++t)
    for (size_t i = 0; i < n; ++i) {
      const auto [p, v] = frames[t][i];
      float* s = out + (static_cast<size_t>(t) * slots + i) * kStateDim;
      s[0] = static_cast<float>(p.x * px / unit.pos_scale);
      s[1] = static_cast<float>(p.y * px / unit.pos_scale);
      s[2] = static_cast<float>(v.x * px / unit.vel_scale);
      s[3] = static_cast<float>(v.y * px / unit.vel_scale);
      s[4] = static_cast<float>(init[i].mass);
    }
}

std::vector<std::vector<BallInit>> to_px(const WorldDef& d, const std::vector<BallInit>& init, const Frames& frames) {
  const double px = d.box2d.pixels_per_meter;
  std::vector<std::vector<BallInit>> out(d.timesteps, std::vector<BallInit>(init.size()));
  for (int t = 0; t < d.timesteps; ++t)
    for (size_t i = 0; i < init.size(); ++i) {
      const auto [p, v] = frames[t][i];
      out[t][i] = {p.x * px, p.y * px, v.x * px, v.y * px, init[i].mass};
    }
  return out;
}
}  // namespace

void simulate_box2d(const WorldDef& d, const std::vector<BallInit>& init, float* out, const WallLayout* walls) {
  record(d, init, run(d, init, walls), out);
}

int simulate_scene_box2d(const WorldDef& d, uint64_t seed, int64_t scene, float* out, float* walls_out) {
  constexpr int kMaxAttempts = 1000;
  Rng rng(seed, static_cast<uint64_t>(scene));
  for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
    // a rejected draw is drawn again whole, walls included
    WallsScene sc;
    if (d.walls.empty())
      sc.balls = sample_scene(d, rng, scene);
    else
      sc = sample_walls_scene(d, rng, scene);
    const Frames frames = run(d, sc.balls, d.walls.empty() ? nullptr : &sc.walls);
    if (!(d.reject_speed > 0) || !rejected(d, to_px(d, sc.balls, frames))) {  // px frames only for the rule
      record(d, sc.balls, frames, out);
      if (!d.walls.empty()) {
        if (!walls_out) throw Error("simulate_scene_box2d: a walls world's scene needs walls_out");
        record_walls(sc.walls, normalisation(d).pos_scale, walls_out);
      }
      return attempt;
    }
  }
  throw Error(fmt::format("scene {}: {} draws in a row were rejected (a speed above {} px/s or a ball "
                          "outside the box); this world rarely keeps a scene: check the preset and the world",
                          scene, kMaxAttempts, d.reject_speed));
}

std::vector<std::vector<BallInit>> simulate_box2d_px(const WorldDef& d, const std::vector<BallInit>& init,
                                                     const WallLayout* walls) {
  return to_px(d, init, run(d, init, walls));
}

}  // namespace npe::datagen
