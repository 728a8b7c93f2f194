#include "npe/datagen/world.h"

#include <cmath>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe::datagen {
namespace {

TEST(World, SceneDependsOnlyOnSeedAndIndex) {
  const uint64_t seed = test::fresh_seed();
  WorldDef d;
  d.variable_mass = true;
  auto a = sample_scene(d, seed, 17), b = sample_scene(d, seed, 17), c = sample_scene(d, seed, 18);
  ASSERT_EQ(a.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].x, b[i].x);
    EXPECT_EQ(a[i].vy, b[i].vy);
  }
  EXPECT_NE(a[0].x, c[0].x);
}

TEST(World, InitialStatesFollowTheRecipe) {
  const uint64_t seed = test::fresh_seed();
  WorldDef d;
  d.variable_mass = true;
  int masses[3] = {0, 0, 0};
  for (int s = 0; s < 500; ++s) {
    auto balls = sample_scene(d, seed, s);
    for (size_t i = 0; i < balls.size(); ++i) {
      const auto& b = balls[i];
      EXPECT_GE(b.x, d.radius);
      EXPECT_LE(b.x, d.width - d.radius);
      EXPECT_GE(b.y, d.radius);
      EXPECT_LE(b.y, d.height - d.radius);
      EXPECT_LE(std::hypot(b.vx, b.vy), d.max_speed + 1e-9);
      ASSERT_TRUE(b.mass == 1 || b.mass == 5 || b.mass == 25) << b.mass;
      masses[b.mass == 1 ? 0 : b.mass == 5 ? 1 : 2]++;
      for (size_t j = 0; j < i; ++j) EXPECT_GE(std::hypot(b.x - balls[j].x, b.y - balls[j].y), 2 * d.radius);
    }
  }
  for (int m : masses) EXPECT_GT(m, 500);  // 2000 draws over 3 masses
}

TEST(World, ValidateNamesTheFlag) {
  WorldDef d;
  d.radius = -5;
  try {
    validate(d);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("radius"), std::string::npos) << e.what();
  }
  d = WorldDef{};
  d.num_balls = 40;  // 40 balls of radius 60 cover 94% of 800x600
  EXPECT_THROW(validate(d), Error);
  d = WorldDef{};
  d.timesteps = 2;
  EXPECT_THROW(validate(d), Error);
}

TEST(World, ImpossiblePlacementIsAClearError) {
  WorldDef d;
  d.num_balls = 14;  // passes the density check, but random placement fails quickly
  d.max_placement_tries = 200;
  try {
    for (int s = 0; s < 50; ++s) sample_scene(d, 1, s);
    FAIL() << "expected a placement failure";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("use fewer balls or a smaller radius"), std::string::npos) << e.what();
  }
}

TEST(World, RngUniformIsUniform) {
  Rng r(test::fresh_seed(), 3);
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.01);
}


TEST(World, MixedBallCountsDrawEachCountFromTheList) {
  const uint64_t seed = test::fresh_seed();
  WorldDef d;
  parse_ball_counts(d, "3,4,5");
  EXPECT_EQ(d.num_balls, 5);
  EXPECT_EQ(format_ball_counts(d), "3,4,5");
  int seen[6] = {0, 0, 0, 0, 0, 0};
  for (int s = 0; s < 600; ++s) {
    const auto balls = sample_scene(d, seed, s);
    ASSERT_GE(balls.size(), 3u);
    ASSERT_LE(balls.size(), 5u);
    ++seen[balls.size()];
    EXPECT_EQ(sample_scene(d, seed, s).size(), balls.size());  // a function of (seed, scene)
  }
  for (int n = 3; n <= 5; ++n) EXPECT_GT(seen[n], 150) << n;  // 600 draws over 3 counts
  parse_ball_counts(d, "6");
  EXPECT_EQ(d.num_balls, 6);
  EXPECT_TRUE(d.ball_counts.empty());
  // A billion balls parses, then validate() refuses it with the memory one scene would take.
  parse_ball_counts(d, "3,1000000000");
  try {
    validate(d);
    ADD_FAILURE() << "a billion balls accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
  for (const char* bad : {"", "3,,5", "3,x", "0", "2,3000000000", "4.5"}) {
    try {
      parse_ball_counts(d, bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("num_balls"), std::string::npos) << e.what();
    }
  }
}

TEST(World, Npe2017PresetDrawsIntegerVelocitiesAndSpacedCentres) {
  const uint64_t seed = test::fresh_seed();
  WorldDef d;
  apply_preset(d, "npe2017");
  EXPECT_TRUE(d.variable_mass);
  EXPECT_DOUBLE_EQ(d.max_speed, 600.0);  // 60 px per frame at 0.1 s per frame
  int extremes = 0;
  for (int s = 0; s < 300; ++s) {
    const auto balls = sample_scene(d, seed, s);
    for (const BallInit& b : balls) {
      for (double v : {b.vx, b.vy}) {
        const double per_frame = v * d.frame_dt;
        EXPECT_NEAR(per_frame, std::round(per_frame), 1e-9);
        EXPECT_LE(std::abs(per_frame), 20.0 + 1e-9);
        extremes += std::abs(std::round(per_frame)) == 20;
      }
      for (const BallInit& o : balls) {
        if (&o != &b) {
          EXPECT_GE(std::hypot(b.x - o.x, b.y - o.y), 2.5 * d.radius);
        }
      }
    }
  }
  EXPECT_GT(extremes, 20);  // +-20 drawn (2400 draws, 2 of 41 values each)
  EXPECT_THROW(apply_preset(d, "npe2016"), Error);
}

TEST(World, RejectionRuleCatchesFastBallsAndEscapes) {
  WorldDef d;
  apply_preset(d, "npe2017");
  std::vector<std::vector<BallInit>> frames = {{{100, 100, 590, 0, 1}, {300, 300, 0, -100, 5}}};
  EXPECT_FALSE(rejected(d, frames));
  frames[0][0].vx = 601;
  EXPECT_TRUE(rejected(d, frames));
  frames[0][0].vx = 0;
  frames[0][1].y = d.height + 0.5;
  EXPECT_TRUE(rejected(d, frames));
  WorldDef plain;  // no rule: nothing rejected
  EXPECT_FALSE(rejected(plain, frames));
}

}  // namespace
}  // namespace npe::datagen
