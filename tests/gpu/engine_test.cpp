// The engine's spec (gpu/src/engine.cpp): contact choice, damping, validation, layouts.
#include <cmath>

#include <gtest/gtest.h>

#include "npe/datagen/engine_world.h"
#include "npe/core/error.h"
#include "npe/gpu/engine.h"
#include "npe/gpu/scenes.h"

namespace npe::gpu {
namespace {

TEST(Engine, ChooseContactKeepsPenetrationAndResolvesTheContact) {
  const ContactChoice c = choose_contact(120, 60, 0.1);
  EXPECT_DOUBLE_EQ(c.omega, 200.0);  // 120 / (0.01 * 60)
  EXPECT_EQ(c.substeps, 64);         // ceil(0.1 * 200 * 10 / pi) = ceil(63.66)
  // peak penetration v / omega = 1% of r; contact of pi / omega spans >= 10 substeps
  EXPECT_LE(120 / c.omega, 0.01 * 60 + 1e-12);
  EXPECT_GE(M_PI / c.omega / (0.1 / c.substeps), 10.0);
  EXPECT_THROW(choose_contact(0, 60, 0.1), Error);
}

TEST(Engine, DampingRatioGivesTheRestitutionOfASpringDashpot) {
  EXPECT_EQ(damping_ratio(1.0), 0.0);
  for (double e : {0.2, 0.5, 0.9}) {
    const double z = damping_ratio(e);
    EXPECT_NEAR(std::exp(-z * M_PI / std::sqrt(1 - z * z)), e, 1e-12);
  }
  EXPECT_THROW(damping_ratio(0.0), Error);
  EXPECT_THROW(damping_ratio(1.5), Error);
}

TEST(Engine, ValidateNamesTheProblem) {
  WorldSpec s = datagen::spec_from_world(datagen::WorldDef{}, 2);
  s.radius.pop_back();
  try {
    validate(s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("WorldSpec::radius"), std::string::npos) << e.what();
  }
  s = datagen::spec_from_world(datagen::WorldDef{}, 2);
  Obstacle flat;
  flat.kind = Obstacle::Kind::kBox;
  flat.ax = flat.ay = 100;
  flat.bx = 0;  // zero half width
  flat.by = 10;
  s.obstacles = {flat};
  EXPECT_THROW(validate(s), Error);
  s.obstacles.clear();
  s.radius[0] = 500;  // does not fit
  EXPECT_THROW(validate(s), Error);
}

TEST(Engine, LayoutsAddressEveryElementOnce) {
  const WorldSpec s = datagen::spec_from_world(datagen::WorldDef{}, 3);
  const int frames = 2;
  std::vector<int> hits(frames * 5 * s.num_bodies(), 0);
  const auto d = dataset_layout<double>(nullptr, s, frames, 800, 60);
  const auto e = engine_layout<double>(nullptr, s);
  std::vector<int> ehits(frames * 4 * s.num_bodies(), 0);
  for (int t = 0; t < frames; ++t)
    for (int64_t ball = 0; ball < s.num_balls; ++ball)
      for (int64_t sc = 0; sc < s.num_scenes; ++sc) {
        for (int f = 0; f < 5; ++f) ++hits[t * d.frame + ball * d.ball_stride + sc * d.scene + f * d.field];
        for (int f = 0; f < 4; ++f) ++ehits[t * e.frame + ball * e.ball_stride + sc * e.scene + f * e.field];
      }
  for (int h : hits) EXPECT_EQ(h, 1);
  for (int h : ehits) EXPECT_EQ(h, 1);
  EXPECT_EQ(e.scene, 1);  // consecutive scenes adjacent: coalesced
}

TEST(Engine, LargeWorldHasNoOverlapAndUsesTheGrid) {
  const Scene sc = large_world(2000, 5, 0.45, 100, 7);
  EXPECT_EQ(sc.spec.resolved_broad_phase(), BroadPhase::kGrid);
  EXPECT_TRUE(contact_pairs_cpu(sc.spec, sc.state, BroadPhase::kGrid).empty());
  for (int64_t i = 0; i < 2000; ++i) {
    EXPECT_GT(sc.state.x[i], 5);
    EXPECT_LT(sc.state.x[i], sc.spec.width - 5);
  }
}

}  // namespace
}  // namespace npe::gpu
