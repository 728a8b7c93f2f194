// Tests of npe/control/env.h: steps against the engine's own rollouts, rewards and success on
// hand-made layouts, autoreset, layouts, the episode's gradient against central differences.
#include "npe/control/env.h"

#include <cmath>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "npe/gpu/engine.h"
#include "test_util.h"

namespace npe::control {
namespace {

using torch::Tensor;
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// Layouts of `task` with the given positions [E, B, 2] (px), all bodies in play, and goals [E, 2].
Layouts hand_made(const TaskSpec& task, const std::vector<std::vector<std::array<double, 2>>>& pos,
                  const std::vector<std::array<double, 2>>& goal) {
  const int64_t E = static_cast<int64_t>(pos.size()), B = task_bodies(task);
  Layouts l;
  l.position = torch::zeros({E, B, 2}, kF64);
  l.active = torch::zeros({E, B}, torch::kBool);
  l.goal = torch::zeros({E, 2}, kF64);
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t b = 0; b < B; ++b) {
      const bool in_play = b < static_cast<int64_t>(pos[e].size());
      const auto spot = parking_spot(task, static_cast<int>(b));
      l.position[e][b][0] = in_play ? pos[e][b][0] : spot.first;
      l.position[e][b][1] = in_play ? pos[e][b][1] : spot.second;
      l.active[e][b] = in_play;
    }
    l.goal[e][0] = goal[e][0];
    l.goal[e][1] = goal[e][1];
  }
  return l;
}

// The engine's CPU reference, frame by frame with the task's drag, from `start` [E, B, 4].
std::vector<Tensor> engine_frames(const TaskSpec& task, const Tensor& start, int frames) {
  const int64_t E = start.size(0), B = start.size(1);
  const gpu::WorldSpec spec = task_world(task, E);
  gpu::WorldState<double> s(E * B);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t i = b * E + e;
      s.x[i] = start[e][b][0].item<double>(), s.y[i] = start[e][b][1].item<double>();
      s.vx[i] = start[e][b][2].item<double>(), s.vy[i] = start[e][b][3].item<double>();
    }
  const double decay = std::exp(-task.drag * task.frame_dt);
  std::vector<Tensor> out;
  for (int f = 0; f < frames; ++f) {
    gpu::advance_cpu(spec, s, 1, gpu::Recorder<double>{}, 0, 1);
    Tensor t = torch::zeros({E, B, 4}, kF64);
    for (int64_t i = 0; i < E * B; ++i) {
      s.vx[i] *= decay;
      s.vy[i] *= decay;
      const int64_t b = i / E, e = i % E;
      t[e][b][0] = s.x[i], t[e][b][1] = s.y[i], t[e][b][2] = s.vx[i], t[e][b][3] = s.vy[i];
    }
    out.push_back(t);
  }
  return out;
}

TEST(Env, BilliardsShotEqualsTheEnginesRolloutBitForBit) {
  TaskSpec task = billiards_task();
  task.episode_frames = 40;
  VecEnv env(task, 6, torch::kCPU, test::fresh_seed(), torch::kFloat64);
  torch::manual_seed(static_cast<int64_t>(test::fresh_seed() % 1000000));
  const Tensor action = torch::rand({6, 2}, kF64) * 2 - 1;
  const Tensor traj = env.shot_trajectory(action);  // frame 0: the layout with the cue's velocity
  ASSERT_EQ(traj.sizes(), c10::IntArrayRef({6, 41, task_bodies(task), 4}));
  const auto ref = engine_frames(task, traj.select(1, 0), task.episode_frames);
  for (int f = 0; f < task.episode_frames; ++f)
    ASSERT_TRUE(torch::equal(traj.select(1, f + 1), ref[f])) << "frame " << f + 1;
  // the idle balls rest in the lane, untouched
  const Tensor idle = ~env.layouts().active;
  EXPECT_TRUE(torch::equal(traj.select(1, task.episode_frames).slice(2, 0, 2).masked_select(idle.unsqueeze(2)),
                           traj.select(1, 0).slice(2, 0, 2).masked_select(idle.unsqueeze(2))));
  // and step() reaches the same final state
  const Tensor expected = env.observe(traj.select(1, task.episode_frames));
  const StepResult r = env.step(action);
  EXPECT_TRUE(torch::equal(r.final_obs, expected));
  EXPECT_EQ(env.frames(), 6 * task.episode_frames);
}

TEST(Env, HerdingFrameEqualsTheEngineWithoutForce) {
  const TaskSpec task = herding_task();
  VecEnv env(task, 5, torch::kCPU, test::fresh_seed(), torch::kFloat64);
  const Tensor start = env.state().clone();
  env.step(torch::zeros({5, 2}, kF64));
  EXPECT_TRUE(torch::equal(env.state(), engine_frames(task, start, 1)[0]));
  EXPECT_TRUE(torch::equal(env.step_in_episode(), torch::ones({5}, torch::kInt64)));
}

TEST(Env, BilliardsRewardAndSuccessOnHandMadeLayouts) {
  TaskSpec task = billiards_task();
  task.min_balls = task.max_balls = 2;
  task.episode_frames = 5;
  VecEnv env(task, 3, torch::kCPU, 1, torch::kFloat64);
  // 0: the target rests inside the goal, the cue far away: success
  // 1: the cue rests inside the goal: no success, the cue's penalty
  // 2: the target rests just outside the goal
  env.reset(hand_made(task, {{{50, 50}, {300, 100}}, {{300, 100}, {50, 150}}, {{50, 50}, {300, 100}}},
                      {{{310, 100}}, {{300, 100}}, {{300, 100 + task.goal_radius + 1}}}));
  const StepResult r = env.step(torch::zeros({3, 2}, kF64));
  const double diag = std::hypot(task.width, task.height);
  EXPECT_TRUE(r.success[0].item<bool>());
  EXPECT_FALSE(r.success[1].item<bool>());
  EXPECT_FALSE(r.success[2].item<bool>());
  EXPECT_NEAR(r.reward[0].item<double>(), 1 - 10 / diag, 1e-12);
  const double d_target = std::hypot(300 - 50, 100 - 150);
  EXPECT_NEAR(r.reward[1].item<double>(), -d_target / diag - 0.5, 1e-12);
  EXPECT_NEAR(r.reward[2].item<double>(), -(task.goal_radius + 1) / diag, 1e-12);
  EXPECT_TRUE(r.terminated.all().item<bool>());
  EXPECT_FALSE(r.truncated.any().item<bool>());
}

TEST(Env, HerdingSucceedsInThePenAndTruncatesAtTheLimit) {
  TaskSpec task = herding_task();
  task.min_balls = 1;
  task.max_balls = 2;
  task.episode_frames = 3;
  VecEnv env(task, 2, torch::kCPU, 1, torch::kFloat64);
  // 0: both balls already in the pen; 1: one ball far out
  env.reset(hand_made(task, {{{250, 250}, {40, 40}, {70, 40}}, {{250, 250}, {200, 200}}}, {{{60, 60}}, {{60, 60}}}));
  StepResult r = env.step(torch::zeros({2, 2}, kF64));
  EXPECT_TRUE(r.success[0].item<bool>());
  EXPECT_TRUE(r.terminated[0].item<bool>());
  EXPECT_FALSE(r.terminated[1].item<bool>());
  EXPECT_GT(r.reward[0].item<double>(), task.success_bonus - 1);
  EXPECT_LT(r.reward[1].item<double>(), 0);
  for (int s = 1; s < task.episode_frames; ++s) r = env.step(torch::zeros({2, 2}, kF64));
  EXPECT_TRUE(r.truncated[1].item<bool>());
  EXPECT_FALSE(r.success[1].item<bool>());
  EXPECT_EQ(env.step_in_episode()[1].item<int64_t>(), 0);  // reset in the same step
}

TEST(Env, AutoresetGivesTheNextEpisodesFirstObservation) {
  const TaskSpec task = billiards_task();
  VecEnv env(task, 4, torch::kCPU, test::fresh_seed());
  const Tensor before = env.observe(env.state());
  const StepResult r = env.step(torch::zeros({4, 2}));
  EXPECT_TRUE(torch::equal(r.obs, env.observe(env.state())));
  EXPECT_FALSE(torch::equal(r.obs, before));  // new layouts
  EXPECT_FALSE(torch::equal(r.final_obs, r.obs));
}

TEST(Env, LayoutsDoNotOverlapAndRepeatForASeed) {
  for (const TaskSpec& task : {billiards_task(), herding_task(), reach_task()}) {
    const uint64_t seed = test::fresh_seed();
    const Layouts a = sample_layouts(task, 200, at::detail::createCPUGenerator(seed), torch::kFloat64);
    const Layouts b = sample_layouts(task, 200, at::detail::createCPUGenerator(seed), torch::kFloat64);
    EXPECT_TRUE(torch::equal(a.position, b.position) && torch::equal(a.active, b.active));
    const Tensor p = a.position;
    const Tensor d = (p.unsqueeze(2) - p.unsqueeze(1)).norm(2, 3) + 1e9 * torch::eye(p.size(1), kF64);
    EXPECT_GT(d.min().item<double>(), 2 * task.radius) << task_kind_name(task.kind);
    // balls in play inside the playing area; the billiards goal clear of every ball
    const Tensor in = a.active.unsqueeze(2).expand_as(p);
    EXPECT_GE(p.masked_select(in).min().item<double>(), task.radius);
    if (task.kind == TaskKind::kBilliards) {
      EXPECT_GT((p - a.goal.unsqueeze(1)).norm(2, 2).min().item<double>(), task.goal_radius + task.radius);
    }
    if (task.kind == TaskKind::kHerding) {  // nothing starts in the pen
      EXPECT_FALSE(((p.select(2, 0) < task.pen_size) & (p.select(2, 1) < task.pen_size)).any().item<bool>());
    }
    // every ball count of the task's range is drawn
    const Tensor count = a.active.sum(1);
    EXPECT_EQ(count.min().item<int64_t>(), task.min_balls + (task.kind == TaskKind::kBilliards ? 0 : 1));
    EXPECT_EQ(count.max().item<int64_t>(), task.max_balls + (task.kind == TaskKind::kBilliards ? 0 : 1));
  }
}

// The analytic policy gradient's building block: the billiards reward's derivative with respect
// to the shot, back-propagated through the simulator over the whole episode, against central
// differences (float64, a shot that hits the target ball).
TEST(Env, ShotRewardGradientMatchesCentralDifferences) {
  TaskSpec task = billiards_task();
  task.min_balls = task.max_balls = 3;
  task.episode_frames = 60;
  VecEnv env(task, 1, torch::kCPU, 1, torch::kFloat64);
  const Layouts l = hand_made(task, {{{100, 100}, {200, 110}, {300, 40}}}, {{{330, 150}}});
  auto reward = [&](const Tensor& a) {
    env.reset(l);
    return env.step(a).reward;
  };
  const Tensor a = torch::tensor({{0.8, 0.05}}, kF64).requires_grad_(true);
  reward(a).sum().backward();
  const Tensor g = a.grad();
  torch::NoGradGuard ng;
  for (int k = 0; k < 2; ++k) {
    // the contact's onset ramp is a fraction of a px: central differences converge only for tiny
    // steps (1e-6 is 0.1% off, 1e-8 agrees to 1e-6)
    const double h = 1e-8;
    Tensor ap = a.detach().clone(), am = a.detach().clone();
    ap[0][k] += h;
    am[0][k] -= h;
    const double fd = (reward(ap).item<double>() - reward(am).item<double>()) / (2 * h);
    EXPECT_NEAR(g[0][k].item<double>(), fd, 2e-5 * std::max(1.0, std::abs(fd))) << "component " << k;
  }
  EXPECT_GT(g.abs().sum().item<double>(), 1e-3);  // the shot moves the target: a gradient exists
}

TEST(Env, BadActionsAndSettingsAreNamed) {
  VecEnv env(reach_task(), 3, torch::kCPU, 1);
  auto message = [&](const Tensor& a) {
    try {
      env.step(a);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(torch::zeros({2, 2})).find("action: expected a tensor [3, 2], found [2, 2]"), std::string::npos);
  EXPECT_NE(message(torch::zeros({3, 2}, kF64)).find("action: expected Float on cpu, found Double on cpu"),
            std::string::npos);
  EXPECT_THROW(VecEnv(reach_task(), 0, torch::kCPU, 1), FieldError);
  EXPECT_THROW(VecEnv(reach_task(), 2, torch::kCPU, 1, torch::kInt32), FieldError);
}

}  // namespace
}  // namespace npe::control
