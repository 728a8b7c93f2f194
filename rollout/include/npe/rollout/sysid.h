// npe/rollout/sysid.h: system identification through the differentiable simulator: the mass of each
// ball (and optionally the restitution of each scene) inferred from observed trajectories by
// gradient descent, batched over scenes (npe-sysid).
//
// Protocol (as the NPE paper's mass inference, Chang et al. 2017, section 4.3): each ball in
// turn is the "focus" whose mass is unknown; the other balls' masses are known. (With every mass
// unknown, only ratios within a group of colliding balls are identifiable: scaling all masses of
// a scene leaves its trajectory unchanged, and walls react alike to every mass.) Each (scene,
// focus) pair is one independent problem; its loss is the squared position error, px^2, of the
// simulator against the observation over windows of `window` frames, each started from the
// observed state at its first frame, so that a mismatch between the observed world (e.g. Box2D)
// and the engine cannot accumulate over the whole trajectory. Parameter: theta = ln m per problem, fitted by
// a safeguarded secant iteration run on all problems at once (each step kept only where it lowers
// that problem's loss). With fit_restitution, also e = sigmoid(u) per problem (starting at 0.9),
// both fitted with Adam.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/datagen/dataset.h"

namespace npe::rollout {

struct SysIdOptions {
  int window = 10;               // frames per window (>= 1)
  int iterations = 100;          // steps, one gradient evaluation each (plus one at the start)
  double lr = 0.5;               // first step in ln m (the secant iteration takes it from there);
                                 // with fit_restitution, Adam's learning rate (cosine-decayed to lr / 10)
  double initial_mass = 0;       // start of every estimate; 0 = geometric mean of the mass choices
  bool restarts = true;          // also start from each mass choice; keep the start of least loss
  bool fit_restitution = false;  // also fit one restitution per (scene, focus) problem
  int store_every = 0;           // substeps between stored states (RolloutSpec::checkpoint_every; 0: one per frame)
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat64;
};

struct SysIdResult {
  int64_t scenes = 0, num_balls = 0;
  std::vector<double> mass_choices;              // the world's, for classification
  std::vector<std::vector<double>> truth;        // [S][N] observed masses
  std::vector<std::vector<double>> estimate;     // [S][N] identified mass of each ball as the focus
  std::vector<std::vector<double>> restitution;  // [S][N] (fit_restitution), else empty
  std::vector<std::vector<uint8_t>> collides;    // [S][N] the ball touches another ball
  std::vector<double> loss;                      // [iterations + 1] mean loss per problem, px^2
                                                 // (of the best estimates so far), over all starts
  double loss_final = 0;                         // mean final loss of the chosen starts, px^2
  double seconds = 0;

  // The mass choice nearest to `m` in log space.
  double classify(double m) const;
  // Over balls with collides = 1: share classified correctly, median and 90th percentile of
  // |m_hat - m| / m, and the number of balls counted.
  struct Summary {
    int64_t balls = 0;
    double accuracy = 0, median_rel_error = 0, p90_rel_error = 0;
  };
  Summary summary() const;
  // JSON (npe-sysid's output; npe-eval --sim_masses reads "estimate").
  nlohmann::json to_json() const;
};

// Identifies the masses of the first `scenes` scenes of `observed` (a split of a dataset with
// manifest `manifest`). Throws npe::Error on bad options (naming the option) or a dataset the
// simulator cannot run (more balls than it takes).
SysIdResult identify_masses(const datagen::Manifest& manifest, const datagen::Trajectories& observed, int64_t scenes,
                            const SysIdOptions& options);

// Reads the identified masses [scenes][N] from an npe-sysid JSON file, checking that they were
// identified on split `split` (when the file names its split) and cover at least `scenes`
// scenes of `num_balls` balls with positive masses. Throws npe::Error naming `flag`, the file,
// what was expected and what was found.
std::vector<std::vector<double>> read_identified_masses(const std::string& path, const std::string& flag,
                                                        int64_t scenes, int64_t num_balls,
                                                        const std::string& split = "test");
// The same, from the file's text (`path` names it in errors).
std::vector<std::vector<double>> parse_identified_masses(const std::string& text, const std::string& path,
                                                         const std::string& flag, int64_t scenes, int64_t num_balls,
                                                         const std::string& split = "test");

}  // namespace npe::rollout
