// The experiments table's claim checks and its refusals (rollout/src/experiments.cpp); the table
// itself is run end to end by Cli.GeneralisationAndBaselinesThroughTheTools.
#include "npe/rollout/experiments.h"

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe::rollout {
namespace {

StepMetrics metrics(std::vector<double> cosine, std::vector<double> rel) {
  StepMetrics m;
  m.cosine = std::move(cosine);
  m.rel_mag_error = std::move(rel);
  m.pos_error_px.assign(m.cosine.size(), 0.0);
  return m;
}

TEST(Experiments, StepsNotBetterListsTiesAndLosses) {
  const auto a = metrics({0.9, 0.8, 0.7, 0.5}, {0.1, 0.2, 0.3, 0.4});
  const auto b = metrics({0.8, 0.8, 0.75, 0.4}, {0.2, 0.1, 0.3, 0.5});
  const NotBetter n = steps_not_better(a, b);
  EXPECT_EQ(n.cosine, (std::vector<int>{2, 3}));  // a tie is not better
  EXPECT_EQ(n.rel, (std::vector<int>{2, 3}));
  EXPECT_TRUE(steps_not_better(a, a).cosine.size() == 4);
  // NaN (no ball fast enough at a step) is never better
  const auto c = metrics({std::nan("")}, {std::nan("")});
  EXPECT_EQ(steps_not_better(c, metrics({0.1}, {0.9})).cosine, (std::vector<int>{1}));
}

TEST(Experiments, VerdictListsTheFirstFourSteps) {
  EXPECT_EQ(claim_verdict({}), "yes");
  EXPECT_EQ(claim_verdict({7}), "**no** at 1 step: 7");
  EXPECT_EQ(claim_verdict({1, 2, 3, 4}), "**no** at 4 steps: 1 2 3 4");
  EXPECT_EQ(claim_verdict({1, 2, 3, 4, 9}), "**no** at 5 steps: 1 2 3 4 ...");
}

TEST(Experiments, RefusesBadStepsAndWorldsWithoutCheckpoints) {
  test::TempDir dir;
  ExperimentOptions o;
  o.rollout_steps = 20;
  o.step_b = 30;
  try {
    experiments_table({}, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("steps: expected two steps"), std::string::npos) << e.what();
  }
  o.step_b = 20;
  o.long_steps = {10, 21};
  try {
    experiments_table({}, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("long_steps: expected steps in 1..rollout_steps (20), found 21"),
              std::string::npos)
        << e.what();
  }
  o.long_steps = {};
  o.num_scenes = 0;
  EXPECT_THROW(experiments_table({}, o), Error);
  o.num_scenes = 5;
  // a world's dataset is read first: a missing manifest names it
  EXPECT_THROW(experiments_table({{"x", dir / "ck", dir / "missing"}}, o), Error);
}

}  // namespace
}  // namespace npe::rollout
