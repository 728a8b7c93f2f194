// npe/datagen/dataset.h: the npe dataset format.
//
// A dataset with prefix P is
//   P_train.npy, P_val.npy, P_test.npy  float32 [scenes, T, N, 5], C order, NumPy .npy v1.0
//   P.json                               manifest: world parameters, normalisation constants,
//                                        seed, engine, npe version, per-split counts
// Splits are 70/15/15 by scene, never by window. A training window is (t-1, t, t+1) of one
// scene, cut from the trajectories when needed: a split of S scenes has S * (T - 2) windows.
// Mixed ball counts (world.ball_counts in the manifest): N is the largest count; a scene of n balls
// fills slots [0, n), and slots [n, N) hold all-zero states (mass 0) in every frame.
// Python: arr = numpy.load("P_train.npy")  # shape (S, T, N, 5); present = arr[..., 4] > 0
// Walls worlds (world.walls in the manifest: the shapes scenes were drawn from) add
//   P_train_walls.npy, P_val_walls.npy, P_test_walls.npy  float32 [scenes, 32, 4]: each scene's
//                                        blocks (walls.h record_walls: x, y, half side, shape code)
// named by each split's "walls_file"; a dataset without walls has neither.
//
// A sharded dataset (npe-datagen --shard k/N, then --merge_shards N) is
//   P.shard-KKKKK-of-NNNNN_{train,val,test}.npy  the scenes of shard k that fall in each split
//                                                 (a split a shard holds none of has no file)
//   P.shard-KKKKK-of-NNNNN.json                   the shard's manifest: format "npe-dataset-shard",
//                                                 its place {"shard": {index, count, first_scene,
//                                                 scenes}}, global num_scenes, its splits
//   P.json                                        written by the merge: format "npe-dataset", each
//                                                 split listing its "parts" (file, first_scene,
//                                                 scenes) in scene order instead of one "file"
// load_split concatenates the parts, so that a merged sharded dataset loads as exactly the arrays
// of a single run with the same seed. Python: numpy.concatenate([numpy.load(d / p["file"]) for p
// in split["parts"]]).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "npe/core/npy.h"
#include "npe/datagen/world.h"

namespace npe::datagen {

// Trajectories of one split: data is [scenes, timesteps, num_balls, kStateDim] float32.
struct Trajectories {
  int64_t scenes = 0, timesteps = 0, num_balls = 0;
  std::vector<float> data;
  // A walls world's walls: [scenes, kWallSlots, kWallDim] (walls.h record_walls); empty otherwise.
  std::vector<float> walls;
  const float* walls_of(int64_t scene) const { return walls.data() + scene * kWallSlots * kWallDim; }

  const float* frame(int64_t scene, int64_t t) const {
    return data.data() + ((scene * timesteps + t) * num_balls) * kStateDim;
  }
  float* frame(int64_t scene, int64_t t) { return data.data() + ((scene * timesteps + t) * num_balls) * kStateDim; }
  int64_t windows() const { return scenes * (timesteps - 2); }
  // Balls of `scene`: its slots with a positive mass (the first ones; the rest are absent).
  int64_t balls_in(int64_t scene) const {
    const float* f = frame(scene, 0);
    int64_t n = 0;
    while (n < num_balls && f[n * kStateDim + 4] > 0) ++n;
    return n;
  }
};

// One file of a split stored in parts (a merged sharded dataset): [scenes, T, N, 5] float32.
struct SplitPart {
  std::string file;         // file name, relative to the manifest's directory
  int64_t first_scene = 0;  // index of the part's first scene in generation order
  int64_t scenes = 0;
};

struct SplitInfo {
  std::string name;         // "train", "val" or "test"
  std::string file;         // file name, relative to the manifest's directory; empty when in parts
  int64_t first_scene = 0;  // index of the split's first scene in generation order
  int64_t scenes = 0;
  int64_t windows = 0;
  // A split stored in parts (a merged sharded dataset): the files whose scenes, concatenated in
  // this order, are the split's; they tile [first_scene, first_scene + scenes). Empty: one `file`.
  std::vector<SplitPart> parts = {};
  std::string walls_file = {};  // a walls world's P_<split>_walls.npy, beside the manifest; else empty
};

// The place of a shard's manifest (npe-datagen --shard index/count) in the whole dataset: scenes
// [first_scene, first_scene + scenes) of the manifest's num_scenes. count 0: not a shard.
struct ShardInfo {
  int64_t index = 0, count = 0;
  int64_t first_scene = 0, scenes = 0;
};

// The JSON manifest. pos_scale (= width, px) and vel_scale (= max_speed, px/s) recover physical
// units: x_px = x * pos_scale, v_px_per_s = v * vel_scale.
struct Manifest {
  WorldDef world;
  uint64_t seed = 0;
  std::string engine = "box2d";
  std::string npe_version;
  int64_t num_scenes = 0;         // of the whole dataset (for a shard too)
  std::vector<SplitInfo> splits;  // a shard's: only the splits it holds scenes of
  ShardInfo shard = {};           // a shard's manifest (format "npe-dataset-shard"); count 0 otherwise

  Normalisation normalisation() const { return datagen::normalisation(world); }
  double pos_scale() const { return normalisation().pos_scale; }
  double vel_scale() const { return normalisation().vel_scale; }
  // Positions advance by v * step_scale() per frame in normalised units.
  double step_scale() const { return normalisation().step_scale(); }
  const SplitInfo& split(const std::string& name) const;  // throws npe::Error if absent

  // format "npe-dataset", or "npe-dataset-shard" when shard.count > 0; the keys "parts" and
  // "shard" appear only in manifests that have them (an unsharded run's manifest is unchanged).
  nlohmann::json to_json() const;
  // Throws npe::Error naming `source` and the missing or mistyped field. A dataset manifest
  // ("npe-dataset") unless `shard`, then a shard's ("npe-dataset-shard"); a shard's manifest where a
  // dataset's is expected is refused with the merge command to run.
  static Manifest from_json(const nlohmann::json& j, const std::string& source, bool shard = false);
};

// Split sizes for n scenes: 70% / 15% / 15%, each at least one scene. Requires n >= 3.
struct SplitSizes {
  int64_t train, val, test;
};
SplitSizes split_sizes(int64_t num_scenes);

std::filesystem::path manifest_path(const std::string& prefix);
std::filesystem::path split_path(const std::string& prefix, const std::string& split);
// P_<split>_walls.npy: a walls world's walls of the split's scenes.
std::filesystem::path walls_path(const std::string& prefix, const std::string& split);
// The prefix of shard `shard` of `num_shards`: P.shard-KKKKK-of-NNNNN (5 digits at least, so that
// the names sort in shard order up to 10^5 shards).
std::string shard_prefix(const std::string& prefix, int64_t shard, int64_t num_shards);

// Reads and validates P.json. Throws npe::Error naming the file and field.
Manifest read_manifest(const std::string& prefix);
// The files of the dataset at `prefix`: its manifest, then every split's file or parts (beside
// the manifest) when the manifest can be read; the manifest alone otherwise (a reader reports
// what is wrong). For commands that must not write over their inputs (io.h check_distinct_files).
std::vector<std::filesystem::path> dataset_files(const std::string& prefix);
// As read_manifest, from the manifest's text (`source` names it in errors).
Manifest parse_manifest(const std::string& text, const std::string& source);
// Reads and validates a shard's manifest, `shard_prefix`.json (format "npe-dataset-shard").
Manifest read_shard_manifest(const std::string& shard_prefix);

// Loads one split, validated against the manifest: shape [scenes, T, N, 5] as the manifest says,
// all values finite, masses positive; a walls world's walls too (shape [scenes, 32, 4], finite,
// blocks of the recorded size inside the box, the shape code one of the manifest's shapes). A split in parts is the concatenation of its part files,
// each checked so (shape [part scenes, T, N, 5]); the result is as if it were one file.
// Throws npe::Error naming the file, expected and found.
Trajectories load_split(const std::string& prefix, const Manifest& manifest, const std::string& split);
// The checks of load_split on an array already read (`source` names it in errors); for a split in
// parts, on the whole split (the parts concatenated).
// The walls are checked by check_walls and set by the caller.
Trajectories check_split(const Manifest& manifest, const std::string& split, NpyArray array, const std::string& source);
// A walls world's walls of one split ([scenes, kWallSlots, kWallDim], checked by check_walls);
// empty for a world without walls. Throws npe::Error naming the file.
std::vector<float> load_walls(const std::string& prefix, const Manifest& manifest, const std::string& split);
// The checks of a walls array of `scenes` scenes (`source` names it); returns its data.
std::vector<float> check_walls(const Manifest& manifest, int64_t scenes, NpyArray array, const std::string& source);

}  // namespace npe::datagen
