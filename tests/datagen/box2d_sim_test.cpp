// Box2D simulation against analytic elastic collisions and energy conservation.
#include <cmath>

#include <gtest/gtest.h>

#include "npe/datagen/world.h"
#include "test_util.h"

namespace npe::datagen {
namespace {

constexpr double kPosTol = 1.0;   // px: contacts resolve at substep granularity (v h <= 0.6 px)
constexpr double kVelTol = 0.01;  // relative

WorldDef two_ball_world() {
  WorldDef d;
  d.num_balls = 2;
  return d;
}

TEST(Box2dSim, FreeFlightIsExact) {
  WorldDef d;
  d.num_balls = 1;
  d.timesteps = 11;
  auto traj = simulate_box2d_px(d, {{300, 250, 20, -10, 1}});
  EXPECT_NEAR(traj.back()[0].x, 300 + 20 * 1.0, 1e-3);
  EXPECT_NEAR(traj.back()[0].y, 250 - 10 * 1.0, 1e-3);
  EXPECT_NEAR(traj.back()[0].vx, 20, 1e-4);
}

TEST(Box2dSim, WallBounceIsElastic) {
  WorldDef d;
  d.num_balls = 1;
  // contact with the right wall (x = 800) when the centre reaches 740, at t = 4.8 s
  auto traj = simulate_box2d_px(d, {{500, 300, 50, 0, 1}});
  const double t_end = 0.1 * (d.timesteps - 1);
  EXPECT_NEAR(traj.back()[0].vx, -50, 50 * kVelTol);
  EXPECT_NEAR(traj.back()[0].x, 740 - 50 * (t_end - 4.8), kPosTol);
  EXPECT_NEAR(traj.back()[0].y, 300, 1e-3);
  // it never enters the wall by more than Box2D's linear slop (0.005 m = 0.5 px)
  for (const auto& frame : traj) EXPECT_LE(frame[0].x, 740 + 0.6);
}

TEST(Box2dSim, HeadOnEqualMassesExchangeVelocities) {
  WorldDef d = two_ball_world();
  auto traj = simulate_box2d_px(d, {{200, 300, 40, 0, 1}, {600, 300, -40, 0, 1}});
  // gap 280 px closing at 80 px/s: contact at t = 3.5 s
  const double t_end = 0.1 * (d.timesteps - 1);
  const auto& f = traj.back();
  EXPECT_NEAR(f[0].vx, -40, 40 * kVelTol);
  EXPECT_NEAR(f[1].vx, 40, 40 * kVelTol);
  EXPECT_NEAR(f[0].x, 340 - 40 * (t_end - 3.5), kPosTol);
  EXPECT_NEAR(f[1].x, 460 + 40 * (t_end - 3.5), kPosTol);
}

TEST(Box2dSim, HeadOnUnequalMassesMatchAnalyticResult) {
  WorldDef d = two_ball_world();
  // m1 = 1 at +40, m2 = 5 at -20: v1' = ((m1-m2)u1 + 2 m2 u2)/(m1+m2) = -60, v2' = 0
  auto traj = simulate_box2d_px(d, {{200, 300, 40, 0, 1}, {600, 300, -20, 0, 5}});
  const double t_hit = 280.0 / 60.0, t_end = 0.1 * (d.timesteps - 1);
  const auto& f = traj.back();
  EXPECT_NEAR(f[0].vx, -60, 60 * kVelTol);
  EXPECT_NEAR(f[1].vx, 0, 0.6);
  EXPECT_NEAR(f[0].x, 200 + 40 * t_hit - 60 * (t_end - t_hit), kPosTol);
  EXPECT_NEAR(f[1].x, 600 - 20 * t_hit, kPosTol);
  // momentum is conserved in every frame
  for (const auto& fr : traj) EXPECT_NEAR(fr[0].vx * 1 + fr[1].vx * 5, 40 - 100, 0.6);
}

// A light ball pinned between a heavy ball and the floor: exactly, it bounces many times within
// one Box2D step and hands the heavy ball back its energy. Box2D's one-restitution-per-step
// solver alone made such a scene lose 85% of its energy (seed 4550232125204740023, scene 115).
TEST(Box2dSim, LightBallTrappedAgainstTheWallKeepsEnergy) {
  WorldDef d = two_ball_world();
  const uint64_t seed = test::fresh_seed();
  Rng rng(seed, 0);
  const double x = rng.uniform(200, 600), gap = rng.uniform(0.2, 2.0);
  auto traj = simulate_box2d_px(
      d, {{x, 60 + gap, rng.uniform(-3, 3), 0, 1}, {x + rng.uniform(-5, 5), 300, 0, -rng.uniform(40, 60), 25}});
  auto energy = [](const std::vector<BallInit>& f) {
    double e = 0;
    for (const BallInit& b : f) e += 0.5 * b.mass * (b.vx * b.vx + b.vy * b.vy);
    return e;
  };
  for (const auto& f : traj) ASSERT_NEAR(energy(f), energy(traj[0]), 1e-3 * energy(traj[0]));
  EXPECT_GT(traj.back()[1].vy, 0) << "the heavy ball must rebound off the trapped light one";
}

TEST(Box2dSim, KineticEnergyConservedWithin1PercentOverRandomScenes) {
  const uint64_t seed = test::fresh_seed();
  for (bool variable : {false, true}) {
    WorldDef d;
    d.variable_mass = variable;
    std::vector<float> out(d.timesteps * d.num_balls * kStateDim);
    for (int s = 0; s < 300; ++s) {
      simulate_box2d(d, sample_scene(d, seed, s), out.data());
      const double e0 = kinetic_energy(out.data(), d.num_balls);
      if (e0 < 1e-6) continue;
      for (int t = 1; t < d.timesteps; ++t)
        ASSERT_NEAR(kinetic_energy(out.data() + t * d.num_balls * kStateDim, d.num_balls), e0, 0.01 * e0)
            << "scene " << s << " frame " << t << " variable_mass " << variable;
    }
  }
}

// Balls penetrate a wall by at most what Box2D allows in one step: its position solver pushes a
// ball out only beyond b2_linearSlop, and within a step a ball moves at most |v| h deeper before
// the next solve. In this elastic world of equal masses energy is conserved, so no ball is faster
// than sqrt(N) max_speed: the bound is slop + sqrt(N) max_speed h (0.5 + 1.2 px by default).
// Observed worst over 1,300 seeds: 0.74 px. (A fixed 0.6 px, chosen before, failed on about 1 seed
// in 45; seed 8341374396049026862 reached 0.606 px and is kept as a regression case.)
void expect_balls_in_box(uint64_t seed) {
  WorldDef d;
  const double slop = 0.005 * d.box2d.pixels_per_meter;  // b2_linearSlop, 0.005 m
  const double h = d.frame_dt / kBox2dDefaultSubsteps;
  const double tol = slop + std::sqrt(static_cast<double>(d.num_balls)) * d.max_speed * h;
  for (int s = 0; s < 100; ++s) {
    auto traj = simulate_box2d_px(d, sample_scene(d, seed, s));
    for (const auto& f : traj)
      for (const auto& b : f) {
        ASSERT_GE(b.x, d.radius - tol) << "scene " << s;
        ASSERT_LE(b.x, d.width - d.radius + tol) << "scene " << s;
        ASSERT_GE(b.y, d.radius - tol) << "scene " << s;
        ASSERT_LE(b.y, d.height - d.radius + tol) << "scene " << s;
      }
  }
}

TEST(Box2dSim, BallsStayInTheBox) { expect_balls_in_box(test::fresh_seed()); }
TEST(Box2dSim, BallsStayInTheBoxRegressionSeed) { expect_balls_in_box(8341374396049026862ULL); }

TEST(Box2dSim, MixedCountsLeaveAbsentSlotsZero) {
  const uint64_t seed = test::fresh_seed();
  WorldDef d;
  parse_ball_counts(d, "2,3");
  d.timesteps = 20;
  std::vector<float> out(static_cast<size_t>(d.timesteps) * d.num_balls * kStateDim, 7.0f);
  for (int s = 0; s < 10; ++s) {
    const auto init = sample_scene(d, seed, s);
    simulate_box2d(d, init, out.data());
    for (int t = 0; t < d.timesteps; ++t)
      for (int b = 0; b < d.num_balls; ++b) {
        const float* st = out.data() + (t * d.num_balls + b) * kStateDim;
        if (b < static_cast<int>(init.size()))
          EXPECT_EQ(st[4], static_cast<float>(init[b].mass));
        else
          for (int k = 0; k < kStateDim; ++k) EXPECT_EQ(st[k], 0.0f) << s << " " << t << " " << b;
      }
  }
}

TEST(Box2dSim, Npe2017ScenesKeepTheRejectionRule) {
  const uint64_t seed = test::fresh_seed();
  WorldDef d;
  apply_preset(d, "npe2017");
  d.timesteps = 40;
  std::vector<float> a(static_cast<size_t>(d.timesteps) * d.num_balls * kStateDim), b(a.size());
  int redrawn = 0;
  for (int s = 0; s < 40; ++s) {
    const int attempts = simulate_scene_box2d(d, seed, s, a.data());
    redrawn += attempts > 1;
    EXPECT_EQ(simulate_scene_box2d(d, seed, s, b.data()), attempts);
    EXPECT_EQ(a, b);  // same (seed, scene), same bytes
    for (size_t i = 0; i < a.size(); i += kStateDim) {
      EXPECT_LE(std::hypot(a[i + 2], a[i + 3]), 1.0f + 1e-6f);  // speed <= 60 px/frame, normalised by it
      EXPECT_GE(a[i], 0.0f);
      EXPECT_LE(a[i] * d.width, d.width + 1e-3);
      EXPECT_LE(a[i + 1] * d.width, d.height + 1e-3);
    }
  }
  // heavy balls hitting light ones at up to 28 px per frame exceed 60 px per frame often
  EXPECT_GT(redrawn, 0);
  // without the rule the same draws include scenes it rejects
  WorldDef loose = d;
  loose.reject_speed = 0;
  bool fast = false;
  for (int s = 0; s < 40 && !fast; ++s) {
    simulate_scene_box2d(loose, seed, s, a.data());
    for (size_t i = 0; i < a.size(); i += kStateDim) fast |= std::hypot(a[i + 2], a[i + 3]) > 1.0f;
  }
  EXPECT_TRUE(fast);
}

// A walls world's walls (the O ring: inner faces at x = 120, 680 and y = 100, 500): a ball bounces
// off the right face elastically, as off the box's wall.
TEST(Box2dSim, WallsBounceIsElastic) {
  WorldDef d;
  d.num_balls = 1;
  Rng rng(0, 0);
  const WallLayout o = draw_walls(WallShape::kO, rng);
  // contact with the face x = 680 when the centre reaches 620, at t = 2.4 s
  auto traj = simulate_box2d_px(d, {{500, 300, 50, 0, 1}}, &o);
  const double t_end = 0.1 * (d.timesteps - 1);
  EXPECT_NEAR(traj.back()[0].vx, -50, 50 * kVelTol);
  EXPECT_NEAR(traj.back()[0].x, 620 - 50 * (t_end - 2.4), kPosTol);
  EXPECT_NEAR(traj.back()[0].y, 300, 1e-3);
  for (const auto& frame : traj) EXPECT_LE(frame[0].x, 620 + 0.6);
}

// A ball that meets the top face where two blocks join (x = 520) bounces as off one flat wall:
// the blocks as separate boxes caught it on the seam (velocity (94, -86) px/s came back as
// (93.5, 88.2), +1.9% kinetic energy); the outline has no seam. Contact at the centre (520, 160).
TEST(Box2dSim, WallsHaveNoSeams) {
  WorldDef d;
  d.num_balls = 1;
  d.timesteps = 21;
  Rng rng(0, 0);
  const WallLayout o = draw_walls(WallShape::kO, rng);
  for (const double vx : {94.0, -94.0, 30.0, 0.0}) {
    const double vy = -86, t_hit = 1.0;
    auto traj = simulate_box2d_px(d, {{520 - vx * t_hit, 160 - vy * t_hit, vx, vy, 1}}, &o);
    const auto& f = traj.back()[0];
    EXPECT_NEAR(f.vx, vx, 1e-3) << vx;
    EXPECT_NEAR(f.vy, -vy, 1e-3 * std::abs(vy)) << vx;
    EXPECT_NEAR(f.x, 520 + vx * (2.0 - t_hit), kPosTol) << vx;
    // the bounce resolves up to one substep's travel early: up to 2 |vy| h off afterwards
    EXPECT_NEAR(f.y, 160 - vy * (2.0 - t_hit), 2 * std::abs(vy) * d.frame_dt / kBox2dDefaultSubsteps + 0.01) << vx;
  }
}

// Walls worlds' scenes (--preset walls, every shape): the same bytes for the same (seed, scene);
// balls never closer to a block than the radius less what Box2D allows in one step (slop and one
// substep's travel at the scene's largest possible speed); kinetic energy kept to the tolerance
// past which a scene is re-simulated with more substeps.
void expect_walls_scenes_hold(uint64_t seed) {
  for (const char* shapes : {"O,L", "U", "I"}) {
    WorldDef d;
    apply_preset(d, "walls");
    d.walls = parse_wall_shapes(shapes);
    d.timesteps = 60;
    const double slop = 0.005 * d.box2d.pixels_per_meter, h = d.frame_dt / kBox2dDefaultSubsteps;
    std::vector<float> a(static_cast<size_t>(d.timesteps) * d.num_balls * kStateDim), b(a.size());
    std::vector<float> wa(kWallSlots * kWallDim), wb(wa.size());
    for (int s = 0; s < 40; ++s) {
      simulate_scene_box2d(d, seed, s, a.data(), wa.data());
      simulate_scene_box2d(d, seed, s, b.data(), wb.data());
      ASSERT_EQ(a, b);
      ASSERT_EQ(wa, wb);
      const WallLayout w = recorded_walls(wa.data(), d.width);
      EXPECT_NE(std::string(shapes).find(wall_shape_name(w.shape)), std::string::npos);
      const double e0 = kinetic_energy(a.data(), d.num_balls);
      const double fastest = std::sqrt(2 * e0) * d.max_speed;  // mass 1: all the energy in one ball
      for (int t = 0; t < d.timesteps; ++t) {
        const float* f = a.data() + t * d.num_balls * kStateDim;
        ASSERT_NEAR(kinetic_energy(f, d.num_balls), e0, kBox2dEnergyTolerance * e0) << shapes << " scene " << s;
        for (int i = 0; i < d.num_balls; ++i) {
          const double x = f[i * kStateDim] * d.width, y = f[i * kStateDim + 1] * d.width;
          for (const gpu::Obstacle& o : w.obstacles()) {
            const double dx = std::max(std::abs(x - o.ax) - o.bx, 0.0), dy = std::max(std::abs(y - o.ay) - o.by, 0.0);
            ASSERT_GE(std::hypot(dx, dy), d.radius - slop - fastest * h)
                << shapes << " scene " << s << " frame " << t << " ball " << i << " seed " << seed;
          }
        }
      }
    }
  }
}
TEST(Box2dSim, WallsScenesHold) { expect_walls_scenes_hold(test::fresh_seed()); }

}  // namespace
}  // namespace npe::datagen
