// npe-datagen --engine gpu (gpu/src/generate_gpu.cpp): format, reproducibility, obstacles, and
// CUDA equal to the CPU reference byte for byte.
#include <gtest/gtest.h>

#include <cstring>

#include "npe/datagen/dataset.h"
#include "npe/core/io.h"
#include "npe/datagen/engine_world.h"
#include "test_util.h"

namespace npe::datagen {
using namespace npe::gpu;  // the engine the tested functions drive
namespace {

datagen::DatagenConfig config(const test::TempDir& dir, const std::string& name, uint64_t seed) {
  datagen::DatagenConfig c;
  c.num_scenes = 40;
  c.world.timesteps = 12;
  c.world.variable_mass = true;
  c.seed = seed;
  c.out_prefix = dir / (name + "/" + name);
  c.progress = false;
  c.threads = 2;
  return c;
}

TEST(EngineWorld, SpecFromWorldDescribesTheDatasetWorld) {
  WorldDef w;
  const WorldSpec s = spec_from_world(w, 3);
  EXPECT_EQ(s.num_bodies(), 12);
  EXPECT_EQ(s.substeps, 64);  // ceil(0.1 * 200 * 10 / pi), gpu::choose_contact
  EXPECT_DOUBLE_EQ(s.contact_omega, 200.0);
  EXPECT_DOUBLE_EQ(s.contact_ramp, 0.15);  // a quarter of 2 * 60 px/s / 200 /s
  EXPECT_EQ(s.radius[5], 60.0);
  EXPECT_EQ(s.resolved_broad_phase(), BroadPhase::kAllPairs);
  gpu::validate(s);
}

// The engine's settings are resolved in one place: set ones kept, the rest chosen from the world,
// Box2D's settings ignored; resolving resolved settings changes nothing.
TEST(EngineWorld, ResolveEngineKeepsWhatIsSetAndIsIdempotent) {
  WorldDef w;
  w.box2d.substeps = 7;  // not the engine's
  EngineSettings e = resolve_engine(w);
  EXPECT_EQ(e.substeps, 64);
  EXPECT_DOUBLE_EQ(e.contact_omega, 200.0);
  EXPECT_DOUBLE_EQ(e.contact_ramp, 0.15);
  w.engine.substeps = 100;
  w.engine.contact_omega = 400.0;
  e = resolve_engine(w);
  EXPECT_EQ(e.substeps, 100);
  EXPECT_DOUBLE_EQ(e.contact_omega, 400.0);
  EXPECT_DOUBLE_EQ(e.contact_ramp, 0.075);  // chosen for the omega in use
  w.engine.contact_ramp = 0.0;              // the linear law is a setting, not "choose"
  EXPECT_DOUBLE_EQ(resolve_engine(w).contact_ramp, 0.0);
  w.engine = {};
  w.engine = resolve_engine(w);
  const EngineSettings again = resolve_engine(w);
  EXPECT_EQ(again.substeps, w.engine.substeps);
  EXPECT_EQ(again.contact_omega, w.engine.contact_omega);
  EXPECT_EQ(again.contact_ramp, w.engine.contact_ramp);
}

TEST(GenerateGpu, WritesTheDatasetFormatWithTheEngineRecorded) {
  test::TempDir dir;
  auto c = config(dir, "a", test::fresh_seed());
  c.world.obstacles = datagen::parse_obstacles("capsule:200,300,400,300,20");
  const auto s = datagen::generate_dataset_gpu(c, false, 7);  // chunks of 7 scenes straddle the splits
  EXPECT_EQ(s.files.size(), 4u);
  const auto m = datagen::read_manifest(c.out_prefix);
  EXPECT_EQ(m.engine, "npe-gpu");
  EXPECT_EQ(m.world.engine.substeps, 64);  // resolved once, recorded
  EXPECT_DOUBLE_EQ(m.world.engine.contact_omega, 200.0);
  EXPECT_DOUBLE_EQ(m.world.engine.contact_ramp, 0.15);
  EXPECT_EQ(m.world.box2d.substeps, 0);  // Box2D's settings are not the engine's
  ASSERT_EQ(m.world.obstacles.size(), 1u);
  EXPECT_EQ(m.world.obstacles[0].radius, 20.0);
  const auto tr = datagen::load_split(c.out_prefix, m, "train");
  EXPECT_EQ(tr.scenes, m.split("train").scenes);
  EXPECT_LT(s.max_energy_drift, 0.02);
  // frame 0 is the sampled initial state, normalised; no ball starts on the obstacle
  const auto init = datagen::sample_scene(c.world, c.seed, 0,
                                          [&](double x, double y) { return clear_of_obstacles(c.world, x, y); });
  EXPECT_FLOAT_EQ(tr.frame(0, 0)[0], static_cast<float>(init[0].x) * static_cast<float>(1.0 / 800));
  for (int64_t sc = 0; sc < tr.scenes; ++sc)
    for (int i = 0; i < 4; ++i) {
      const float* b = tr.frame(sc, 0) + i * 5;
      const double x = b[0] * 800.0, y = b[1] * 800.0;
      EXPECT_FALSE(x > 200 && x < 400 && std::abs(y - 300) < 80) << "ball on the capsule";
    }
}

TEST(GenerateGpu, SameSeedSameBytesWhateverTheChunkAndThreads) {
  test::TempDir dir;
  const uint64_t seed = test::fresh_seed();
  auto a = config(dir, "a", seed), b = config(dir, "b", seed);
  b.threads = 1;
  datagen::generate_dataset_gpu(a, false, 5);
  datagen::generate_dataset_gpu(b, false, 40);
  for (const char* split : {"train", "val", "test"})
    EXPECT_EQ(read_file(datagen::split_path(a.out_prefix, split)), read_file(datagen::split_path(b.out_prefix, split)))
        << split;
}

TEST(GenerateGpu, CudaWritesTheSameBytesAsTheCpuReference) {
  std::string why;
  if (!cuda_available(&why)) GTEST_SKIP() << why;
  test::TempDir dir;
  const uint64_t seed = test::fresh_seed();
  auto a = config(dir, "a", seed), b = config(dir, "b", seed);
  a.num_scenes = b.num_scenes = 3000;
  datagen::generate_dataset_gpu(a, false, 0);
  datagen::generate_dataset_gpu(b, true, 512);  // several chunks through the pipelined CUDA path
  for (const char* split : {"train", "val", "test"})
    EXPECT_EQ(read_file(datagen::split_path(a.out_prefix, split)), read_file(datagen::split_path(b.out_prefix, split)))
        << split;
  // the manifests differ only in the file names (a_*, b_*)
  auto manifest = [](const std::string& prefix) {
    auto j = datagen::read_manifest(prefix).to_json();
    for (auto& split : j["splits"]) split.erase("file");
    return j.dump();
  };
  EXPECT_EQ(manifest(a.out_prefix), manifest(b.out_prefix));
}

// --shard k/N through the engine's path: the merged shards load as the single run's arrays, byte
// for byte, on the CPU reference and (where present) on CUDA, with chunks that straddle the
// shards' and the splits' ends.
TEST(GenerateGpu, ShardsMergedAreASingleRunByteForByte) {
  std::string why;
  const bool cuda = cuda_available(&why);
  test::TempDir dir;
  const uint64_t seed = test::fresh_seed();
  const int64_t num_shards = 2 + static_cast<int64_t>(seed % 5);  // [2, 6]
  SCOPED_TRACE(::testing::Message() << num_shards << " shards");
  auto one = config(dir, "one", seed);
  datagen::generate_dataset_gpu(one, false, 0);
  const auto single = datagen::read_manifest(one.out_prefix);
  for (const bool use_cuda : {false, true}) {
    if (use_cuda && !cuda) continue;
    const std::string name = use_cuda ? "cuda" : "cpu";
    auto c = config(dir, name, seed);
    c.num_shards = num_shards;
    for (c.shard = 0; c.shard < num_shards; ++c.shard) datagen::generate_dataset_gpu(c, use_cuda, 3);
    const auto merged = datagen::merge_shards(c.out_prefix, num_shards);
    EXPECT_EQ(merged.engine, "npe-gpu");
    for (const char* split : {"train", "val", "test"}) {
      const auto a = datagen::load_split(one.out_prefix, single, split),
                 b = datagen::load_split(c.out_prefix, merged, split);
      ASSERT_EQ(a.data.size(), b.data.size()) << name << " " << split;
      EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)), 0) << name << " " << split;
    }
  }
}

// A walls world has one layout per scene; the engine takes one per dataset: refused, naming walls.
TEST(GenerateGpu, WallsWorldsAreRefused) {
  test::TempDir dir;
  auto c = config(dir, "w", 1);
  c.world.walls = datagen::parse_wall_shapes("O");
  try {
    datagen::generate_dataset_gpu(c, false, 7);
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "walls");
    EXPECT_NE(std::string(e.what()).find("Box2D"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace npe::datagen
