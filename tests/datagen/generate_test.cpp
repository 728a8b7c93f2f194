#include "npe/datagen/generate.h"

#include <cstdio>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <tuple>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "npe/datagen/dataset.h"
#include "npe/core/io.h"
#include "npe/core/npy.h"
#include "shard_test_util.h"
#include "test_util.h"

namespace npe::datagen {
namespace {
using test_util::error_of;
using test_util::generate_shards;
namespace fs = std::filesystem;

// A small dataset's config: `num_scenes` scenes of 8 frames under dir/name/d.
DatagenConfig shard_config(const test::TempDir& dir, const std::string& name, int64_t num_scenes, uint64_t seed) {
  DatagenConfig c;
  c.num_scenes = num_scenes;
  c.seed = seed;
  c.world.timesteps = 8;
  c.world.variable_mass = true;
  c.threads = 2;
  c.progress = false;
  c.out_prefix = dir / (name + "/d");
  return c;
}

TEST(Generate, SameSeedSameBytesForAnyThreadCount) {
  const uint64_t seed = test::fresh_seed();
  test::TempDir dir;
  std::vector<std::string> files[3];
  int k = 0;
  for (int threads : {1, 2, 5}) {
    DatagenConfig c;
    c.num_scenes = 60;
    c.seed = seed;
    c.world.timesteps = 20;
    c.threads = threads;
    c.progress = false;
    c.out_prefix = dir / ("t" + std::to_string(threads) + "/balls");
    generate_dataset(c);
    for (const char* s : {"train", "val", "test"}) files[k].push_back(read_file(split_path(c.out_prefix, s)));
    ++k;
  }
  EXPECT_EQ(files[0], files[1]);
  EXPECT_EQ(files[0], files[2]);
}

// Box2D's determinism test, for npe's Box2D datasets: a small dataset's array bytes (train, val,
// test) hash to a committed value for 1, 2 and 5 threads; a change of the sampling, the Box2D
// settings or the recording fails here. A deliberate change updates the constant (and says why).
TEST(Generate, CommittedDatasetHash) {
  constexpr uint64_t kHash = 5407226107645899947ULL;
  test::TempDir dir;
  for (int threads : {1, 2, 5}) {
    DatagenConfig c;
    c.num_scenes = 30;
    c.seed = 5;
    c.world.timesteps = 20;
    c.world.variable_mass = true;
    c.threads = threads;
    c.progress = false;
    c.out_prefix = dir / ("t" + std::to_string(threads) + "/balls");
    generate_dataset(c);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char* s : {"train", "val", "test"}) {
      const std::string bytes = read_file(split_path(c.out_prefix, s));
      h = test::fnv1a64(bytes.data(), bytes.size(), h);
    }
    EXPECT_EQ(h, kHash) << threads << " threads";
  }
}

TEST(Generate, SummaryCountsAndEnergy) {
  test::TempDir dir;
  DatagenConfig c;
  c.num_scenes = 30;
  c.seed = test::fresh_seed();
  c.progress = false;
  c.out_prefix = dir / "d/balls";
  const auto s = generate_dataset(c);
  EXPECT_EQ(s.scenes, 30);
  EXPECT_EQ(s.windows, 30 * 58);
  EXPECT_LT(s.max_energy_drift, 0.01);
  EXPECT_EQ(s.files.size(), 4u);
}

TEST(Generate, BadParametersAreRefusedBeforeWork) {
  test::TempDir dir;
  DatagenConfig c;
  c.progress = false;
  c.out_prefix = dir / "d/balls";
  c.num_scenes = 0;
  EXPECT_THROW(generate_dataset(c), Error);
  c.num_scenes = 1000000000000;  // 10^12 scenes: refused with a memory estimate
  try {
    generate_dataset(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
}

// The union of the shards is a single run with the same seed, byte for byte: for random scene and
// shard counts (N up to 7 > the val and test splits of small S, so shards without some splits
// occur), each split loaded through the merged manifest equals the single run's, and the shards'
// .npy payloads concatenated equal the single run's file after its header.
TEST(Generate, ShardsMergedAreASingleRunByteForByte) {
  for (int trial = 0; trial < 4; ++trial) {
    const uint64_t seed = test::fresh_seed();
    const int64_t S = 3 + static_cast<int64_t>(seed % 38);                              // [3, 40]
    const int64_t N = 1 + static_cast<int64_t>((seed >> 8) % std::min<int64_t>(7, S));  // [1, min(7, S)]
    SCOPED_TRACE(fmt::format("S = {} scenes, N = {} shards, seed {}", S, N, seed));
    std::fprintf(stderr, "[shards] S = %lld, N = %lld, seed %llu\n", static_cast<long long>(S),
                 static_cast<long long>(N), static_cast<unsigned long long>(seed));
    test::TempDir dir;
    const DatagenConfig one = shard_config(dir, "one", S, seed);
    generate_dataset(one);
    const Manifest single = read_manifest(one.out_prefix);
    const Manifest merged = generate_shards(shard_config(dir, "sharded", S, seed), N);
    const std::string prefix = dir / "sharded/d";
    EXPECT_EQ(read_manifest(prefix).to_json(), merged.to_json());  // what was written is what was returned
    EXPECT_EQ(merged.num_scenes, S);
    EXPECT_EQ(merged.seed, seed);
    EXPECT_EQ(merged.engine, single.engine);
    EXPECT_EQ(merged.to_json()["world"], single.to_json()["world"]);
    ASSERT_EQ(merged.splits.size(), 3u);
    int64_t parts = 0;
    for (const SplitInfo& info : merged.splits) {
      const SplitInfo& want = single.split(info.name);
      EXPECT_EQ(info.first_scene, want.first_scene) << info.name;
      EXPECT_EQ(info.scenes, want.scenes) << info.name;
      EXPECT_EQ(info.windows, want.windows) << info.name;
      EXPECT_TRUE(info.file.empty()) << info.name;
      parts += static_cast<int64_t>(info.parts.size());
      // through load_split
      const Trajectories a = load_split(one.out_prefix, single, info.name), b = load_split(prefix, merged, info.name);
      EXPECT_EQ(b.scenes, a.scenes);
      ASSERT_EQ(a.data.size(), b.data.size()) << info.name;
      EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)), 0) << info.name;
      // the files' payloads
      const std::string whole = read_file(split_path(one.out_prefix, info.name));
      std::string payload;
      for (const SplitPart& p : info.parts) {
        const std::string bytes = read_file(dir / ("sharded/" + p.file));
        const std::string header = npy_header_f32({p.scenes, 8, 4, kStateDim});
        ASSERT_EQ(bytes.substr(0, header.size()), header) << p.file;
        payload += bytes.substr(header.size());
      }
      const size_t header = npy_header_f32({want.scenes, 8, 4, kStateDim}).size();
      EXPECT_TRUE(whole.substr(header) == payload) << info.name << ": payloads differ";
    }
    // one part per (shard, split) pair the shard holds scenes of: N + 2 when every shard is
    // within one split or straddles one boundary
    EXPECT_GE(parts, std::max<int64_t>(3, N));
    EXPECT_LE(parts, N + 2);
  }
}

// The shards tile [0, S) in order, each S / N or S / N + 1 scenes, for counts up to 10^12 scenes.
TEST(Generate, ShardRangesTileTheScenes) {
  const uint64_t seed = test::fresh_seed();
  for (const auto& [S, N] : {std::pair<int64_t, int64_t>{3, 3},
                             {40, 7},
                             {static_cast<int64_t>(3 + seed % 1000), 1 + static_cast<int64_t>(seed % 3)},
                             {1000000000000, 999983},
                             {1000000000000 - static_cast<int64_t>(seed % 1000), 1000}}) {
    int64_t next = 0;
    for (int64_t k = 0; k < N; k += std::max<int64_t>(1, N / 5000)) {  // every shard, or 5000 of them
      const SceneRange r = shard_range(S, k, N);
      if (N <= 5000) {
        EXPECT_EQ(r.first, next) << S << " " << N << " " << k;
      }
      EXPECT_TRUE(r.count == S / N || r.count == S / N + 1) << S << " " << N << " " << k << ": " << r.count;
      next = r.first + r.count;
    }
    const SceneRange last = shard_range(S, N - 1, N);
    EXPECT_EQ(last.first + last.count, S) << S << " " << N;
    EXPECT_EQ(shard_range(S, 0, N).first, 0);
  }
  EXPECT_NE(error_of([] { shard_range(5, 0, 6); }).find("num_scenes (5)"), std::string::npos);
  EXPECT_NE(error_of([] { shard_range(5, 2, 2); }).find("shard 2/2"), std::string::npos);
}

// --shard's text: clear errors naming --shard, what was expected and what was found.
TEST(Generate, ParseShardErrorsNameTheFlag) {
  DatagenConfig c;
  parse_shard("7/10", c);
  EXPECT_EQ(c.shard, 7);
  EXPECT_EQ(c.num_shards, 10);
  parse_shard("0/1", c);
  EXPECT_EQ(c.shard, 0);
  EXPECT_EQ(c.num_shards, 1);
  for (const auto& [text, needle] : {std::pair<const char*, const char*>{"3/2", "found k = 3 with N = 2"},
                                     {"-1/4", "found '-1/4'"},
                                     {"a/b", "found 'a/b'"},
                                     {"1/0", "found N = 0"},
                                     {"", "found ''"},
                                     {"1/2/3", "found '1/2/3'"},
                                     {"2", "found '2'"},
                                     {"99999999999999999999/3", "found '99999999999999999999/3'"}}) {
    const std::string e = error_of([&, text = text] { parse_shard(text, c); });
    EXPECT_NE(e.find("shard"), std::string::npos) << e;
    EXPECT_NE(e.find(needle), std::string::npos) << e;
    EXPECT_TRUE(e.find("0 <= k < N") != std::string::npos || e.find("N >= 1") != std::string::npos) << e;
  }
}

// A shard's disk estimate is its own share, and its refusal says so.
TEST(Generate, ShardDiskCheckIsForItsShare) {
  test::TempDir dir;
  DatagenConfig c = shard_config(dir, "big", 1000000000000, test::fresh_seed());  // 10^12 scenes
  c.shard = 3;
  c.num_shards = 10;  // 10^11 scenes each: 64 TB
  const std::string e = error_of([&] { generate_dataset(c); });
  EXPECT_NE(e.find("shard 3/10"), std::string::npos) << e;
  EXPECT_NE(e.find("shard (100000000000 scenes)"), std::string::npos) << e;
  EXPECT_NE(e.find("GiB"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(manifest_path(shard_prefix(c.out_prefix, 3, 10))));  // refused before any file
  c.shard = 10;
  EXPECT_NE(error_of([&] { generate_dataset(c); }).find("shard 10/10"), std::string::npos);
}

// The merge refuses a missing shard, a shard of another seed, world or scene count, a shard
// count that is not the shards', and a missing split file, naming the shard file.
TEST(Generate, MergeRefusesMissingOrInconsistentShards) {
  test::TempDir dir;
  const uint64_t seed = test::fresh_seed();
  DatagenConfig c = shard_config(dir, "s", 20, seed);
  generate_shards(c, 3);
  const std::string p = c.out_prefix;
  auto shard_json = [&](int k, int n) { return manifest_path(shard_prefix(p, k, n)).string(); };
  auto expect = [&](const std::string& what, std::initializer_list<std::string> needles, int n = 3) {
    const std::string e = error_of([&] { merge_shards(p, n); });
    for (const std::string& needle : needles) EXPECT_NE(e.find(needle), std::string::npos) << what << ": " << e;
  };
  // a missing shard
  fs::rename(shard_json(1, 3), dir / "kept.json");
  expect("missing", {"shard 1 of 3", "shard-00001-of-00003.json", "is missing", "--shard 1/3"});
  fs::rename(dir / "kept.json", shard_json(1, 3));
  EXPECT_NO_THROW(merge_shards(p, 3));
  // --merge_shards N that is not the shards' N
  expect("other N", {"shard 0 of 4", "shard-00000-of-00004.json", "is missing", "N = 3"}, 4);
  // a shard whose manifest says another N
  const std::string good1 = read_file(shard_json(1, 3));
  nlohmann::json j = nlohmann::json::parse(good1);
  j["shard"]["count"] = 4;
  write_file_atomic(shard_json(1, 3), j.dump());
  expect("count in file", {"shard-00001-of-00003.json", "expected shard 1 of 3", "found shard 1 of 4"});
  // a shard of another seed (written by npe-datagen, as a mistaken re-run would)
  DatagenConfig other = c;
  other.seed = seed + 1;
  other.shard = 1;
  other.num_shards = 3;
  generate_dataset(other);
  expect("seed", {"shard-00001-of-00003.json", "seed expected " + std::to_string(seed),
                  "found " + std::to_string(seed + 1), "shard-00000-of-00003.json"});
  // ... of another world
  other.seed = seed;
  other.world.radius = 50;
  generate_dataset(other);
  expect("world", {"shard-00001-of-00003.json", "world.radius expected 60", "found 50"});
  // ... of another scene count
  other = c;
  other.num_scenes = 21;
  other.shard = 2;
  other.num_shards = 3;
  generate_dataset(other);
  write_file_atomic(shard_json(1, 3), good1);
  expect("num_scenes", {"shard-00002-of-00003.json", "num_scenes expected 20", "found 21"});
  other.num_scenes = 20;
  generate_dataset(other);
  EXPECT_NO_THROW(merge_shards(p, 3));
  // a shard whose split file is gone
  fs::rename(split_path(shard_prefix(p, 2, 3), "test"), dir / "kept.npy");
  expect("split file", {"shard-00002-of-00003_test.npy", "expected split 'test'", "bytes"});
  fs::rename(dir / "kept.npy", split_path(shard_prefix(p, 2, 3), "test"));
  // a shard's manifest that is not where shard_range puts it
  j = nlohmann::json::parse(good1);
  j["shard"]["first_scene"] = j["shard"]["first_scene"].get<int64_t>() + 1;
  write_file_atomic(shard_json(1, 3), j.dump());
  expect("range", {"shard-00001-of-00003.json", "manifest 'splits'"});
  write_file_atomic(shard_json(1, 3), good1);
  EXPECT_NO_THROW(merge_shards(p, 3));
  EXPECT_NE(error_of([&] { merge_shards(p, 0); }).find("merge_shards"), std::string::npos);
}

// A walls world's dataset: each split's walls beside it, named in the manifest; load_split reads
// them back with the trajectories (the same scenes as simulate_scene_box2d draws); a dataset
// without walls has no walls file and loads none.
void expect_walls_dataset_round_trips(uint64_t seed) {
  test::TempDir dir;
  DatagenConfig c;
  apply_preset(c.world, "walls");
  c.world.walls = parse_wall_shapes("U,I");
  c.world.timesteps = 12;
  c.num_scenes = 20;
  c.seed = seed;
  c.threads = 2;
  c.progress = false;
  c.out_prefix = dir / "w/d";
  const auto summary = generate_dataset(c);
  EXPECT_EQ(summary.files.size(), 7u);  // 3 splits, 3 walls files, the manifest
  EXPECT_LT(summary.max_energy_drift, kBox2dEnergyTolerance);
  const Manifest m = read_manifest(c.out_prefix);
  EXPECT_EQ(format_wall_shapes(m.world.walls), "U,I");
  int64_t first = 0;
  for (const char* name : {"train", "val", "test"}) {
    EXPECT_EQ(m.split(name).walls_file, walls_path("d", name).string());
    const Trajectories t = load_split(c.out_prefix, m, name);
    ASSERT_EQ(t.walls.size(), static_cast<size_t>(t.scenes) * kWallSlots * kWallDim);
    for (int64_t s = 0; s < t.scenes; ++s) {
      std::vector<float> out(static_cast<size_t>(c.world.timesteps) * c.world.num_balls * kStateDim);
      std::vector<float> walls(kWallSlots * kWallDim);
      simulate_scene_box2d(m.world, seed, first + s, out.data(), walls.data());
      EXPECT_TRUE(std::equal(walls.begin(), walls.end(), t.walls_of(s))) << name << " scene " << s;
      EXPECT_TRUE(std::equal(out.begin(), out.end(), t.frame(s, 0))) << name << " scene " << s;
    }
    first += t.scenes;
  }
  const std::vector<fs::path> files = dataset_files(c.out_prefix);
  EXPECT_EQ(files.size(), 7u);

  // bad walls are refused naming the file: a shape code not among world.walls, not whole, huge, two
  // codes in one scene, a block of another size, a NaN; the walls file missing from the manifest
  const fs::path wfile = walls_path(c.out_prefix, "val");
  const std::vector<float> good = load_walls(c.out_prefix, m, "val");
  const int64_t scenes = m.split("val").scenes;
  for (const auto& [col, value, row] : std::vector<std::tuple<int, float, int>>{
           {3, 1.0f, -1}, {3, 3.5f, -1}, {3, 1e30f, -1}, {3, -2.0f, 2}, {2, 0.06f, 0}, {0, NAN, 0}}) {
    std::vector<float> bad = good;
    // -2: the other listed shape (U or I) than scene 0's, on one block only
    const float v = value == -2.0f ? (bad[3] == 4.0f ? 3.0f : 4.0f) : value;
    for (int64_t k = 0; k < kWallSlots; ++k) {
      float* r = bad.data() + k * kWallDim;  // scene 0
      if (r[2] > 0 && (row < 0 || row == k)) r[col] = v;
    }
    write_npy_f32(wfile, {scenes, kWallSlots, kWallDim}, bad.data());
    const std::string e = test_util::error_of([&] { load_split(c.out_prefix, m, "val"); });
    EXPECT_NE(e.find(wfile.string()), std::string::npos) << col << " " << value << ": " << e;
  }
  write_npy_f32(wfile, {scenes, kWallSlots, kWallDim}, good.data());
  std::string text = read_file(manifest_path(c.out_prefix));
  const size_t at = text.find("\"walls_file\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 12, "\"wallz_file\"");
  EXPECT_NE(test_util::error_of([&] { parse_manifest(text, "m.json"); }).find("walls_file"), std::string::npos);

  DatagenConfig plain = c;
  plain.world = WorldDef{};
  plain.world.timesteps = 5;
  plain.out_prefix = dir / "p/d";
  generate_dataset(plain);
  EXPECT_FALSE(fs::exists(walls_path(plain.out_prefix, "train")));
  EXPECT_TRUE(load_split(plain.out_prefix, read_manifest(plain.out_prefix), "train").walls.empty());
  const std::string plain_text = read_file(manifest_path(plain.out_prefix));
  EXPECT_EQ(plain_text.find("walls"), std::string::npos);  // older readers see nothing new
}

TEST(Generate, WallsWorldsWriteAndLoadTheirWalls) { expect_walls_dataset_round_trips(test::fresh_seed()); }
// the seed whose first val scene was an I scene: the "other shape" case once set its own code
TEST(Generate, WallsWorldsWriteAndLoadTheirWallsRegressionSeed) {
  expect_walls_dataset_round_trips(7648768992298393097ULL);
}

// What a walls world refuses, each naming its field: another box, the GPU engine, sharding, a
// radius wider than the corridors, obstacles besides walls.
TEST(Generate, WallsWorldsRefuseWhatTheyCannotBe) {
  test::TempDir dir;
  DatagenConfig c;
  apply_preset(c.world, "walls");
  c.num_scenes = 10;
  c.progress = false;
  c.out_prefix = dir / "w/d";
  auto field_of = [](auto&& f) {
    try {
      f();
    } catch (const FieldError& e) {
      return e.field();
    }
    return std::string("(none)");
  };
  DatagenConfig wide = c;
  wide.world.width = 900;
  EXPECT_EQ(field_of([&] { generate_dataset(wide); }), "walls");
  DatagenConfig big = c;
  big.world.radius = 90;
  EXPECT_EQ(field_of([&] { generate_dataset(big); }), "radius");
  DatagenConfig sharded = c;
  parse_shard("0/2", sharded);
  EXPECT_EQ(field_of([&] { generate_dataset(sharded); }), "shard");
  DatagenConfig both = c;
  both.world.obstacles = parse_obstacles("box:400,300,20,20,0");
  EXPECT_NE(field_of([&] { generate_dataset(both); }), "(none)");
  EXPECT_FALSE(fs::exists(dir / "w"));  // nothing written
}

}  // namespace
}  // namespace npe::datagen
