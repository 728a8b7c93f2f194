// npe/datagen/generate.h: whole-dataset generation (what npe-datagen runs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "npe/datagen/world.h"

namespace npe::datagen {

struct DatagenConfig {
  WorldDef world;
  int64_t num_scenes = 12000;
  uint64_t seed = 0;
  std::string out_prefix = "data/balls_n4_t60_uniform/balls_n4_t60_uniform";
  int threads = 0;          // 0: all hardware threads
  bool progress = true;     // progress bar / periodic line on stderr
};

struct DatagenSummary {
  int64_t scenes = 0;
  int64_t windows = 0;      // training windows over all splits: scenes * (T - 2)
  double seconds = 0;
  double max_energy_drift = 0;  // max over scenes of max_t |E_t - E_0| / E_0 (scenes with E_0 > 0)
  std::vector<std::string> files;
};

// Simulates scenes [0, num_scenes) with Box2D on `threads` threads (scene i depends only on
// (seed, i), so the files are byte-identical for any thread count), splits them 70/15/15 by
// scene and writes P_{train,val,test}.npy and P.json atomically (manifest last).
// Throws npe::Error on invalid parameters (naming the flag), an unwritable output path (checked
// before simulating), or a dataset too large for this machine's memory (estimated up front).
DatagenSummary generate_dataset(const DatagenConfig& config);

// Bytes of float32 trajectories for the given world and scene count.
double dataset_bytes(const WorldDef& world, int64_t num_scenes);

}  // namespace npe::datagen
