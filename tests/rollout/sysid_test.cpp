// System identification through the differentiable simulator (gpu/src/sysid.cpp).
#include <cmath>
#include <tuple>

#include <gtest/gtest.h>

#include "npe/datagen/dataset.h"
#include "npe/core/io.h"
#include "npe/datagen/engine_world.h"
#include "npe/rollout/sysid.h"
#include "test_util.h"

namespace npe::rollout {
using namespace npe::gpu;  // the engine the tested functions drive
namespace {

// On data made by the engine itself the simulator is the true model: nearly every ball that
// touches another is classified right and its mass recovered closely, by the gradient iteration
// alone (one start) and with the restarts at each mass choice (the default).
TEST(SysId, RecoversMassesOfTheEnginesOwnData) {
  test::TempDir dir;
  datagen::DatagenConfig c;
  c.num_scenes = 60;
  c.world.timesteps = 31;
  c.world.variable_mass = true;
  c.seed = test::fresh_seed();
  c.out_prefix = dir / "e/e";
  c.progress = false;
  datagen::generate_dataset_gpu(c, false, 0);
  const auto m = datagen::read_manifest(c.out_prefix);
  const auto obs = datagen::load_split(c.out_prefix, m, "train");
  SysIdOptions o;
  o.iterations = 30;
  o.window = 10;
  o.restarts = false;
  const SysIdResult one = identify_masses(m, obs, 20, o);
  o.restarts = true;
  const SysIdResult r = identify_masses(m, obs, 20, o);
  const auto s1 = one.summary();
  const auto s = r.summary();
  for (const auto& [name, x, sx] : {std::tuple{"one start", &one, s1}, std::tuple{"restarts", &r, s}})
    std::printf("sysid on engine data, %s: %ld balls collide, accuracy %.3f, median rel. error %.2e, p90 %.2e; "
                "loss %.3g -> %.3g px^2\n",
                name, static_cast<long>(sx.balls), sx.accuracy, sx.median_rel_error, sx.p90_rel_error, x->loss.front(),
                x->loss_final);
  ASSERT_GE(s.balls, 2);  // 4 to 36 in 20 scenes of 3 s over 550 seeds, 17 on average
  // The restarts begin at the true masses, so they pass even with a broken iteration (the secant
  // step's sign flipped: median error 2e-16, every ball right; from the one start: accuracy 0.42,
  // median 0.8). The gradient iteration is judged from the one start, the geometric mean of the
  // choices (5), by its median error: at most 6e-3 over 250 seeds. Its accuracy is not bounded:
  // the balls it gets wrong end in another basin (the fit is not convex where a different mass
  // changes which balls meet), and with few colliding balls that share is large (2 of 7 in CI,
  // NPE_TEST_SEED=4714987416658326505; 0.84 to 1 over 250 seeds, mean 0.99).
  EXPECT_LT(s1.median_rel_error, 0.02);
  // Every problem's restarts include that start and keep the least loss.
  EXPECT_LE(r.loss_final, one.loss_final * (1 + 1e-9));
  // With the restarts every colliding ball is right but a few, for two reasons seen over 550 seeds:
  // - a near miss that the time-of-impact flag's 0.6 px slack counts as a touch leaves that ball at
  //   its starting estimate (one ball in 1 seed of 50);
  // - a grazing contact changes the pair's paths by less than the replay's error floor (the loss
  //   every problem ends at, about 4e-3 px^2), so neither mass is identifiable: every start ends at
  //   the same wrong pair of masses at the floor's loss (1 seed of 400;
  //   NPE_TEST_SEED=10062749143080015360: masses 1 and 5 came out 11.8 and 0.42).
  const double wrong = (1 - s.accuracy) * s.balls;
  EXPECT_LE(wrong, 2 + s.balls / 10 + 1e-9) << "of " << s.balls << " colliding balls";
  EXPECT_LT(s.median_rel_error, 0.02);
  EXPECT_LT(r.loss_final, 1e-2 * r.loss.front());
  // balls that touch nothing keep the initial estimate: their mass leaves no trace (a few may
  // graze another ball in the simulator below the flag's 1e-4 velocity-change threshold)
  int64_t idle = 0, kept = 0;
  for (int64_t i = 0; i < r.scenes; ++i)
    for (int64_t b = 0; b < r.num_balls; ++b)
      if (!r.collides[i][b]) {
        ++idle;
        kept += std::abs(r.estimate[i][b] - 5.0) < 1e-6;
      }
  EXPECT_GE(kept, idle * 9 / 10) << "of " << idle;
  EXPECT_EQ(r.classify(3.0), 5.0);
  EXPECT_EQ(r.classify(2.0), 1.0);
  EXPECT_EQ(r.classify(1e4), 25.0);

  // its JSON is what npe-eval --sim_masses reads
  const auto path = dir.path / "s.json";
  write_file_atomic(path, r.to_json().dump());
  const auto back = read_identified_masses(path.string(), "--sim_masses", 20, 4);
  EXPECT_EQ(back, r.estimate);
  EXPECT_THROW(read_identified_masses(path.string(), "--sim_masses", 21, 4), Error);
  EXPECT_THROW(identify_masses(
                   m, obs, 2,
                   [] {
    SysIdOptions x;
    x.window = 31;
    return x;
                   }()),
               Error);
}

TEST(SysId, ReadIdentifiedMassesNamesTheProblem) {
  test::TempDir dir;
  auto msg = [&](const std::string& text) {
    const auto p = dir.path / "m.json";
    write_file_atomic(p, text);
    try {
      read_identified_masses(p.string(), "--sim_masses", 2, 2);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("[").find("not valid JSON"), std::string::npos);
  EXPECT_NE(msg(R"({"format": "x"})").find("expected npe-sysid output"), std::string::npos);
  EXPECT_NE(msg(R"({"format": "npe-sysid", "estimate": [[1, 2]]})").find("at least 2 scenes, found 1"),
            std::string::npos);
  EXPECT_NE(msg(R"({"format": "npe-sysid", "estimate": [[1, 2], [1]]})").find("expected 2 masses, found 1"),
            std::string::npos);
  EXPECT_NE(msg(R"({"format": "npe-sysid", "estimate": [[1, 2], [1, -3]]})").find("positive"), std::string::npos);
  EXPECT_NE(msg(R"({"format": "npe-sysid", "estimate": [[1, 2], "a"]})").find("array of numbers"), std::string::npos);
  EXPECT_EQ(msg(R"({"format": "npe-sysid", "estimate": [[1, 2], [3, 4], [5, 6]]})"), "no error");
  EXPECT_NE(msg(R"({"format": "npe-sysid", "split": "val", "estimate": [[1, 2], [3, 4]]})")
                .find("identified on the \"val\" split"),
            std::string::npos);
}

}  // namespace
}  // namespace npe::rollout
