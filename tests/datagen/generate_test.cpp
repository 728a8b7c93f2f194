#include "npe/datagen/generate.h"

#include <gtest/gtest.h>

#include "npe/datagen/dataset.h"
#include "npe/datagen/io.h"
#include "test_util.h"

namespace npe::datagen {
namespace {

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

}  // namespace
}  // namespace npe::datagen
