#include "npe/datagen/dataset.h"

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <tuple>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "npe/datagen/generate.h"
#include "npe/core/io.h"
#include "npe/core/npy.h"
#include "shard_test_util.h"
#include "test_util.h"

namespace npe::datagen {
namespace {
using test_util::error_of;
using test_util::generate_shards;

DatagenConfig small_config(const test::TempDir& dir, uint64_t seed) {
  DatagenConfig c;
  c.num_scenes = 40;
  c.seed = seed;
  c.world.timesteps = 12;
  c.world.variable_mass = true;
  c.out_prefix = dir / "ds/balls";
  c.threads = 2;
  c.progress = false;
  return c;
}

TEST(Dataset, SplitSizesAreByScene) {
  auto s = split_sizes(12000);
  EXPECT_EQ(s.train, 8400);
  EXPECT_EQ(s.val, 1800);
  EXPECT_EQ(s.test, 1800);
  s = split_sizes(3);
  EXPECT_EQ(s.train + s.val + s.test, 3);
  EXPECT_GE(s.train, 1);
  EXPECT_THROW(split_sizes(0), Error);
}

TEST(Dataset, WriteReadRoundTripMatchesSimulation) {
  test::TempDir dir;
  const auto c = small_config(dir, test::fresh_seed());
  generate_dataset(c);
  const Manifest m = read_manifest(c.out_prefix);
  EXPECT_EQ(m.num_scenes, 40);
  EXPECT_EQ(m.seed, c.seed);
  EXPECT_EQ(m.engine, "box2d");
  EXPECT_EQ(m.world.timesteps, 12);
  EXPECT_TRUE(m.world.variable_mass);
  int64_t total = 0;
  for (const char* split : {"train", "val", "test"}) {
    const SplitInfo& info = m.split(split);
    const Trajectories t = load_split(c.out_prefix, m, split);
    EXPECT_EQ(t.scenes, info.scenes);
    EXPECT_EQ(t.windows(), info.windows);
    // every stored scene is exactly the simulation of scene first_scene + i
    std::vector<float> expect(12 * 4 * kStateDim);
    const int64_t i = info.scenes - 1;
    simulate_box2d(c.world, sample_scene(c.world, c.seed, info.first_scene + i), expect.data());
    EXPECT_EQ(std::vector<float>(t.frame(i, 0), t.frame(i, 0) + expect.size()), expect) << split;
    total += info.scenes;
  }
  EXPECT_EQ(total, 40);
}

TEST(Dataset, PythonLoadsTheSplitsWithNumpyAndTorch) {
  const std::string python = NPE_TEST_PYTHON;
  if (python.empty()) GTEST_SKIP() << "configured without NPE_PYTHON (scripts/setup.sh sets it)";
  test::TempDir dir;
  const auto c = small_config(dir, test::fresh_seed());
  generate_dataset(c);
  const Manifest m = read_manifest(c.out_prefix);
  const Trajectories t = load_split(c.out_prefix, m, "train");
  double sum = 0;
  for (float x : t.data) sum += x;
  // the three lines of the README, then checks
  const std::string script = fmt::format(
      "import json, numpy as np, torch\n"
      "meta = json.load(open('{0}.json'))\n"
      "train = np.load('{0}_train.npy')\n"
      "x = torch.from_numpy(train)\n"
      "assert train.dtype == np.float32 and train.shape == ({1}, 12, 4, 5), train.shape\n"
      "assert x.shape == ({1}, 12, 4, 5)\n"
      "assert abs(float(train.astype(np.float64).sum()) - {2:.17g}) < 1e-6 * max(1.0, abs({2:.17g}))\n"
      "assert meta['normalisation']['pos_scale'] == 800.0\n"
      "print('ok')\n",
      c.out_prefix, t.scenes, sum);
  write_file_atomic(dir / "check.py", script);
  const auto r = test::run_command(python + " " + (dir / "check.py"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos) << r.output;
}

TEST(Dataset, WrongShapeAgainstManifestIsAClearError) {
  test::TempDir dir;
  const auto c = small_config(dir, 5);
  generate_dataset(c);
  const Manifest m = read_manifest(c.out_prefix);
  std::vector<float> junk(3 * 12 * 3 * 5, 0.5f);
  write_npy_f32(split_path(c.out_prefix, "val"), {3, 12, 3, 5}, junk.data());
  try {
    load_split(c.out_prefix, m, "val");
    FAIL();
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("_val.npy"), std::string::npos) << w;
    EXPECT_NE(w.find("found (3, 12, 3, 5)"), std::string::npos) << w;
  }
}

TEST(Dataset, NonFiniteValuesAreRejected) {
  test::TempDir dir;
  const auto c = small_config(dir, 6);
  generate_dataset(c);
  const Manifest m = read_manifest(c.out_prefix);
  Trajectories t = load_split(c.out_prefix, m, "test");
  t.data[7] = NAN;
  write_npy_f32(split_path(c.out_prefix, "test"), {t.scenes, 12, 4, 5}, t.data.data());
  EXPECT_THROW(load_split(c.out_prefix, m, "test"), Error);
}

TEST(Dataset, ManifestErrorsNameTheField) {
  test::TempDir dir;
  write_file_atomic(dir / "bad.json", "{\"format\": \"npe-dataset\", \"format_version\": 1}");
  try {
    read_manifest(dir / "bad");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("npe_version"), std::string::npos) << e.what();
  }
  write_file_atomic(dir / "bad2.json", "{not json");
  EXPECT_THROW(read_manifest(dir / "bad2"), Error);
  EXPECT_THROW(read_manifest(dir / "missing"), Error);
}

// A manifest names split files beside itself only, and absurd counts are refused before any
// arithmetic on them.
TEST(Dataset, ManifestSplitFileAndCountsAreChecked) {
  test::TempDir dir;
  const auto c = small_config(dir, test::fresh_seed());
  generate_dataset(c);
  const nlohmann::json good = nlohmann::json::parse(read_file(manifest_path(c.out_prefix)));
  EXPECT_NO_THROW(parse_manifest(good.dump(), "m.json"));
  for (const char* file : {"../../etc/passwd", "/tmp/x.npy", "", ".."}) {
    nlohmann::json j = good;
    j["splits"][1]["file"] = file;
    try {
      parse_manifest(j.dump(), "m.json");
      ADD_FAILURE() << file;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("file name beside the manifest"), std::string::npos) << e.what();
    }
  }
  nlohmann::json j = good;
  j["splits"][0]["scenes"] = int64_t{4611686018427387904};  // 2^62: scenes * T would overflow
  try {
    parse_manifest(j.dump(), "m.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("10^12"), std::string::npos) << e.what();
  }
}

// check_split is load_split's validation on an array in memory (what the fuzzer drives).
TEST(Dataset, CheckSplitValidatesArraysInMemory) {
  test::TempDir dir;
  const auto c = small_config(dir, test::fresh_seed());
  generate_dataset(c);
  const Manifest m = read_manifest(c.out_prefix);
  NpyArray a = read_npy_f32(split_path(c.out_prefix, "val"));
  const Trajectories t = check_split(m, "val", a, "val.npy");
  EXPECT_EQ(t.data, a.data);
  a.data[4] = 0;  // the first ball's mass at frame 0
  EXPECT_THROW(check_split(m, "val", a, "val.npy"), Error);
  EXPECT_THROW(check_split(m, "nope", a, "val.npy"), Error);
}

TEST(Dataset, MixedCountsRoundTripAndAbsentSlotsAreChecked) {
  test::TempDir dir;
  auto c = small_config(dir, test::fresh_seed());
  parse_ball_counts(c.world, "2,3,4");
  generate_dataset(c);
  const Manifest m = read_manifest(c.out_prefix);
  EXPECT_EQ(m.world.ball_counts, (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(m.world.num_balls, 4);
  Trajectories t = load_split(c.out_prefix, m, "train");
  int seen[5] = {0, 0, 0, 0, 0};
  for (int64_t s = 0; s < t.scenes; ++s) ++seen[t.balls_in(s)];
  EXPECT_EQ(seen[2] + seen[3] + seen[4], t.scenes);
  EXPECT_GT(seen[2] * seen[3] * seen[4], 0) << seen[2] << " " << seen[3] << " " << seen[4];
  // an absent slot with a state, or a ball vanishing mid-scene, is refused with the scene and slot
  int64_t s = 0;
  while (t.balls_in(s) == 4) ++s;
  const int64_t n = t.balls_in(s);
  for (const auto& [frame, slot, value] : {std::tuple<int64_t, int64_t, float>{5, n, 0.25f}, {7, n - 1, 0.0f}}) {
    Trajectories bad = t;
    float* st = bad.frame(s, frame) + slot * kStateDim;
    st[value == 0 ? 4 : 0] = value;
    write_npy_f32(split_path(c.out_prefix, "train"), {t.scenes, 12, 4, 5}, bad.data.data());
    try {
      load_split(c.out_prefix, m, "train");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fmt::format("scene {} frame {} slot {}", s, frame, slot)), std::string::npos)
          << e.what();
    }
  }
  // without world.ball_counts an absent slot is an error
  Manifest uniform = m;
  uniform.world.ball_counts.clear();
  write_npy_f32(split_path(c.out_prefix, "train"), {t.scenes, 12, 4, 5}, t.data.data());
  EXPECT_THROW(load_split(c.out_prefix, uniform, "train"), Error);
}

TEST(Dataset, PresetIsRecordedInTheManifest) {
  test::TempDir dir;
  auto c = small_config(dir, test::fresh_seed());
  apply_preset(c.world, "npe2017");
  generate_dataset(c);
  const WorldDef w = read_manifest(c.out_prefix).world;
  EXPECT_EQ(w.preset, "npe2017");
  EXPECT_EQ(w.velocity_law, WorldDef::VelocityLaw::kIntegerPerAxis);
  EXPECT_EQ(w.max_axis_speed, 20);
  EXPECT_DOUBLE_EQ(w.min_separation, 2.5);
  EXPECT_DOUBLE_EQ(w.reject_speed, 600.0);
  EXPECT_DOUBLE_EQ(w.max_speed, 600.0);
}

// A split in parts (a merged sharded dataset) loads as one array, every scene the simulation of
// its index; each part is checked as a split of its own, and errors name the part's file.
TEST(Dataset, SplitInPartsLoadsAsOneAndIsCheckedPartByPart) {
  test::TempDir dir;
  const auto c = small_config(dir, test::fresh_seed());
  const Manifest m = generate_shards(c, 3);
  const SplitInfo& train = m.split("train");
  ASSERT_GE(train.parts.size(), 2u);
  const Trajectories t = load_split(c.out_prefix, m, "train");
  EXPECT_EQ(t.scenes, train.scenes);
  EXPECT_EQ(t.windows(), train.windows);
  std::vector<float> expect(12 * 4 * kStateDim);
  int64_t i = 0;  // scene in the split
  for (const SplitPart& p : train.parts) {
    // each part's last scene is the simulation of its global index
    i += p.scenes;
    simulate_box2d(c.world, sample_scene(c.world, c.seed, p.first_scene + p.scenes - 1), expect.data());
    EXPECT_EQ(std::vector<float>(t.frame(i - 1, 0), t.frame(i - 1, 0) + expect.size()), expect) << p.file;
  }
  const std::filesystem::path part = std::filesystem::path(c.out_prefix).parent_path() / train.parts[1].file;
  const std::string good = read_file(part);
  // a part of another shape
  std::vector<float> junk(2 * 12 * 4 * 5, 0.5f);
  write_npy_f32(part, {2, 12, 4, 5}, junk.data());
  std::string e = error_of([&] { load_split(c.out_prefix, m, "train"); });
  EXPECT_NE(e.find(train.parts[1].file), std::string::npos) << e;
  EXPECT_NE(e.find(fmt::format("expected ({}, 12, 4, 5)", train.parts[1].scenes)), std::string::npos) << e;
  EXPECT_NE(e.find("found (2, 12, 4, 5)"), std::string::npos) << e;
  // a part holding a NaN
  NpyArray a = parse_npy_f32(good, part.string());
  a.data[9] = NAN;
  write_npy_f32(part, a.shape, a.data.data());
  e = error_of([&] { load_split(c.out_prefix, m, "train"); });
  EXPECT_NE(e.find(train.parts[1].file), std::string::npos) << e;
  EXPECT_NE(e.find("not finite"), std::string::npos) << e;
  // a missing part
  std::filesystem::remove(part);
  e = error_of([&] { load_split(c.out_prefix, m, "train"); });
  EXPECT_NE(e.find(train.parts[1].file), std::string::npos) << e;
  EXPECT_NE(e.find("split 'train' lists it as a part"), std::string::npos) << e;
  write_file_atomic(part, good);
  EXPECT_EQ(load_split(c.out_prefix, m, "train").data, t.data);
  // check_split checks a whole split's array
  NpyArray whole;
  whole.shape = {t.scenes, 12, 4, 5};
  whole.data = t.data;
  EXPECT_EQ(check_split(m, "train", whole, "train").data, t.data);
}

// parse_manifest: parts are plain file names beside the manifest that tile the split's scenes in
// order; anything else is refused naming the split, the part and the field.
TEST(Dataset, ManifestPartsAreChecked) {
  test::TempDir dir;
  const auto c = small_config(dir, test::fresh_seed());
  generate_shards(c, 4);
  const nlohmann::json good = nlohmann::json::parse(read_file(manifest_path(c.out_prefix)));
  ASSERT_NO_THROW(parse_manifest(good.dump(), "m.json"));
  ASSERT_GE(good["splits"][0]["parts"].size(), 2u);
  using Mutation = std::function<void(nlohmann::json&)>;
  const std::vector<std::tuple<const char*, Mutation, std::vector<std::string>>> cases = {
      {"path",
       [](nlohmann::json& s) { s["parts"][1]["file"] = "../x.npy"; },
       {"split 'train' part 1", "file name beside the manifest", "../x.npy"}},
      {"absolute", [](nlohmann::json& s) { s["parts"][0]["file"] = "/tmp/x.npy"; }, {"part 0", "/tmp/x.npy"}},
      {"gap",
       [](nlohmann::json& s) { s["parts"][1]["first_scene"] = s["parts"][1]["first_scene"].get<int64_t>() + 1; },
       {"split 'train' part 1", "tile"}},
      {"empty part", [](nlohmann::json& s) { s["parts"][0]["scenes"] = 0; }, {"part 0", "has 0 scenes", "tile"}},
      {"too many scenes",
       [](nlohmann::json& s) { s["parts"].back()["scenes"] = s["parts"].back()["scenes"].get<int64_t>() + 1; },
       {"split 'train' part", "tile"}},
      {"part left out",
       [](nlohmann::json& s) { s["parts"].erase(s["parts"].size() - 1); },
       {"split 'train'", "parts hold"}},
      {"file and parts", [](nlohmann::json& s) { s["file"] = "x.npy"; }, {"split 'train'", "found both"}},
      {"no parts",
       [](nlohmann::json& s) { s["parts"] = nlohmann::json::array(); },
       {"split 'train'", "non-empty array"}},
      {"part field",
       [](nlohmann::json& s) { s["parts"][0].erase("scenes"); },
       {"splits[train].parts[0].scenes", "missing"}},
  };
  for (const auto& [name, mutate, needles] : cases) {
    nlohmann::json j = good;
    mutate(j["splits"][0]);
    const std::string e = error_of([&] { parse_manifest(j.dump(), "m.json"); });
    EXPECT_NE(e.find("m.json"), std::string::npos) << name << ": " << e;
    for (const std::string& n : needles) EXPECT_NE(e.find(n), std::string::npos) << name << ": " << e;
  }
}

// A shard's manifest is read as a shard's (read_shard_manifest), with its own splits loadable; where
// a dataset's is expected it is refused with the merge to run.
TEST(Dataset, ShardManifestIsReadAsAShardOnly) {
  test::TempDir dir;
  auto c = small_config(dir, test::fresh_seed());
  c.shard = 1;
  c.num_shards = 2;
  generate_dataset(c);
  const std::string sp = shard_prefix(c.out_prefix, 1, 2);
  EXPECT_EQ(manifest_path(sp).filename().string(), "balls.shard-00001-of-00002.json");
  std::string e = error_of([&] { read_manifest(sp); });
  EXPECT_NE(e.find("shard 1 of 2"), std::string::npos) << e;
  EXPECT_NE(e.find("--merge_shards 2"), std::string::npos) << e;
  const Manifest s = read_shard_manifest(sp);
  const SceneRange r = shard_range(40, 1, 2);
  EXPECT_EQ(s.shard.index, 1);
  EXPECT_EQ(s.shard.count, 2);
  EXPECT_EQ(s.shard.first_scene, r.first);
  EXPECT_EQ(s.shard.scenes, r.count);
  EXPECT_EQ(s.num_scenes, 40);
  int64_t next = r.first;
  for (const SplitInfo& info : s.splits) {
    EXPECT_EQ(info.first_scene, next) << info.name;
    next += info.scenes;
    EXPECT_EQ(load_split(sp, s, info.name).scenes, info.scenes) << info.name;
  }
  EXPECT_EQ(next, r.first + r.count);
  // a dataset's manifest is no shard's, and a shard's holds no parts
  nlohmann::json j = s.to_json();
  j["format"] = "npe-dataset";
  e = error_of([&] { Manifest::from_json(j, "d.json", true); });
  EXPECT_NE(e.find("expected \"npe-dataset-shard\""), std::string::npos) << e;
  j = s.to_json();
  j["splits"][0]["parts"] = nlohmann::json::array({{{"file", "x.npy"}, {"first_scene", 0}, {"scenes", 1}}});
  e = error_of([&] { Manifest::from_json(j, "s.json", true); });
  EXPECT_NE(e.find("'parts' is not allowed in a shard's manifest"), std::string::npos) << e;
  j = s.to_json();
  j["shard"]["index"] = 2;
  e = error_of([&] { Manifest::from_json(j, "s.json", true); });
  EXPECT_NE(e.find("shard 2 of 2"), std::string::npos) << e;
}

}  // namespace
}  // namespace npe::datagen
