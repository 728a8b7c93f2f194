// Engine rollouts from ground-truth frames (gpu/src/rollout.cpp): the simulator row of npe-eval.
#include <cmath>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "npe/datagen/dataset.h"
#include "npe/datagen/generate.h"
#include "npe/core/error.h"
#include "npe/datagen/engine_world.h"
#include "npe/rollout/sim_rollout.h"
#include "test_util.h"

namespace npe::rollout {
using namespace npe::gpu;  // the engine the tested functions drive
namespace {

struct EngineData {
  test::TempDir dir;
  datagen::Manifest manifest;
  datagen::Trajectories test;
};

// A small variable-mass dataset made by the engine itself (CPU reference).
void make_engine_data(EngineData& d, uint64_t seed) {
  datagen::DatagenConfig c;
  c.num_scenes = 40;
  c.world.timesteps = 14;
  c.world.variable_mass = true;
  c.seed = seed;
  c.out_prefix = d.dir / "e/e";
  c.progress = false;
  c.threads = 2;
  datagen::generate_dataset_gpu(c, false, 0);
  d.manifest = datagen::read_manifest(c.out_prefix);
  d.test = datagen::load_split(c.out_prefix, d.manifest, "test");
}

// On the engine's own data the replay follows the recorded frames: it restarts from frame 1 as
// stored (float32, normalised), so it departs only by that rounding (1e-4 px), grown by the
// collisions of 12 frames.
TEST(SimulatorRollout, ReplaysTheEnginesOwnDataset) {
  EngineData d;
  make_engine_data(d, test::fresh_seed());
  const int steps = 12;
  const auto sim = simulator_rollout(d.manifest, d.test, d.test.scenes, steps, false);
  ASSERT_EQ(sim.timesteps, steps + 2);
  ASSERT_EQ(sim.scenes, d.test.scenes);
  double worst = 0;
  for (int64_t s = 0; s < sim.scenes; ++s)
    for (int t = 0; t < steps + 2; ++t)
      for (int64_t i = 0; i < sim.num_balls; ++i) {
        const float* a = sim.frame(s, t) + i * 5;
        const float* b = d.test.frame(s, t) + i * 5;
        if (t < 2) {
          ASSERT_EQ(std::memcmp(a, b, 5 * sizeof(float)), 0) << "frames 0 and 1 are the truth's";
        }
        worst = std::max(worst, std::hypot(a[0] - b[0], a[1] - b[1]) * d.manifest.pos_scale());
        ASSERT_EQ(a[4], b[4]) << "the truth's masses";
      }
  std::printf("replay of the engine's own data: worst position error %.2e px\n", worst);
  EXPECT_LT(worst, 0.05);
  EXPECT_GT(worst, 0.0);  // not a copy of the truth
  EXPECT_LT(simulator_window_mse(d.manifest, d.test, false), 1e-8);
}

TEST(SimulatorRollout, UsesTheGivenMassesAndRefusesWrongOnes) {
  EngineData d;
  make_engine_data(d, test::fresh_seed());
  const int64_t S = 3, N = d.test.num_balls;
  datagen::Rng rng(test::fresh_seed(), 0);
  std::vector<std::vector<double>> m(S, std::vector<double>(N));
  for (auto& row : m)
    for (double& v : row) v = rng.uniform(0.5, 30);
  const auto sim = simulator_rollout(d.manifest, d.test, S, 4, false, &m);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < N; ++i) EXPECT_FLOAT_EQ(sim.frame(s, 5)[i * 5 + 4], static_cast<float>(m[s][i]));
  m[1].pop_back();
  EXPECT_THROW(simulator_rollout(d.manifest, d.test, S, 4, false, &m), Error);
  EXPECT_THROW(simulator_rollout(d.manifest, d.test, S, 13, false), Error);  // needs 15 frames
}

// A Box2D dataset replays through the penalty engine (replay_spec chooses its contact). Window by
// window, against the constant-velocity baseline on the windows with a contact (300 scenes, about
// 185 such windows):
//  - the simulator's one-step error is below a tenth of the baseline's in at least 85% of them
//    (96% +- 1.4% over 400 runs, lowest 91.6%). The rest are mostly collisions near a frame
//    boundary: Box2D resolves one at its 10 ms step, the engine over the 16 ms of its contact
//    (pi / omega), so one of them may show the impulse a frame before the other;
//  - it is worse than the baseline in at most 5% (0.16% on average, at most 2.2%). These are
//    rattles: a light ball in a gap of a few px between a heavy ball and a wall meets several
//    contacts per frame, and which way it leaves the frame is decided by their timing (stiffer
//    contacts, omega 1000 and 4000 /s, do not remove them). One such window carries the whole
//    ball's velocity squared, so it alone can put the MSE at 40% of the baseline's on 100 scenes,
//    which is why the MSE is held only below the baseline's (at most 28% over 400 runs).
TEST(SimulatorRollout, Box2dDatasetReplaysCloselyWithTheEnginesOwnContact) {
  test::TempDir dir;
  datagen::DatagenConfig c;
  c.num_scenes = 300;
  c.world.timesteps = 20;
  c.world.variable_mass = true;
  c.seed = test::fresh_seed();
  c.out_prefix = dir / "b/b";
  c.progress = false;
  datagen::generate_dataset(c);
  const auto m = datagen::read_manifest(c.out_prefix);
  const auto t = datagen::load_split(c.out_prefix, m, "train");
  EXPECT_EQ(replay_spec(m, 1).substeps, 64);  // not Box2D's 10
  const std::vector<double> sim = simulator_window_errors(m, t, false);
  ASSERT_EQ(static_cast<int64_t>(sim.size()), t.windows());
  double sim_mse = 0, cv_mse = 0;
  int64_t changed = 0, close = 0, worse = 0;
  for (int64_t s = 0, w = 0; s < t.scenes; ++s)
    for (int64_t k = 1; k + 1 < t.timesteps; ++k, ++w) {
      double cv = 0;  // constant velocity's one-step error on this window
      for (int64_t i = 0; i < t.num_balls; ++i)
        for (int f = 2; f < 4; ++f) cv += std::pow(t.frame(s, k + 1)[i * 5 + f] - t.frame(s, k)[i * 5 + f], 2);
      cv /= static_cast<double>(t.num_balls * 2);
      sim_mse += sim[w], cv_mse += cv;
      if (cv == 0) continue;  // no contact: Box2D's frictionless, gravity-free balls keep their velocity bits
      ++changed;
      close += sim[w] < 0.1 * cv;
      worse += sim[w] > cv;
    }
  sim_mse /= static_cast<double>(sim.size()), cv_mse /= static_cast<double>(sim.size());
  std::printf("one-step error on Box2D data: MSE %.3e (constant velocity %.3e); of %ld windows with a contact, "
              "%ld within a tenth of the baseline's error, %ld worse than it\n",
              sim_mse, cv_mse, static_cast<long>(changed), static_cast<long>(close), static_cast<long>(worse));
  ASSERT_GT(changed, 100);
  EXPECT_GE(close, 0.85 * static_cast<double>(changed));
  EXPECT_LE(worse, 0.05 * static_cast<double>(changed));
  EXPECT_LT(sim_mse, cv_mse);
  EXPECT_NEAR(sim_mse, simulator_window_mse(m, t, false), 1e-12 * sim_mse);
}

}  // namespace
}  // namespace npe::rollout
