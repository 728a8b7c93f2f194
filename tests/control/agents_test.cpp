// Tests of npe/control/agents.h: each learning agent solves the reach task within a fixed budget;
// the policy's log-probability; checkpoints round-trip.
#include "npe/control/agents.h"

#include <cmath>

#include <gtest/gtest.h>

#include "npe/control/train.h"
#include "npe/core/error.h"
#include "test_util.h"

namespace npe::control {
namespace {

// One intra-op thread for the whole test binary: its tensors are tiny, and ctest runs two test
// processes at once on CI's two cores, where libtorch's spinning OpenMP threads of both slowed
// these runs twentyfold.
const bool kOneThread = [] {
  torch::set_num_threads(1);
  return true;
}();

TrainConfig reach_config(Algo algo, const std::string& dir, int64_t frames) {
  TrainConfig c;
  c.task = reach_task();
  c.algo = algo;
  c.seed = test::fresh_seed() % 1000;
  c.num_envs = 64;
  c.max_frames = frames;
  c.eval_every_frames = frames;
  c.eval_layouts = 128;
  c.out_dir = dir;
  c.agent.hidden = 64;
  c.agent.batch_size = 256;
  return c;
}

// The smallest control problem (a disc pushed to a goal): every learning algorithm must solve it
// (90% of 128 held-out layouts) within a budget about 1.5x what it needs (docs/control.md).
TEST(Agents, ApgSolvesReach) {
  test::TempDir dir;
  const auto s = train(reach_config(Algo::kApg, dir / "run", 160000));
  EXPECT_GE(s.final_success, 0.9);
}

TEST(Agents, SacSolvesReach) {
  test::TempDir dir;
  const auto s = train(reach_config(Algo::kSac, dir / "run", 150000));
  EXPECT_GE(s.final_success, 0.9);
}

TEST(Agents, HybridSolvesReach) {
  test::TempDir dir;
  const auto s = train(reach_config(Algo::kHybrid, dir / "run", 120000));
  EXPECT_GE(s.final_success, 0.9);
}

// The squashed Gaussian's log-probability integrates to one over the action square: a Monte
// Carlo estimate of E_uniform[pi(a)] * area.
TEST(Agents, PolicyDensityIntegratesToOne) {
  torch::manual_seed(static_cast<int64_t>(test::fresh_seed() % 100000));
  auto agent = make_agent(Algo::kSac, AgentConfig{}, reach_task(), torch::kCPU, torch::kFloat64);
  const auto obs = torch::randn({1, task_obs_dim(reach_task())}, torch::kFloat64);
  // draws from the policy: their log-probabilities are finite and the actions inside (-1, 1)
  auto [a, logp] = agent->sample(obs.expand({4096, -1}), false);
  EXPECT_TRUE(torch::isfinite(logp).all().item<bool>());
  EXPECT_LT(a.abs().max().item<double>(), 1.0);
  // E_pi[1 / pi(a)] = area of the support = 4 (importance sampling of the uniform density)
  const double area = torch::exp(-logp).mean().item<double>();
  EXPECT_NEAR(area, 4.0, 0.6);
}

TEST(Agents, CheckpointsRoundTrip) {
  test::TempDir dir;
  for (Algo algo : {Algo::kSac, Algo::kApg, Algo::kHybrid}) {
    torch::manual_seed(1);
    auto a = make_agent(algo, AgentConfig{}, reach_task(), torch::kCPU, torch::kFloat32);
    VecEnv env(reach_task(), 8, torch::kCPU, 1);
    a->iterate(env);
    torch::serialize::OutputArchive out;
    a->save(out);
    out.save_to(dir / "a.pt");
    torch::manual_seed(2);
    auto b = make_agent(algo, AgentConfig{}, reach_task(), torch::kCPU, torch::kFloat32);
    torch::serialize::InputArchive in;
    in.load_from(dir / "a.pt");
    b->load(in);
    const auto obs = torch::randn({5, task_obs_dim(reach_task())});
    EXPECT_TRUE(torch::equal(a->act(obs, true), b->act(obs, true))) << algo_name(algo);
  }
}

TEST(Agents, BadSettingsAreNamed) {
  EXPECT_THROW(parse_algo("ppo"), FieldError);
  AgentConfig c;
  c.gamma = 1.5;
  try {
    validate_agent(c);
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "gamma");
    EXPECT_NE(std::string(e.what()).find("found 1.5"), std::string::npos);
  }
  c = AgentConfig{};
  c.cem_elites = 100;
  EXPECT_THROW(validate_agent(c), FieldError);
  EXPECT_THROW(make_agent(Algo::kCem, AgentConfig{}, billiards_task(), torch::kCPU, torch::kFloat32), FieldError);
}

}  // namespace
}  // namespace npe::control
