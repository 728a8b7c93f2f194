// npe/rollout/evaluate.h: scoring models and the simulator on a dataset, as npe-eval, npe-render,
// npe-sysid and npe-results report them: trained checkpoints loaded by kind and checked against
// the dataset's world, one-step validation MSE and per-step rollout metrics, and the paper's
// mass inference (Chang et al. 2017, section 4.3) scored on the balls that collide.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/datagen/dataset.h"
#include "npe/datagen/world_identity.h"
#include "npe/model/checkpoint.h"
#include "npe/model/model.h"
#include "npe/rollout/rollout.h"

namespace npe::rollout {

// Every model kind, in the order tools list and load them.
constexpr model::Kind kAllKinds[] = {model::Kind::Classic, model::Kind::Modern, model::Kind::NP, model::Kind::LSTM,
                                     model::Kind::GNS};

// A checkpoint to load: its kind, path, and the name that errors give for it (a tool's flag,
// e.g. "--classic_ckpt").
struct ModelSource {
  model::Kind kind;
  std::string path;
  std::string who;
};

struct LoadedModel {
  std::string name;  // "classic", "modern", "np" or "lstm"
  model::Checkpoint checkpoint;
  std::vector<datagen::IdentityDifference> transfers;  // allowed differences of its world from the dataset's
};

// Loads each checkpoint on `device`, checked for its kind and against the dataset's world
// (model::check_dataset_matches; the fields in `allowed` may differ and are returned in
// `transfers`). Throws npe::Error naming the source's `who` or path.
std::vector<LoadedModel> load_models(const std::vector<ModelSource>& sources, const torch::Device& device,
                                     const datagen::Manifest& manifest, const std::string& prefix,
                                     const std::set<std::string>& allowed = {});

// {"masses": {"trained": "[1]", "dataset": "[1, 5, 25]"}, ...}: allowed transfers, for outputs.
nlohmann::json transfers_json(const std::vector<datagen::IdentityDifference>& transfers);

struct Score {
  std::string name;
  double val_mse = 0;   // one-step velocity MSE over the val split, (v / vel_scale)^2
  StepMetrics metrics;  // rollouts of the first scenes of the test split

  // {val_mse, cosine, rel_mag_error, pos_error_px, energy_drift}: a model's entry in npe-eval's and npe-results' JSON.
  nlohmann::json to_json() const;
};

// Rolls `predict` out on the first `num_scenes` test scenes for `steps` steps and scores it;
// `net` (nullptr: the constant-velocity baseline) gives the val MSE on `val_t` (the val split
// [S, T, N, 5] on the device, all of its windows).
Score score_model(const std::string& name, const Predictor& predict, model::NPEImpl* net,
                  const datagen::Manifest& manifest, const datagen::Trajectories& test, const torch::Tensor& val_t,
                  int64_t num_scenes, int steps);

// The simulator's score ("simulator"): its one-step MSE over the val split and its rollouts of the
// first `num_scenes` test scenes (simulator_rollout), with `masses` ([scenes][N]) when given.
Score score_simulator(const datagen::Manifest& manifest, const datagen::Trajectories& val,
                      const datagen::Trajectories& test, int64_t num_scenes, int steps, bool use_cuda,
                      const std::vector<std::vector<double>>* masses = nullptr);

// The paper's mass inference with a trained NPE on observed scenes (model::mass_hypothesis_errors:
// the hypothesis of least one-step error), scored against the true mass class of the balls that
// collide (`collides`, `truth_class` [scenes][N], e.g. from SysIdResult).
struct MassInference {
  double accuracy = 0;  // right / balls_that_collide (0 when none collides)
  int64_t balls_that_collide = 0;
  std::vector<std::vector<double>> inferred;  // [scenes][N], the chosen hypothesis of every ball
};
MassInference npe_mass_inference(model::NPEImpl& net, const torch::Tensor& traj, const std::vector<double>& hypotheses,
                                 const std::vector<std::vector<uint8_t>>& collides,
                                 const std::vector<std::vector<double>>& truth_class);

}  // namespace npe::rollout
