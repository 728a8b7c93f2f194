// Tests of compare (npe/control/train.h): the runs, the table and its reuse of finished runs.
#include <filesystem>

#include <gtest/gtest.h>

#include "npe/control/train.h"
#include "npe/core/io.h"
#include "test_util.h"

namespace npe::control {
namespace {

namespace fs = std::filesystem;

TEST(Compare, WritesTheTableAndReusesFinishedRuns) {
  test::TempDir dir;
  CompareConfig cc;
  cc.base.task = reach_task();
  cc.base.num_envs = 16;
  cc.base.max_frames = 2000;
  cc.base.eval_every_frames = 1000;
  cc.base.eval_layouts = 16;
  cc.base.agent.hidden = 16;
  cc.base.agent.batch_size = 32;
  cc.algos = {Algo::kApg, Algo::kSac};
  cc.seeds = {0, 1};
  cc.out_dir = dir / "cmp";
  compare(cc);
  for (const char* f : {"compare.md", "compare.json", "apg/seed0/summary.json", "sac/seed1/metrics.csv"})
    EXPECT_TRUE(fs::exists(dir / ("cmp/" + std::string(f)))) << f;
  const std::string md = read_file(dir / "cmp/compare.md");
  EXPECT_NE(md.find("| apg | "), std::string::npos);
  EXPECT_NE(md.find("| sac | "), std::string::npos);
  EXPECT_NE(md.find("IQM"), std::string::npos);
  // a second comparison reads the finished runs instead of training again
  const auto before = fs::last_write_time(dir / "cmp/apg/seed0/summary.json");
  compare(cc);
  EXPECT_EQ(fs::last_write_time(dir / "cmp/apg/seed0/summary.json"), before);
}

}  // namespace
}  // namespace npe::control
