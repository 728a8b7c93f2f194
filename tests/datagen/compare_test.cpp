// The engine against Box2D from identical initial conditions (gpu/src/compare.cpp).
#include <gtest/gtest.h>

#include "npe/datagen/engine_world.h"
#include "npe/datagen/compare.h"
#include "test_util.h"

namespace npe::datagen {
using namespace npe::gpu;  // the engine the tested functions drive
namespace {

TEST(CompareWithBox2d, AgreesBeforeAndThroughSingleCollisionsAndInStatistics) {
  datagen::WorldDef w;  // npe-datagen's default world
  const EngineComparison c = datagen::compare_with_box2d(w, 300, test::fresh_seed(), 0);
  std::printf("%s\n", c.to_json().dump(1).c_str());
  // free flight: both integrate straight lines (Box2D in float32 metres)
  EXPECT_LT(c.pre_collision_max_dx, 0.05);  // Box2D stores positions in float32 metres
  EXPECT_LT(c.pre_collision_max_dv, 1e-3);
  // after one collision: the same outgoing velocities; positions lag by about v pi / omega
  EXPECT_GT(c.single_collision_scenes, 100);
  EXPECT_LT(c.single_collision_dv_median, 0.02);
  EXPECT_LT(c.single_collision_dx_median, 2.0);
  // whole trajectories: statistics agree
  EXPECT_NEAR(c.engine.collisions_per_scene, c.box2d.collisions_per_scene, 0.1 * c.box2d.collisions_per_scene);
  EXPECT_NEAR(c.engine.mean_speed, c.box2d.mean_speed, 0.01 * c.box2d.mean_speed);
  EXPECT_LT(c.speed_ks, 0.05);
  EXPECT_LT(c.engine.max_energy_drift, 0.01);
  EXPECT_LT(c.box2d.max_energy_drift, 1e-4);
}

}  // namespace
}  // namespace npe::datagen
