// The CPU reference (gpu/src/cpu_engine.cpp) against analytic cases, itself (threads, broad
// phases) and stress.
#include <cmath>

#include <gtest/gtest.h>

#include "npe/datagen/engine_world.h"
#include "npe/core/error.h"
#include "npe/gpu/engine.h"
#include "npe/gpu/scenes.h"
#include "test_util.h"

namespace npe::gpu {
namespace {

using datagen::BallInit;
const Recorder<double> kNoRecord{};

// Runs `frames` frames of the CPU reference in float64.
void run(Scene& sc, int frames, int threads = 1) { advance_cpu(sc.spec, sc.state, frames, kNoRecord, 0, threads); }

TEST(CpuEngine, FreeFlightUnderGravityMatchesTheDiscreteSolution) {
  // semi-implicit Euler: v_n = v0 + n h g, x_n = x0 + n h v0 + h^2 g n (n + 1) / 2
  Scene sc = explicit_scene({{400, 300, 17.5, -11.25, 2.0}}, 10, 4000, 3000, 200, 64);
  sc.spec.gravity_y = -9.81;
  const double x0 = sc.state.x[0], y0 = sc.state.y[0], v0x = 17.5, v0y = -11.25;
  run(sc, 3);
  const double h = sc.spec.substep(), n = 3 * 64;
  EXPECT_NEAR(sc.state.x[0], x0 + n * h * v0x, 1e-9);
  EXPECT_NEAR(sc.state.vy[0], v0y + n * h * -9.81, 1e-12);
  EXPECT_NEAR(sc.state.y[0], y0 + n * h * v0y + h * h * -9.81 * n * (n + 1) / 2, 1e-9);
}

// One ball against the left wall at speed v: the penalty contact lasts pi / omega, so the ball
// leaves with velocity +v (up to the model's energy error) and lags the ideal reflection by
// v pi / omega.
TEST(CpuEngine, WallBounceReflectsWithTheContactDelay) {
  const double v = 45.0, r = 60.0, omega = 200.0;
  Scene sc = explicit_scene({{r + 30.0, 300, -v, 0, 1.0}}, r, 800, 600, omega, 64);
  run(sc, 20);  // 2 s: hits at t = 30 / 45 s, leaves pi / 200 s later
  EXPECT_NEAR(sc.state.vx[0], v, 1e-3 * v);
  EXPECT_DOUBLE_EQ(sc.state.vy[0], 0.0);
  const double t_hit = 30.0 / v, t = 2.0;
  const double ideal = r + v * (t - t_hit);
  EXPECT_NEAR(sc.state.x[0], ideal - v * M_PI / omega, 0.5) << "lag of the penalty contact";
}

struct Collision {
  double v1, v2;  // final velocities along x
  double energy_error;
  double momentum_error;
};

// Head-on collision along x of balls of mass m1 (moving at u1) and m2 (at u2), far from walls.
Collision head_on(double m1, double m2, double u1, double u2, int substeps, double offset = 0) {
  Scene sc = explicit_scene({{400 - 70 + offset, 1000, u1, 0, m1}, {400 + 70, 1000, u2, 0, m2}}, 60, 2000, 2000, 200,
                            substeps);
  double p0x, p0y, p1x, p1y;
  momentum(sc.spec, sc.state, 0, p0x, p0y);
  const double e0 = kinetic_energy(sc.spec, sc.state, 0);
  run(sc, 8);
  momentum(sc.spec, sc.state, 0, p1x, p1y);
  return {sc.state.vx[0], sc.state.vx[1], std::abs(kinetic_energy(sc.spec, sc.state, 0) - e0) / e0,
          std::abs(p1x - p0x) / std::abs(p0x == 0 ? 1 : p0x) + std::abs(p1y - p0y)};
}

TEST(CpuEngine, HeadOnEqualMassesExchangeVelocities) {
  const Collision c = head_on(1, 1, 40, -25, 64);
  EXPECT_NEAR(c.v1, -25, 0.05);
  EXPECT_NEAR(c.v2, 40, 0.05);
  EXPECT_LT(c.momentum_error, 1e-13);
  EXPECT_LT(c.energy_error, 3e-3);
}

TEST(CpuEngine, HeadOnUnequalMassesFollowTheElasticFormulas) {
  const double m1 = 5, m2 = 1, u1 = 30, u2 = -50;
  const double v1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2), v2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2);
  const Collision c = head_on(m1, m2, u1, u2, 64);
  EXPECT_NEAR(c.v1, v1, 0.1);
  EXPECT_NEAR(c.v2, v2, 0.1);
  EXPECT_LT(c.momentum_error, 1e-13);
  EXPECT_LT(c.energy_error, 3e-3);
}

// The energy error of the penalty contact is first order in omega * h: averaged over the phase
// of contact onset it falls as substeps grow.
TEST(CpuEngine, CollisionEnergyErrorConvergesWithSubsteps) {
  auto mean_error = [](int substeps) {
    double sum = 0;
    for (int k = 0; k < 16; ++k) sum += head_on(25, 1, 30, -50, substeps, 0.37 * k).energy_error;
    return sum / 16;
  };
  const double e64 = mean_error(64), e1024 = mean_error(1024), e4096 = mean_error(4096);
  std::printf("mean energy error per collision: %.3g (64 substeps), %.3g (1024), %.3g (4096)\n", e64, e1024, e4096);
  EXPECT_LT(e64, 1e-3);
  EXPECT_LT(e1024, 0.2 * e64);
  EXPECT_LT(e4096, 0.3 * e1024);
}

TEST(CpuEngine, ObliqueCollisionConvergesToTheElasticImpulse) {
  // ball 0 moving +x hits resting ball 1 whose centre is offset by b in y; the ideal outcome
  // uses the normal at first touch: n = (sqrt(4r^2 - b^2), -b) / 2r (from 1 to 0 reversed).
  const double r = 60, b = 50, u = 40, m1 = 1, m2 = 5;
  auto outcome = [&](double omega, int substeps) {
    Scene sc = explicit_scene({{380, 1000 + b, u, 0, m1}, {500, 1000, 0, 0, m2}}, r, 2000, 2000, omega, substeps);
    run(sc, 12);
    return std::array<double, 4>{sc.state.vx[0], sc.state.vy[0], sc.state.vx[1], sc.state.vy[1]};
  };
  const double nx = std::sqrt(4 * r * r - b * b) / (2 * r), ny = -b / (2 * r);  // from 0 to 1
  const double j = 2 * m1 * m2 / (m1 + m2) * (u * nx);                          // impulse magnitude on ball 1 along n
  const std::array<double, 4> ideal{u - j / m1 * nx, -j / m1 * ny, j / m2 * nx, j / m2 * ny};
  auto err = [&](const std::array<double, 4>& o) {
    double e = 0;
    for (int k = 0; k < 4; ++k) e = std::max(e, std::abs(o[k] - ideal[k]));
    return e;
  };
  // stiffer springs (the normal turns less during a shorter contact) and omega * h shrinking too
  const double e1 = err(outcome(200, 64)), e2 = err(outcome(800, 1024)), e3 = err(outcome(3200, 16384));
  std::printf("oblique collision: max velocity error %.3g, %.3g, %.3g px/s\n", e1, e2, e3);
  EXPECT_LT(e1, 0.05 * u);
  EXPECT_LT(e2, 0.5 * e1);
  EXPECT_LT(e3, 0.5 * e2) << e1 << " " << e2 << " " << e3;
}

TEST(CpuEngine, SameBitsForAnyThreadCount) {
  datagen::WorldDef w;
  w.variable_mass = true;
  const uint64_t seed = test::fresh_seed();
  Scene a = datagen::dataset_scenes(w, 37, seed), b = a;
  run(a, 5, 1);
  run(b, 5, 3);
  EXPECT_EQ(a.state.x, b.state.x);
  EXPECT_EQ(a.state.vy, b.state.vy);
}

// Box2D's determinism test, for npe's engine: a fixed scene set is stepped and every recorded
// frame hashed; the hashes are committed, so any change to the trajectories' bits (the physics,
// the summation order, the compiler's contraction of a * b + c) fails here, for 1, 2 and 5
// threads. A deliberate change of the physics updates the constants (and says why).
template <class T>
uint64_t trajectory_hash(int threads) {
  datagen::WorldDef w;
  w.variable_mass = true;
  w.num_balls = 6;
  Scene sc = datagen::dataset_scenes(w, 24, /*seed=*/11);
  const int frames = 60;
  std::vector<T> out(static_cast<size_t>(frames) * 4 * sc.spec.num_bodies());
  const Recorder<T> rec = engine_layout(out.data(), sc.spec);
  WorldState<T> st = cast_state<T>(sc.state);
  record_cpu(sc.spec, st, rec, 0);
  advance_cpu(sc.spec, st, frames - 1, rec, 1, threads);
  return test::fnv1a64(out.data(), out.size() * sizeof(T));
}

TEST(CpuEngine, CommittedTrajectoryHashes) {
  constexpr uint64_t kFloat64 = 1437088973035229689ULL, kFloat32 = 13493303703545320969ULL;
  for (int threads : {1, 2, 5}) {
    EXPECT_EQ(trajectory_hash<double>(threads), kFloat64) << threads << " threads";
    EXPECT_EQ(trajectory_hash<float>(threads), kFloat32) << threads << " threads";
  }
}

TEST(CpuEngine, GridAndAllPairsFindTheSameContactsAndSteps) {
  // centres uniform in the box: hundreds of overlapping pairs, some across cell borders
  Scene sc = overlapping_world(1500, 4, 0.45, 300, test::fresh_seed());
  const auto grid = contact_pairs_cpu(sc.spec, sc.state, BroadPhase::kGrid);
  const auto all = contact_pairs_cpu(sc.spec, sc.state, BroadPhase::kAllPairs);
  EXPECT_GT(all.size(), 100u);
  EXPECT_EQ(grid, all);
  // stepping: the same contacts, summed in another order (grid cells instead of ball order):
  // equal to rounding. Frames of one substep: the deep overlaps would turn the comparison
  // chaotic over many.
  sc.spec.frame_dt = sc.spec.substep();
  sc.spec.substeps = 1;
  Scene g = sc, p = sc;
  p.spec.broad_phase = BroadPhase::kAllPairs;
  advance_cpu(g.spec, g.state, 3, kNoRecord, 0, 2);
  advance_cpu(p.spec, p.state, 3, kNoRecord, 0, 2);
  double moved = 0;
  for (int64_t i = 0; i < g.spec.num_bodies(); ++i) {
    ASSERT_NEAR(g.state.x[i], p.state.x[i], 1e-9);
    ASSERT_NEAR(g.state.vy[i], p.state.vy[i], 1e-9 * (1 + std::abs(p.state.vy[i])));
    moved = std::max(moved, std::abs(g.state.vy[i] - sc.state.vy[i]));
  }
  EXPECT_GT(moved, 1.0) << "the contacts changed some velocity";
}

TEST(CpuEngine, RecordsEveryFrameInBothLayouts) {
  datagen::WorldDef w;
  Scene sc = datagen::dataset_scenes(w, 5, test::fresh_seed());
  const int frames = 4;
  std::vector<double> eng(static_cast<size_t>(frames) * 4 * sc.spec.num_bodies(), std::nan(""));
  std::vector<double> ds(static_cast<size_t>(frames) * 5 * sc.spec.num_bodies(), std::nan(""));
  Scene a = sc;
  record_cpu(a.spec, a.state, engine_layout(eng.data(), a.spec), 0);
  record_cpu(a.spec, a.state, dataset_layout(ds.data(), a.spec, frames, w.width, w.max_speed), 0);
  advance_cpu(a.spec, a.state, frames - 1, engine_layout(eng.data(), a.spec), 1);
  Scene b = sc;
  advance_cpu(b.spec, b.state, frames - 1, dataset_layout(ds.data(), b.spec, frames, w.width, w.max_speed), 1);
  for (double v : eng) ASSERT_FALSE(std::isnan(v));
  for (double v : ds) ASSERT_FALSE(std::isnan(v));
  // last frame of ball 2 of scene 3 in both layouts equals the final state
  const int64_t S = sc.spec.num_scenes, bidx = 2 * S + 3;
  EXPECT_EQ(eng[(3 * 4 + 0) * sc.spec.num_bodies() + bidx], a.state.x[bidx]);
  EXPECT_EQ(eng[(3 * 4 + 3) * sc.spec.num_bodies() + bidx], a.state.vy[bidx]);
  const double* f = ds.data() + ((3 * frames + 3) * 4 + 2) * 5;
  EXPECT_EQ(f[0], b.state.x[bidx] * (1.0 / w.width));
  EXPECT_EQ(f[3], b.state.vy[bidx] * (1.0 / w.max_speed));
  EXPECT_EQ(f[4], sc.spec.mass[bidx]);
}

// Extreme speeds and densities for 10^4 substeps: no NaN, nobody leaves the box, energy bounded.
TEST(CpuEngine, StressExtremeSpeedsAndDensities) {
  const uint64_t seed = test::fresh_seed();
  for (double speed : {600.0, 3000.0}) {
    datagen::WorldDef w;
    w.num_balls = 8;
    w.radius = 70;  // 8 balls of radius 70 cover 26% of the box
    w.max_speed = speed;
    w.variable_mass = true;
    Scene sc = datagen::dataset_scenes(w, 16, seed);
    // stiffness for the worst approach of a light ball thrown by heavy ones
    const ContactChoice c = choose_contact(4 * speed, w.radius, 0.1);
    sc.spec.contact_omega = c.omega;
    sc.spec.substeps = c.substeps;
    const int frames = (10000 + c.substeps - 1) / c.substeps;
    double e0[16];
    for (int s = 0; s < 16; ++s) e0[s] = kinetic_energy(sc.spec, sc.state, s);
    advance_cpu(sc.spec, sc.state, frames, kNoRecord, 0, 2);
    for (int64_t b = 0; b < sc.spec.num_bodies(); ++b) {
      ASSERT_TRUE(std::isfinite(sc.state.x[b]) && std::isfinite(sc.state.vx[b])) << "speed " << speed;
      ASSERT_GT(sc.state.x[b], 0);
      ASSERT_LT(sc.state.x[b], w.width);
      ASSERT_GT(sc.state.y[b], 0);
      ASSERT_LT(sc.state.y[b], w.height);
    }
    for (int s = 0; s < 16; ++s) EXPECT_LT(kinetic_energy(sc.spec, sc.state, s), 1.5 * e0[s] + 1e-9);
  }
}

TEST(CpuEngine, RejectsMismatchedStateAndBadSpecs) {
  Scene sc = explicit_scene({{100, 100, 1, 1, 1}}, 10, 800, 600, 200, 64);
  WorldState<double> wrong(2);
  EXPECT_THROW(advance_cpu(sc.spec, wrong, 1, kNoRecord, 0), Error);
  WorldSpec bad = sc.spec;
  bad.substeps = 2;  // omega * h = 10: contact not resolved
  try {
    validate(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("substeps"), std::string::npos) << e.what();
  }
  bad = sc.spec;
  bad.mass[0] = -1;
  EXPECT_THROW(validate(bad), Error);
  bad = sc.spec;
  bad.restitution = 0;
  EXPECT_THROW(validate(bad), Error);
}

TEST(CpuEngine, RestitutionBelowOneDampsEachCollision) {
  for (double e : {0.5, 0.8}) {
    Scene sc = explicit_scene({{60 + 30.0, 300, -40, 0, 3.0}}, 60, 800, 600, 200, 256);
    sc.spec.restitution = e;
    run(sc, 10);
    EXPECT_NEAR(sc.state.vx[0], e * 40, 0.02 * 40) << "restitution " << e;
  }
}

}  // namespace
}  // namespace npe::gpu
