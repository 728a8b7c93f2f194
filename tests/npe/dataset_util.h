// Helper of the model tests (train_test.cpp, train_step_test.cpp, distributed_test.cpp): a small
// Box2D dataset written under a test's directory.
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace npe::model::test_util
