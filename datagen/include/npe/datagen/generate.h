// npe/datagen/generate.h: whole-dataset generation (what npe-datagen runs).
#pragma once

#include <cstdint>
#include <functional>
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
  // max over scenes of max_t |E_t - E_0| / E_0 (scenes with E_0 > 0) of the kinetic energy; for
  // the GPU engine over the frames where no contact is active
  double max_energy_drift = 0;
  int64_t redrawn = 0;      // draws rejected by the world's rejection rule (--preset npe2017)
  std::vector<std::string> files;
};

// A source of simulated scenes: fills `out` ([count, T, N, 5] float32, the dataset layout) with
// scenes [first, first + count), each a function of (seed, scene index) alone.
using SceneSource = std::function<void(int64_t first, int64_t count, float* out)>;

// The writer both engines share: validates the config, checks the output is writable and the
// disk has room, asks `source` for the scenes in order, `chunk_scenes` at a time, streams them
// into P_{train,val,test}.npy (each written atomically; 70/15/15 by scene) and writes P.json
// last with `engine` recorded. Memory use is one chunk, whatever num_scenes.
// `energy` (default: kinetic energy) measures one frame ([N, 5] normalised) for the summary's
// energy drift; frames where it returns NaN are left out. It is called from `config.threads`
// threads at once.
using FrameEnergy = std::function<double(const float* frame)>;
DatagenSummary write_dataset(const DatagenConfig& config, const std::string& engine,
                             int64_t chunk_scenes, const SceneSource& source,
                             const FrameEnergy& energy = {});

// Simulates scenes [0, num_scenes) with Box2D on `threads` threads (scene i depends only on
// (seed, i), so the files are byte-identical for any thread count), splits them 70/15/15 by
// scene and writes P_{train,val,test}.npy and P.json atomically (manifest last).
// Throws npe::Error on invalid parameters (naming the flag), an unwritable output path (checked
// before simulating), a dataset too large for the disk (estimated up front), or obstacles
// (simulated by the GPU engine only).
DatagenSummary generate_dataset(const DatagenConfig& config);

// Bytes of float32 trajectories for the given world and scene count.
double dataset_bytes(const WorldDef& world, int64_t num_scenes);

}  // namespace npe::datagen
