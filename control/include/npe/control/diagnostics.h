// npe/control/diagnostics.h: what the policy gradient through the simulator looks like
// (npe-control diagnose, docs/control.md): its norm and variance against the horizon, its
// agreement with a zeroth-order (score-function) estimate of the same gradient, and, for the
// billiards shot, the reward along a sweep of the shot's angle, the landscape the gradient sees.
// After Suh et al. 2022 (arXiv:2202.00817), who show the first-order estimate biased at contact
// discontinuities and of high variance on long chaotic rollouts.
#pragma once

#include <cstdint>
#include <vector>

#include "npe/control/agents.h"

namespace npe::control {

// Gradient of the mean K-step discounted return (no bootstrap) with respect to the policy's
// parameters, from the same initial layouts for every K, estimated in `batches` batches of
// num_envs / batches environments (rounded down to a multiple of 4: each initial layout is played
// 4 times, and the score function's baseline for one is the mean return of the other 3). Throws
// npe::FieldError when batches < 2 or num_envs < 4 batches.
struct HorizonGradient {
  int horizon = 0;
  double norm = 0;        // |mean over batches of the first-order (simulator) gradient|
  double variance = 0;    // batch size x mean |g_b - g|^2: per environment, 4 plays per layout
  double score_norm = 0;  // |score-function (REINFORCE) estimate of the same gradient|
  // cosine similarity of the two estimates, each from a different half of the batches (and the
  // mean with the halves swapped), so that their noise is independent
  double cosine = 0;
  // each estimator's agreement with itself: the cosine between its means over the first and the
  // second half of the batches (near 0: too noisy at this many environments to judge `cosine`)
  double first_order_self = 0, score_self = 0;
};
std::vector<HorizonGradient> gradient_vs_horizon(const TaskSpec& task, Agent& agent, const std::vector<int>& horizons,
                                                 int64_t num_envs, int batches, double gamma, uint64_t seed,
                                                 torch::Device device);

// returns [n] in consecutive groups of `group` samples of one layout: each minus the mean of the
// other samples of its group (the leave-one-out baseline, independent of the sample's own action).
// Throws npe::FieldError on "group" unless group >= 2 divides n.
torch::Tensor leave_one_out_centred(const torch::Tensor& returns, int64_t group);

// Billiards: the reward of shots at `speed` (a fraction of max_speed) along `points` angles in
// [0, 2 pi) on each of the first `layouts` held-out layouts, with d reward / d angle from the
// simulator's adjoint.
struct ShotSample {
  int64_t layout = 0;
  double angle = 0, reward = 0, slope = 0;
  bool success = false;
};
std::vector<ShotSample> shot_landscape(const TaskSpec& task, const Layouts& layouts, double speed, int points);

}  // namespace npe::control
