// Tests of npe/control/train.h: evaluation with a hand-written policy, resume equal to an
// uninterrupted run, the run directory's guards, CEM's accounting, the IQM and its interval.
#include "npe/control/train.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "npe/core/io.h"
#include "test_util.h"

namespace npe::control {
namespace {

namespace fs = std::filesystem;
using torch::Tensor;

// Pushing straight at the goal, braking near it, solves every reach layout.
TEST(Train, EvaluateScoresAHandWrittenPolicy) {
  const TaskSpec task = reach_task();
  const Layouts l = held_out_layouts(task, 100, test::fresh_seed(), torch::kCPU, torch::kFloat32);
  const auto e = evaluate(task, l, [](const Tensor& obs) {
    // obs: disc x, y, vx, vy (normalised), goal x, y, time
    const Tensor to_goal = obs.slice(1, 4, 6) - obs.slice(1, 0, 2);
    return torch::clamp(8 * to_goal - 2 * obs.slice(1, 2, 4), -1, 1);
  });
  EXPECT_EQ(e.success, 1.0);
  const auto idle = evaluate(task, l, [](const Tensor& obs) { return torch::zeros({obs.size(0), 2}); });
  EXPECT_LT(idle.success, 0.2);
  EXPECT_LT(idle.mean_return, e.mean_return);
}

// Metrics without the wall-clock column.
std::string metrics_without_seconds(const std::string& path) {
  std::string out, line;
  std::ifstream in(path);
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    cells.erase(cells.begin() + 3);  // seconds
    for (const auto& c : cells) out += c + ",";
    out += "\n";
  }
  return out;
}

TEST(Train, ResumeEqualsAnUninterruptedRun) {
  for (Algo algo : {Algo::kSac, Algo::kApg, Algo::kHybrid}) {
    test::TempDir dir;
    TrainConfig c;
    c.task = reach_task();
    c.task.episode_frames = 20;  // episodes end inside the runs
    c.algo = algo;
    c.seed = test::fresh_seed() % 1000;
    c.num_envs = 16;
    c.eval_every_frames = 1024;
    c.eval_layouts = 16;
    c.agent.hidden = 32;
    c.agent.batch_size = 64;
    c.agent.horizon = 8;
    c.max_frames = 4096;
    c.out_dir = dir / "whole";
    train(c);
    c.out_dir = dir / "parts";
    c.max_frames = 2048;
    train(c);
    c.max_frames = 4096;
    c.resume = true;
    train(c);
    EXPECT_EQ(metrics_without_seconds(dir / "whole/metrics.csv"), metrics_without_seconds(dir / "parts/metrics.csv"))
        << algo_name(algo);
  }
}

TEST(Train, RunDirectoriesAreGuarded) {
  test::TempDir dir;
  TrainConfig c;
  c.task = reach_task();
  c.num_envs = 4;
  c.max_frames = 64;
  c.eval_layouts = 4;
  c.agent.hidden = 8;
  c.agent.batch_size = 8;
  c.out_dir = dir / "run";
  train(c);
  // no silent overwrite of an earlier run
  try {
    train(c);
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "out_dir");
    EXPECT_NE(std::string(e.what()).find("holds an earlier run"), std::string::npos);
  }
  // a resume with other settings is refused
  c.resume = true;
  c.seed = 9;
  try {
    train(c);
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to another run"), std::string::npos);
  }
  // bad settings are named
  c = TrainConfig{};
  c.num_envs = 0;
  EXPECT_THROW(train(c), FieldError);
  c = TrainConfig{};
  c.task = herding_task();
  c.algo = Algo::kCem;
  try {
    train(c);
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "algo");
  }
}

TEST(Train, CemCountsEveryFrame) {
  TaskSpec task = billiards_task();
  task.min_balls = task.max_balls = 3;
  task.episode_frames = 60;
  AgentConfig c;
  c.cem_population = 16;
  c.cem_elites = 4;
  const Layouts l = held_out_layouts(task, 8, test::fresh_seed(), torch::kCPU, torch::kFloat32);
  const auto p = cem_plan(task, l, c, 4, 1);
  ASSERT_EQ(p.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(p[i].frames, (i + 1) * 8 * (16 + 1) * int64_t{60});
    EXPECT_GE(p[i].success, 0.0);
    EXPECT_LE(p[i].success, 1.0);
    EXPECT_TRUE(std::isfinite(p[i].mean_return));
  }
  // (whether the planned shot improves is statistical with 8 layouts: 1 seed in 200 did not)
}

// The remedy's zeroth-order shots are simulated frames too: each iteration of APG with zo_mix
// costs the shot and its 2 x zo_samples perturbed shots, every frame counted.
TEST(Train, ZerothOrderShotsCountTowardsTheBudget) {
  test::TempDir dir;
  TrainConfig c;
  c.task = billiards_task();
  c.task.min_balls = c.task.max_balls = 2;
  c.task.episode_frames = 20;
  c.algo = Algo::kApg;
  c.num_envs = 4;
  c.agent.zo_mix = 0.5;
  c.agent.zo_samples = 2;
  c.agent.hidden = 8;
  c.eval_layouts = 4;
  c.max_frames = 3 * 4 * 20 * (1 + 2 * 2);  // three iterations
  c.eval_every_frames = c.max_frames;
  c.out_dir = dir / "run";
  const auto s = train(c);
  EXPECT_EQ(s.frames, c.max_frames);
  c.agent.zo_mix = 0;  // without the remedy, one shot per iteration
  c.out_dir = dir / "plain";
  EXPECT_EQ(train(c).frames, c.max_frames);
}

TEST(Train, InterquartileMeanAndInterval) {
  const Interval a = iqm_with_ci({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(a.value, 2.5);
  EXPECT_LE(a.low, a.value);
  EXPECT_GE(a.high, a.value);
  const Interval b = iqm_with_ci({7, 7, 7, 7, 7});
  EXPECT_EQ(b.low, 7);
  EXPECT_EQ(b.high, 7);
  EXPECT_DOUBLE_EQ(iqm_with_ci({0, 10, 10, 10, 1000}).value, 10);  // the outliers are cut
  EXPECT_TRUE(std::isinf(iqm_with_ci({1, INFINITY, INFINITY, INFINITY}).value));
}

}  // namespace
}  // namespace npe::control
