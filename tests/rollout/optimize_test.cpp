// Trajectory optimisation through the differentiable simulator (gpu/src/optimize.cpp): the
// two-ball control task with an analytic optimum, the shipped example, bad problems.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>

#include "npe/core/io.h"
#include "npe/datagen/world.h"
#include "npe/rollout/optimize.h"
#include "test_util.h"

namespace npe::rollout {
using namespace npe::gpu;  // the engine the tested functions drive
namespace {

// Head-on: ball A (mass ma) at rest-free start, ball B (mass mb) at rest, surfaces `gap` px apart
// on the line y = 300. A hard-sphere elastic collision gives B the speed 2 ma u / M (M = ma + mb)
// at t_c = gap / u, so x_B(T) = x_B0 + (2 ma / M)(u T - gap): affine in A's speed u. With
// penalty contacts the collision lasts tau = pi / omega, during which both balls move with the
// centre-of-mass speed ma u / M instead of B moving at 2 ma u / M from t_c, so
//   x_B(T) = x_B0 + (ma / M)(2 u T - 2 gap - u tau),  u* = (M (x* - x_B0) / ma + 2 gap) / (2 T - tau).
// The loss (x_B(T) - x*)^2 is a convex quadratic in u: gradient descent must reach u*.
TEST(Optimize, TwoBallControlTaskReachesTheAnalyticOptimum) {
  const uint64_t seed = test::fresh_seed();
  datagen::Rng rng(seed, 0);
  LaunchProblem p;
  p.world.radius = 40;
  p.world.max_speed = 200;
  p.world.num_balls = 2;
  // masses and distances keep u* (67 to 330 px/s) under the 2 max_speed that launch_spec
  // resolves the contact ramp for
  const double ma = rng.uniform(1, 2), mb = rng.uniform(1, 3), gap = rng.uniform(60, 160);
  const double xa = rng.uniform(100, 200), xb = xa + 80 + gap, target = xb + rng.uniform(100, 250);
  p.balls = {{xa, 300, 0, 0, ma}, {xb, 300, 0, 0, mb}};
  p.shooter = 0;
  p.target_ball = 1;
  p.target_x = target;
  p.target_y = 300;
  p.frames = 20;
  const double T = p.frames * p.world.frame_dt, M = ma + mb;
  const WorldSpec spec = launch_spec(p);
  const double tau = M_PI / spec.contact_omega;
  const double u_star = (M * (target - xb) / ma + 2 * gap) / (2 * T - tau);
  const double u_hard = (M * (target - xb) / ma + 2 * gap) / (2 * T);
  for (LaunchMethod method : {LaunchMethod::kGradientDescent, LaunchMethod::kGaussNewton}) {
    LaunchOptions o;
    o.method = method;
    o.tolerance_px = 0.01;
    const LaunchResult r = optimize_launch(p, o);
    const char* name = method == LaunchMethod::kGradientDescent ? "gradient descent" : "gauss-newton";
    std::printf("%s: u = %.4f px/s after %d iterations; analytic %.4f (hard spheres %.4f); %.4f px from the target\n",
                name, r.vx, r.iterations, u_star, u_hard, r.distance_px.back());
    EXPECT_TRUE(r.converged) << name;
    EXPECT_LE(r.iterations, 100) << name;
    EXPECT_NEAR(r.vx, u_star, 1e-3 * u_star) << name;  // the ramp's softer onset: ~1e-4
    EXPECT_NEAR(r.vy, 0, 1e-9) << name;
    // the optimum is the penalty model's, not the hard-sphere one (the test can tell them apart)
    EXPECT_GT(std::abs(r.vx - u_hard), 3 * std::abs(r.vx - u_star)) << name;
  }
}

TEST(Optimize, ShippedExampleConvergesWithin100Iterations) {
  const auto p = LaunchProblem::from_json_file(std::string(NPE_SOURCE_DIR) + "/data/examples/launch.json");
  for (LaunchMethod method : {LaunchMethod::kGradientDescent, LaunchMethod::kGaussNewton}) {
    LaunchOptions o;
    o.method = method;
    const LaunchResult r = optimize_launch(p, o);
    EXPECT_TRUE(r.converged) << static_cast<int>(method) << ": " << r.distance_px.back() << " px";
    EXPECT_LE(r.iterations, 100);
    EXPECT_GT(r.distance_px.front(), 50);  // the first guess is far off
    const auto& end = r.optimised[p.frames][p.target_ball];
    EXPECT_NEAR(end[0].item<double>(), p.target_x, o.tolerance_px);
    EXPECT_NEAR(end[1].item<double>(), p.target_y, o.tolerance_px);
  }
}

TEST(Optimize, BadProblemsAreNamed) {
  test::TempDir dir;
  auto message = [&](const std::string& text) {
    const auto path = dir.path / "p.json";
    write_file_atomic(path, text);
    try {
      const auto p = LaunchProblem::from_json_file(path.string());
      optimize_launch(p, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string balls = R"("balls": [[100, 300, 0, 0, 1], [300, 300, 0, 0, 1]])";
  EXPECT_NE(message("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(message("{" + balls + R"(, "shooter": 0, "target_ball": 1, "frames": 5})").find("'target' is missing"),
            std::string::npos);
  EXPECT_NE(message("{" + balls + R"(, "shooter": 0, "target_ball": 1, "target": [1], "frames": 5})").find("[x, y]"),
            std::string::npos);
  EXPECT_NE(message("{" + balls + R"(, "shooter": 0, "target_ball": 0, "target": [1, 2], "frames": 5})")
                .find("two different balls"),
            std::string::npos);
  EXPECT_NE(message(R"({"balls": [[100, 300, 0, 0]], "shooter": 0, "target_ball": 1, "target": [1, 2], "frames": 5})")
                .find("[x, y, vx, vy, mass]"),
            std::string::npos);
  EXPECT_NE(
      message(
          R"({"balls": [[100, 300, 0, 0, 1], [150, 300, 0, 0, 1]], "shooter": 0, "target_ball": 1, "target": [1, 2], "frames": 5})")
          .find("overlap"),
      std::string::npos);
}

}  // namespace
}  // namespace npe::rollout
