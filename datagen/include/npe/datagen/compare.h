// npe/datagen/compare.h: the engine against Box2D, from identical initial conditions (what
// npe-compare-engines reports and the tests check).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "npe/datagen/world.h"

namespace npe::datagen {

struct EngineStats {
  double collisions_per_scene = 0;  // runs of frames where some ball's velocity changed (> 1e-3 v_max)
  // mean over scenes of max_t |E_t - E_0| / E_0 of the kinetic energy; for the engine over the
  // frames where no contact is active (contact_free_energy)
  double mean_energy_drift = 0;
  double max_energy_drift = 0;
  double mean_speed = 0;  // px/s, over all balls and frames
};

struct EngineComparison {
  int64_t scenes = 0;
  int substeps = 0;  // the engine's substeps per frame
  double omega = 0;  // the engine's contact omega, 1/s
  // Before the first collision (frames before the one preceding Box2D's first velocity change):
  // largest position / velocity difference.
  double pre_collision_max_dx = 0;  // px
  double pre_collision_max_dv = 0;  // px/s
  // From 2 frames after the first collision until 1 frame before the second (scenes where that
  // interval is not empty): per-scene largest velocity difference relative to max_speed, and
  // position difference; median and 90th percentile over scenes.
  int64_t single_collision_scenes = 0;
  double single_collision_dv_median = 0, single_collision_dv_p90 = 0;  // fraction of max_speed
  double single_collision_dx_median = 0, single_collision_dx_p90 = 0;  // px
  EngineStats box2d, engine;
  double speed_ks = 0;  // two-sample Kolmogorov-Smirnov statistic of the speed distributions
  nlohmann::json to_json() const;
};

// Simulates scenes [0, scenes) of world `w` (seed `seed`) with Box2D and with the engine's CPU
// reference in float64 (the engine's substeps and omega from w, 0 = chosen), and compares them.
EngineComparison compare_with_box2d(const WorldDef& w, int64_t scenes, uint64_t seed, int threads = 0);

}  // namespace npe::datagen
