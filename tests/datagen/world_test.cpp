#include "npe/datagen/world.h"

#include <cmath>

#include <gtest/gtest.h>

#include "npe/datagen/io.h"
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
      for (size_t j = 0; j < i; ++j)
        EXPECT_GE(std::hypot(b.x - balls[j].x, b.y - balls[j].y), 2 * d.radius);
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
    EXPECT_NE(std::string(e.what()).find("--radius"), std::string::npos) << e.what();
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
    EXPECT_NE(std::string(e.what()).find("--num_balls"), std::string::npos) << e.what();
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

}  // namespace
}  // namespace npe::datagen
