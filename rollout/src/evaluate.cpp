#include "npe/rollout/evaluate.h"

#include <algorithm>

#include "npe/model/infer.h"
#include "npe/model/train.h"
#include "npe/rollout/sim_rollout.h"

namespace npe::rollout {

std::vector<LoadedModel> load_models(const std::vector<ModelSource>& sources, const torch::Device& device,
                                     const datagen::Manifest& manifest, const std::string& prefix,
                                     const std::set<std::string>& allowed) {
  std::vector<LoadedModel> models;
  for (const ModelSource& s : sources) {
    LoadedModel m{model::kind_name(s.kind), model::load_checkpoint(s.path, s.kind, s.who, device), {}};
    m.transfers = model::check_dataset_matches(m.checkpoint, manifest, s.path, prefix, allowed);
    models.push_back(std::move(m));
  }
  return models;
}

nlohmann::json transfers_json(const std::vector<datagen::IdentityDifference>& transfers) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& d : transfers) j[d.field] = {{"trained", d.first}, {"dataset", d.second}};
  return j;
}

nlohmann::json Score::to_json() const {
  return {{"val_mse", val_mse},
          {"cosine", metrics.cosine},
          {"rel_mag_error", metrics.rel_mag_error},
          {"pos_error_px", metrics.pos_error_px},
          {"energy_drift", metrics.energy_drift}};
}

Score score_model(const std::string& name, const Predictor& predict, model::NPEImpl* net,
                  const datagen::Manifest& manifest, const datagen::Trajectories& test, const torch::Tensor& val_t,
                  int64_t num_scenes, int steps) {
  const int64_t windows = val_t.size(0) * (val_t.size(1) - 2);
  const auto ids = torch::arange(windows, torch::TensorOptions().dtype(torch::kLong).device(val_t.device()));
  Score s;
  s.name = name;
  s.val_mse = model::window_mse(net, val_t, ids);
  s.metrics = rollout_metrics(test, rollout(test, num_scenes, steps, manifest.step_scale(), predict),
                              manifest.pos_scale());
  return s;
}

Score score_simulator(const datagen::Manifest& manifest, const datagen::Trajectories& val,
                      const datagen::Trajectories& test, int64_t num_scenes, int steps, bool use_cuda,
                      const std::vector<std::vector<double>>* masses) {
  Score s;
  s.name = "simulator";
  s.val_mse = simulator_window_mse(manifest, val, use_cuda);
  s.metrics = rollout_metrics(
      test, simulator_rollout(manifest, test, std::min(num_scenes, test.scenes), steps, use_cuda, masses),
      manifest.pos_scale());
  return s;
}

MassInference npe_mass_inference(model::NPEImpl& net, const torch::Tensor& traj, const std::vector<double>& hypotheses,
                                 const std::vector<std::vector<uint8_t>>& collides,
                                 const std::vector<std::vector<double>>& truth_class) {
  const torch::Tensor pick = model::mass_hypothesis_errors(net, traj, hypotheses).argmin(-1);  // [S, N]
  const int64_t scenes = pick.size(0), balls = pick.size(1);
  const auto p = pick.accessor<int64_t, 2>();
  MassInference r;
  r.inferred.assign(scenes, std::vector<double>(balls));
  int64_t right = 0;
  for (int64_t s = 0; s < scenes; ++s)
    for (int64_t b = 0; b < balls; ++b) {
      r.inferred[s][b] = hypotheses[p[s][b]];
      if (!collides[s][b]) continue;
      ++r.balls_that_collide;
      right += r.inferred[s][b] == truth_class[s][b];
    }
  r.accuracy = r.balls_that_collide ? static_cast<double>(right) / r.balls_that_collide : 0.0;
  return r;
}

}  // namespace npe::rollout
