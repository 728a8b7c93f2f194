#include "npe/rollout/rollout.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "npe/datagen/world.h"
#include "test_util.h"

namespace npe::rollout {
namespace {
using datagen::kStateDim;
using datagen::Trajectories;

// Free flight with random constant velocities (no walls): x_{t+1} = x_t + v step_scale exactly
// as the rollout integrates it.
Trajectories free_flight(int64_t scenes, int64_t T, int64_t N, double step_scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  Trajectories t;
  t.scenes = scenes;
  t.timesteps = T;
  t.num_balls = N;
  t.data.resize(scenes * T * N * kStateDim);
  for (int64_t s = 0; s < scenes; ++s)
    for (int64_t b = 0; b < N; ++b) {
      float* f0 = t.frame(s, 0) + b * kStateDim;
      f0[0] = u(rng);
      f0[1] = u(rng);
      do {  // speeds of 0.1 or more: slower balls would fall under the metrics' 1% threshold
        f0[2] = u(rng);
        f0[3] = u(rng);
      } while (std::hypot(f0[2], f0[3]) < 0.1f);
      f0[4] = 1;
      for (int64_t k = 1; k < T; ++k) {
        const float* p = t.frame(s, k - 1) + b * kStateDim;
        float* c = t.frame(s, k) + b * kStateDim;
        c[0] = static_cast<float>(p[0] + p[2] * step_scale);
        c[1] = static_cast<float>(p[1] + p[3] * step_scale);
        c[2] = p[2];
        c[3] = p[3];
        c[4] = 1;
      }
    }
  return t;
}

// Scales (and optionally rotates by 90 degrees) the constant-velocity prediction.
Predictor scaled(double factor, bool rotate) {
  return [=](const float*, const float* cur, int64_t scenes, int64_t n, float* v) {
    for (int64_t i = 0; i < scenes * n; ++i) {
      const float vx = cur[i * kStateDim + 2], vy = cur[i * kStateDim + 3];
      v[2 * i] = static_cast<float>(factor * (rotate ? -vy : vx));
      v[2 * i + 1] = static_cast<float>(factor * (rotate ? vx : vy));
    }
  };
}

TEST(Rollout, ConstantVelocityOnFreeFlightIsPerfect) {
  const double ss = 0.0075;
  auto truth = free_flight(7, 12, 3, ss, test::fresh_seed());
  auto pred = rollout(truth, 7, 10, ss, constant_velocity());
  EXPECT_EQ(pred.timesteps, 12);
  auto m = rollout_metrics(truth, pred, 800);
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(m.cosine[k], 1.0, 1e-6);
    EXPECT_NEAR(m.rel_mag_error[k], 0.0, 1e-6);
    EXPECT_NEAR(m.pos_error_px[k], 0.0, 1e-3);
    EXPECT_EQ(m.velocity_count[k], 21);
    EXPECT_NEAR(m.energy_drift[k], 0.0, 1e-6);
  }
}

TEST(Rollout, DoubledSpeedGivesRelativeErrorOneAndKnownDrift) {
  const double ss = 0.01;
  auto truth = free_flight(5, 8, 2, ss, test::fresh_seed());
  auto pred = rollout(truth, 5, 6, ss, scaled(2.0, false));
  auto m = rollout_metrics(truth, pred, 800);
  // after k steps each ball has moved an extra k |v| step_scale
  double mean_speed = 0;
  for (int64_t s = 0; s < 5; ++s)
    for (int64_t b = 0; b < 2; ++b)
      mean_speed += std::hypot(truth.frame(s, 0)[b * 5 + 2], truth.frame(s, 0)[b * 5 + 3]);
  mean_speed /= 10;
  for (int k = 1; k <= 6; ++k) {
    EXPECT_NEAR(m.cosine[k - 1], 1.0, 1e-6);
    // the prediction compounds: step k predicts 2^k |v|
    EXPECT_NEAR(m.rel_mag_error[k - 1], std::pow(2.0, k) - 1, 1e-4 * std::pow(2.0, k));
    EXPECT_NEAR(m.energy_drift[k - 1], std::pow(4.0, k) - 1, 1e-4 * std::pow(4.0, k));  // E ~ |v|^2
  }
  EXPECT_NEAR(m.pos_error_px[0], 800 * ss * mean_speed, 1e-3);
}

TEST(Rollout, PerpendicularVelocityHasZeroCosine) {
  const double ss = 0.01;
  auto truth = free_flight(4, 5, 3, ss, test::fresh_seed());
  auto pred = rollout(truth, 4, 1, ss, scaled(1.0, true));
  auto m = rollout_metrics(truth, pred, 800);
  EXPECT_NEAR(m.cosine[0], 0.0, 1e-6);
  EXPECT_NEAR(m.rel_mag_error[0], 0.0, 1e-6);
}

TEST(Rollout, ZeroSpeedGroundTruthIsMaskedOut) {
  auto truth = free_flight(2, 4, 2, 0.01, test::fresh_seed());
  for (int64_t k = 0; k < 4; ++k)  // ball 1 of scene 0 nearly at rest: below 1% of the velocity scale
    for (int j : {2, 3}) truth.frame(0, k)[kStateDim + j] = j == 2 ? 0.004f : 0.0f;
  for (int64_t k = 1; k < 4; ++k) {
    truth.frame(0, k)[kStateDim] = truth.frame(0, 0)[kStateDim];
    truth.frame(0, k)[kStateDim + 1] = truth.frame(0, 0)[kStateDim + 1];
  }
  auto pred = rollout(truth, 2, 2, 0.01, constant_velocity());
  auto m = rollout_metrics(truth, pred, 800);
  EXPECT_EQ(m.velocity_count[0], 3);
  EXPECT_NEAR(m.cosine[0], 1.0, 1e-6);
  EXPECT_FALSE(std::isnan(m.rel_mag_error[0]));
}

// The drift weighs each ball by its mass: a predictor that stops the light ball of each scene
// loses the light balls' share of the scenes' energy, sum m_l |v_l|^2 / sum (m_l |v_l|^2 + m_h |v_h|^2).
TEST(Rollout, EnergyDriftWeighsBallsByMass) {
  const double ss = 0.01;
  auto truth = free_flight(6, 5, 2, ss, test::fresh_seed());
  for (int64_t s = 0; s < 6; ++s)
    for (int64_t t = 0; t < 5; ++t) truth.frame(s, t)[4] = 25;  // ball 0 heavy, ball 1 of mass 1
  Predictor stop_light = [](const float* prev, const float* cur, int64_t scenes, int64_t n, float* v) {
    constant_velocity()(prev, cur, scenes, n, v);
    for (int64_t i = 0; i < scenes * n; ++i)
      if (cur[i * kStateDim + 4] == 1) v[2 * i] = v[2 * i + 1] = 0;
  };
  auto pred = rollout(truth, 6, 3, ss, stop_light);
  double heavy = 0, light = 0;
  for (int64_t s = 0; s < 6; ++s) {
    const float* f = truth.frame(s, 1);
    heavy += 25 * (f[2] * f[2] + f[3] * f[3]);
    light += f[7] * f[7] + f[8] * f[8];
  }
  const double expected = -light / (heavy + light);
  const auto m = rollout_metrics(truth, pred, 800);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(m.energy_drift[k], expected, 1e-6);
}

TEST(Rollout, RefusesRolloutsLongerThanTheData) {
  auto truth = free_flight(2, 5, 2, 0.01, 1);
  EXPECT_THROW(rollout(truth, 2, 4, 0.01, constant_velocity()), Error);
  EXPECT_THROW(rollout(truth, 3, 2, 0.01, constant_velocity()), Error);
}

// Box2D scenes: balls 0 and 1 meet head-on (surfaces 280 px apart closing at 80 px/s: contact at
// 3.5 s); ball 2 passes ball 3 (at rest) with 6 px to spare.
// Mixed ball counts: absent slots (all-zero) stay all-zero whatever the predictor says for them,
// and no metric counts them.
TEST(Rollout, AbsentSlotsStayEmptyAndAreNotScored) {
  const double ss = 0.0075;
  const Trajectories three = free_flight(6, 12, 3, ss, test::fresh_seed());
  Trajectories truth = three;  // 4 slots; the last is absent in every other scene
  truth.num_balls = 4;
  truth.data.assign(6 * 12 * 4 * kStateDim, 0.0f);
  const Trajectories four = free_flight(6, 12, 4, ss, test::fresh_seed());
  for (int64_t s = 0; s < 6; ++s)
    for (int64_t t = 0; t < 12; ++t) {
      const float* src = s % 2 ? four.frame(s, t) : three.frame(s, t);
      std::copy(src, src + (s % 2 ? 4 : 3) * kStateDim, truth.frame(s, t));
    }
  Predictor junk_for_absent = [](const float* prev, const float* cur, int64_t scenes, int64_t n, float* v) {
    constant_velocity()(prev, cur, scenes, n, v);
    for (int64_t i = 0; i < scenes * n; ++i)
      if (cur[i * kStateDim + 4] == 0) v[2 * i] = v[2 * i + 1] = 0.5f;
  };
  auto pred = rollout(truth, 6, 10, ss, junk_for_absent);
  for (int64_t t = 0; t < 12; ++t)
    for (int64_t s = 0; s < 6; s += 2)
      for (int k = 0; k < kStateDim; ++k) EXPECT_EQ(pred.frame(s, t)[3 * kStateDim + k], 0.0f) << s << " " << t;
  auto m = rollout_metrics(truth, pred, 800);
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(m.cosine[k], 1.0, 1e-6);
    EXPECT_LT(m.pos_error_px[k], 1e-3);
    EXPECT_EQ(m.velocity_count[k], 3 * 3 + 3 * 4);  // present balls only
  }
  EXPECT_EQ(truth.balls_in(0), 3);
  EXPECT_EQ(truth.balls_in(1), 4);
}

TEST(TouchesAnotherBall, FlagsBallsThatCollideAndNotNearMisses) {
  datagen::Rng rng(test::fresh_seed(), 0);
  const double dx = rng.uniform(-40, 40);
  datagen::WorldDef w;
  const std::vector<datagen::BallInit> init{
      {200 + dx, 150, 40, 0, 1}, {600 + dx, 150, -40, 0, 5}, {150, 330, 50, 0, 1}, {350 + dx, 456, 0, 0, 25}};
  const double rn = w.radius / w.width, ss = w.frame_dt * w.max_speed / w.width, slack = 0.6 / w.width;
  for (int frames : {60, 35}) {  // 35 frames end 0.1 s before the contact, 8 px apart
    w.timesteps = frames;
    Trajectories t;
    t.scenes = 1;
    t.timesteps = frames;
    t.num_balls = 4;
    t.data.resize(frames * 4 * kStateDim);
    datagen::simulate_box2d(w, init, t.data.data());
    const auto hit = touches_another_ball(t, 0, rn, ss, slack);
    const std::vector<uint8_t> want = frames == 60 ? std::vector<uint8_t>{1, 1, 0, 0}
                                                   : std::vector<uint8_t>{0, 0, 0, 0};
    EXPECT_EQ(hit, want) << frames << " frames";
  }
}

}  // namespace
}  // namespace npe::rollout
