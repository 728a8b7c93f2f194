// Helpers of the model tests (train_test.cpp, train_step_test.cpp, distributed_test.cpp, the
// fused steps' tests): a small Box2D dataset written under a test's directory, and random
// trajectories.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include <torch/torch.h>

#include "npe/datagen/generate.h"
#include "test_util.h"

namespace npe::model::test_util {

// `scenes` scenes of `timesteps` frames (default world, seed `seed`) at dir/data/balls; returns
// the prefix.
inline std::string make_dataset(const test::TempDir& dir, uint64_t seed, int64_t scenes = 60, int timesteps = 30) {
  datagen::DatagenConfig c;
  c.num_scenes = scenes;
  c.seed = seed;
  c.world.timesteps = timesteps;
  c.progress = false;
  c.out_prefix = dir / "data/balls";
  datagen::generate_dataset(c);
  return c.out_prefix;
}

// Random trajectories [S, T, N, 5] in the dataset's units (positions in [0, 1], velocities of a
// few hundredths, masses from {1, 5, 25}); with `mixed`, scene s has between 1 and N balls and its
// last slots are absent (all zeros, as npe-datagen writes them).
inline torch::Tensor random_trajectories(int64_t S, int64_t T, int64_t N, bool mixed, std::mt19937_64& rng) {
  auto traj = torch::rand({S, T, N, 5}, torch::kFloat32);
  traj.narrow(-1, 2, 2).mul_(0.05).sub_(0.025);
  auto choice = torch::randint(0, 3, {S, 1, N, 1});
  traj.narrow(-1, 4, 1).copy_(torch::pow(5.0, choice.to(torch::kFloat32)).expand({S, T, N, 1}));
  if (mixed)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t n = std::uniform_int_distribution<int64_t>(1, N)(rng);
      if (n < N) traj[s].narrow(1, n, N - n).zero_();
    }
  return traj.contiguous();
}

}  // namespace npe::model::test_util
