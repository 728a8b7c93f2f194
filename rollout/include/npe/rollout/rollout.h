// npe/rollout/rollout.h: autoregressive rollouts and their metrics (no libtorch dependency).
//
// A rollout starts from two ground-truth frames (0 and 1). At each step k = 1..steps a predictor
// maps frames (k-1, k) to the velocities of frame k+1, and positions advance by
//   x_{k+1} = x_k + v_{k+1} * step_scale        (normalised units; step_scale = dt v_max / W)
// Metrics per step, over balls and scenes, compare frame k+1 with the ground truth
// (Chang et al. 2017, section 4: cosine similarity and relative magnitude error of velocities):
//   cosine similarity  v . v_hat / (|v| |v_hat|)   (0 where |v_hat| = 0)
//   relative magnitude error  | |v| - |v_hat| | / |v|
//   position error  |x - x_hat| in px
//   kinetic-energy drift  E(k+1) / E(1) - 1, E the rollout's kinetic energy (sum of m |v|^2 / 2
//                         over balls) summed over the scenes, frame 1 the last given frame: the
//                         ground truth keeps it near 0 where collisions are elastic and there is no
//                         friction (npe's default worlds); it shows a learned model gaining or
//                         losing energy over long rollouts, whatever the trajectories' divergence.
//                         Summed, not a mean of per-scene ratios: a scene of nearly resting balls
//                         would dominate such a mean
// Balls whose ground-truth speed is below `min_speed` (normalised units; default 1% of the
// velocity scale) are masked out of the velocity metrics: cosine and relative error are undefined
// at zero speed, and near it the relative error of a nearly stopped ball dominates the mean (one
// ball at 1e-4 of the scale lifted a 1000-scene mean from 0.3 to 2.9 at one step). Absent slots (mass 0,
// mixed ball counts) stay all-zero in rollouts and are left out of every metric.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "npe/datagen/dataset.h"

namespace npe::rollout {

// Predicts the next velocities: prev, cur [scenes, N, 5] -> v_next [scenes, N, 2] (all float32,
// C order, normalised as in the dataset).
using Predictor =
    std::function<void(const float* prev, const float* cur, int64_t scenes, int64_t num_balls, float* v_next)>;

// The constant-velocity baseline: v_{k+1} = v_k.
Predictor constant_velocity();

// Rolls out the first `scenes` scenes of `truth` for `steps` steps. Returns trajectories of
// steps + 2 frames (frames 0 and 1 copied from the truth). Throws npe::Error if the truth has
// fewer than steps + 2 frames or fewer than `scenes` scenes.
datagen::Trajectories rollout(const datagen::Trajectories& truth, int64_t scenes, int steps, double step_scale,
                              const Predictor& predict);

struct StepMetrics {
  std::vector<double> cosine;           // [steps], index k-1 for step k
  std::vector<double> rel_mag_error;    // [steps]
  std::vector<double> pos_error_px;     // [steps]
  std::vector<int64_t> velocity_count;  // balls counted in the velocity metrics per step
  std::vector<double> energy_drift;     // [steps], relative change of the scenes' energy since frame 1
};

// Compares rollout frames 2..steps+1 with the same frames of `truth`.
StepMetrics rollout_metrics(const datagen::Trajectories& truth, const datagen::Trajectories& pred, double pos_scale,
                            double min_speed = 0.01);

// Which balls of scene `scene` touch another ball during the recorded frames: between frames t
// and t+1, balls i and j move ballistically with the velocities of frame t, and they touch when
// their centre distance falls to 2 `radius` + `slack` (normalised position units, as the
// dataset's; Box2D keeps contacts up to 0.5 px apart) within the frame's displacement
// `step_scale` * v (time-of-impact test), and both balls' velocities change over that frame (by
// more than 1e-4 of the velocity scale). Returns [num_balls] flags. Wall contacts do not count:
// a wall's reaction does not depend on the ball's mass, so only ball-ball contacts carry
// information on masses (npe-sysid's "balls that collide").
std::vector<uint8_t> touches_another_ball(const datagen::Trajectories& truth, int64_t scene, double radius,
                                          double step_scale, double slack);

}  // namespace npe::rollout
