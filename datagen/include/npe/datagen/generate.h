// npe/datagen/generate.h: whole-dataset generation (what npe-datagen runs).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "npe/datagen/dataset.h"
#include "npe/datagen/world.h"

namespace npe::datagen {

struct DatagenConfig {
  WorldDef world;
  int64_t num_scenes = 12000;
  uint64_t seed = 0;
  std::string out_prefix = "data/balls_n4_t60_uniform/balls_n4_t60_uniform";
  int threads = 0;       // 0: all hardware threads
  bool progress = true;  // progress bar / periodic line on stderr
  // Sharding (npe-datagen --shard k/N): with num_shards = N > 0, only shard k's scenes are written
  // (shard_range), under shard_prefix(out_prefix, k, N); merge_shards then lists the N shards as
  // one dataset. 0: the whole dataset, under out_prefix.
  int64_t shard = 0;
  int64_t num_shards = 0;
};

// Scenes [first, first + count) in generation order.
struct SceneRange {
  int64_t first = 0, count = 0;
};

// Shard k of N of S scenes: [floor(k S / N), floor((k + 1) S / N)), computed without overflow for
// any S and N of int64_t. The N shards tile [0, S); each holds S / N or S / N + 1 scenes.
// Throws npe::Error naming --shard unless 0 <= k < N and 1 <= N <= S (every shard holds a scene).
SceneRange shard_range(int64_t num_scenes, int64_t shard, int64_t num_shards);
// The scenes `config` writes: [0, num_scenes), or its shard's when num_shards > 0.
SceneRange scene_range(const DatagenConfig& config);
// Parses --shard's "k/N" (decimal digits, 0 <= k < N) into config.shard and config.num_shards.
// Throws npe::Error naming --shard, what was expected and what was found.
void parse_shard(const std::string& text, DatagenConfig& config);

struct DatagenSummary {
  int64_t scenes = 0;
  int64_t windows = 0;  // training windows over all splits: scenes * (T - 2)
  double seconds = 0;
  // max over scenes of max_t |E_t - E_0| / E_0 (scenes with E_0 > 0) of the kinetic energy; for
  // the GPU engine over the frames where no contact is active
  double max_energy_drift = 0;
  int64_t redrawn = 0;  // draws rejected by the world's rejection rule (--preset npe2017)
  std::vector<std::string> files;
};

// A source of simulated scenes: fills `out` ([count, T, N, 5] float32, the dataset layout) with
// scenes [first, first + count), each a function of (seed, scene index) alone, and for a walls
// world `walls` ([count, kWallSlots, kWallDim], record_walls) with their walls (nullptr otherwise).
using SceneSource = std::function<void(int64_t first, int64_t count, float* out, float* walls)>;

// The writer both engines share: validates the config, checks the output is writable and the
// disk has room, asks `source` for the scenes in order, `chunk_scenes` at a time, streams them
// into P_{train,val,test}.npy (each written atomically; 70/15/15 by scene), for a walls world
// their walls into P_{train,val,test}_walls.npy, and writes P.json last with `engine` recorded. Memory use is one chunk, whatever num_scenes.
// Sharded (config.num_shards > 0): asks only for the shard's scenes (scene_range, never across a
// split's end), writes them to PS_{split}.npy for the splits the shard holds scenes of (no file
// for the others), PS = shard_prefix(P, k, N), and the shard's manifest PS.json last; the splits
// are those of the whole dataset (by global scene index), the disk check is for the shard's share.
// `energy` (default: kinetic energy) measures one frame ([N, 5] normalised) for the summary's
// energy drift; frames where it returns NaN are left out. It is called from `config.threads`
// threads at once.
using FrameEnergy = std::function<double(const float* frame)>;
DatagenSummary write_dataset(const DatagenConfig& config, const std::string& engine, int64_t chunk_scenes,
                             const SceneSource& source, const FrameEnergy& energy = {});

// Simulates scenes [0, num_scenes) with Box2D on `threads` threads (scene i depends only on
// (seed, i), so the files are byte-identical for any thread count), splits them 70/15/15 by
// scene and writes P_{train,val,test}.npy and P.json atomically (manifest last).
// Throws npe::Error on invalid parameters (naming the flag), an unwritable output path (checked
// before simulating), a dataset too large for the disk (estimated up front), or obstacles
// (simulated by the GPU engine only). Walls worlds (world.walls) are written with their walls and
// are not sharded (npe::FieldError on "shard").
DatagenSummary generate_dataset(const DatagenConfig& config);

// Bytes of float32 trajectories (and walls, for a walls world) for the given world and scene count.
double dataset_bytes(const WorldDef& world, int64_t num_scenes);

// npe-datagen --merge_shards N: reads the N shard manifests shard_prefix(prefix, k, N).json,
// checks that they are shards 0..N-1 of N of one dataset (same world, seed, num_scenes, engine and
// npe version; their scenes and splits where shard_range puts them; their split files present and
// at least as large as their arrays) and writes prefix.json (atomically): a dataset manifest
// whose splits list the shards' files as parts, in scene order. Copies no array data. Returns
// the written manifest. Throws npe::Error naming the missing or inconsistent shard file, what was
// expected and what was found.
Manifest merge_shards(const std::string& prefix, int64_t num_shards);

}  // namespace npe::datagen
