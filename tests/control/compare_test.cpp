// Tests of compare (npe/control/train.h): the runs, the table and its reuse of finished runs.
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "npe/control/train.h"
#include "npe/core/error.h"
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

// The crossing of the comparison's target is read from each run's curve, whatever target the run
// was trained with: runs written by hand with known curves.
TEST(Compare, ReadsItsTargetFromTheCurves) {
  test::TempDir dir;
  CompareConfig cc;
  cc.base.task = reach_task();
  cc.base.max_frames = 300;
  cc.algos = {Algo::kApg, Algo::kSac};
  cc.seeds = {0, 1, 2, 3};
  cc.out_dir = dir / "cmp";
  // success of seed s at frames 0, 100, 200, 300: apg climbs (later for later seeds), sac stays low
  auto success = [](Algo algo, uint64_t s, int i) {
    return algo == Algo::kApg ? std::min(1.0, 0.1 * i * (4 - s)) : 0.05 * i;
  };
  for (const Algo algo : cc.algos)
    for (const uint64_t seed : cc.seeds) {
      TrainConfig c = cc.base;
      c.algo = algo;
      c.seed = seed;
      nlohmann::json j = run_identity(c);
      j["max_frames"] = c.max_frames;
      j["target_success"] = 0.8;
      j["frames_to_target"] = -1;  // stale: the comparison must not read it
      j["seconds_to_target"] = -1;
      j["frames"] = 300;
      j["seconds"] = 3.0;
      j["final_success"] = success(algo, seed, 3);
      j["best_success"] = success(algo, seed, 3);
      for (int i = 0; i < 4; ++i)
        j["curve"].push_back({{"evaluation", i},
                              {"frames", 100 * i},
                              {"env_steps", i},
                              {"seconds", 1.0 * i},
                              {"success", success(algo, seed, i)},
                              {"eval_return", 0.0}});
      const fs::path run = fs::path(dir / "cmp") / algo_name(algo) / fmt::format("seed{}", seed);
      fs::create_directories(run);
      write_file_atomic(run / "summary.json", j.dump());
    }
  auto table = [&](double target) {
    cc.base.target_success = target;
    compare(cc);
    return nlohmann::json::parse(read_file(fs::path(dir / "cmp/compare.json")))["algorithms"];
  };
  // at 0.55: apg seed 0 at 200 frames (0.8), seed 1 at 200 (0.6), seed 2 at 300 (0.6), seed 3 never (0.3)
  auto j = table(0.55);
  EXPECT_EQ(j["apg"]["reached"], 3);
  EXPECT_DOUBLE_EQ(j["apg"]["frames_to_target_iqm"].get<double>(), 250);  // the middle two of 200, 200, 300, inf
  EXPECT_DOUBLE_EQ(j["apg"]["seconds_to_target_iqm"].get<double>(), 2.5);
  EXPECT_EQ(j["sac"]["reached"], 0);
  EXPECT_TRUE(j["sac"]["frames_to_target_iqm"].is_null());
  // at 0.12 every run gets there: apg at 100 frames but seed 3 (0.1 at 100, 0.2 at 200); sac at 300 (0.15)
  j = table(0.12);
  EXPECT_DOUBLE_EQ(j["apg"]["frames_to_target_iqm"].get<double>(), 100);
  EXPECT_EQ(j["apg"]["reached"], 4);
  EXPECT_EQ(j["sac"]["reached"], 4);
  EXPECT_DOUBLE_EQ(j["sac"]["frames_to_target_iqm"].get<double>(), 300);
  EXPECT_THROW(table(0), FieldError);
  // runs of other settings or another budget are refused, naming what differs
  auto refusal = [&](CompareConfig other) {
    try {
      compare(other);
    } catch (const FieldError& e) {
      return e.field() + ":" + e.what();
    }
    return std::string("no error");
  };
  CompareConfig wider = cc;
  wider.base.target_success = 0.5;
  wider.base.agent.hidden = 128;
  EXPECT_NE(refusal(wider).find("out_dir:"), std::string::npos);
  EXPECT_NE(refusal(wider).find("whose 'agent' differs"), std::string::npos) << refusal(wider);
  CompareConfig longer = cc;
  longer.base.target_success = 0.5;
  longer.base.max_frames = 600;
  EXPECT_NE(refusal(longer).find("another frame budget"), std::string::npos) << refusal(longer);
}

}  // namespace
}  // namespace npe::control
