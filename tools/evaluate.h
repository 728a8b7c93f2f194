// tools/evaluate.h: one model's score on a dataset, as npe-eval and npe-results report it: the
// one-step validation MSE over the val split and the per-step rollout metrics on test scenes.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/datagen/dataset.h"
#include "npe/model/model.h"
#include "npe/model/train.h"
#include "npe/rollout/rollout.h"

namespace npe::tools {

struct Score {
  std::string name;
  double val_mse = 0;              // one-step velocity MSE over the val split (normalised units)
  rollout::StepMetrics metrics;    // rollouts of the first scenes of the test split

  // {val_mse, cosine, rel_mag_error, pos_error_px}: a model's entry in npe-eval's and npe-results' JSON
  nlohmann::json to_json() const {
    return {{"val_mse", val_mse}, {"cosine", metrics.cosine}, {"rel_mag_error", metrics.rel_mag_error},
            {"pos_error_px", metrics.pos_error_px}};
  }
};

// Rolls `predict` out on the first `num_scenes` test scenes for `steps` steps and scores it;
// `net` (nullptr: the constant-velocity baseline) gives the val MSE on `val_t` (the val split on
// the device, all of its windows).
inline Score score_model(const std::string& name, const rollout::Predictor& predict, model::NPEImpl* net,
                         const datagen::Manifest& manifest, const datagen::Trajectories& test, const torch::Tensor& val_t,
                         int64_t num_scenes, int steps) {
  const int64_t windows = val_t.size(0) * (val_t.size(1) - 2);
  const auto ids = torch::arange(windows, torch::TensorOptions().dtype(torch::kLong).device(val_t.device()));
  Score s;
  s.name = name;
  s.val_mse = model::window_mse(net, val_t, ids);
  s.metrics = rollout::rollout_metrics(test, rollout::rollout(test, num_scenes, steps, manifest.step_scale(), predict),
                                       manifest.pos_scale());
  return s;
}

}  // namespace npe::tools
