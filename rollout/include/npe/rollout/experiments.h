// npe/rollout/experiments.h: the experiments table of Chang et al. 2017 (section 4: prediction,
// generalisation, variable mass) from trained checkpoints: model x world x metrics, and the
// paper's claims (the NPEs beat the baselines; here also modern beats classic) checked per world
// at every rollout step. npe-results writes it as Markdown, CSV and JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/rollout/rollout.h"

namespace npe::rollout {

// One row group: the checkpoints CHECKPOINTS/<classic|modern|np|lstm|gns>.best.pt that exist,
// evaluated on the dataset PREFIX's test split (val split for the validation MSE).
struct ExperimentWorld {
  std::string label, checkpoints, prefix;
};

struct ExperimentOptions {
  int64_t num_scenes = 200;  // test scenes rolled out per world
  int rollout_steps = 50;
  int step_a = 10, step_b = 50;  // the two steps the Markdown table quotes, 1 <= a <= b <= rollout_steps
  // Steps of the long-rollout table (one row per world, model and step: cosine, relative error,
  // position error, kinetic-energy drift); empty: no such table. Each in 1..rollout_steps.
  std::vector<int> long_steps;
  // Also score npe's simulator (score_simulator) on the worlds it can replay
  // (replay_unsupported); the others say why in the log and the JSON.
  bool simulator = false;
  torch::Device device = torch::kCPU;
};

struct ExperimentReport {
  std::string markdown;  // the table, then the claims table
  std::string csv;       // world,model,step,cosine,rel_mag_error,pos_error_px,energy_drift
  nlohmann::json json;   // everything, per world: models' scores and, per claim, the steps where it fails
};

// The steps (1-based) at which `a` is not better than `b`: cosine similarity not higher, and
// relative magnitude error not lower.
struct NotBetter {
  std::vector<int> cosine, rel;
};
NotBetter steps_not_better(const StepMetrics& a, const StepMetrics& b);

// "yes", or "**no** at 3 steps: 30 34 36" (the first four, then "...").
std::string claim_verdict(const std::vector<int>& steps);

// Loads and checks every world's dataset and checkpoints first (each checkpoint against its
// world's dataset), then scores each model and the constant-velocity baseline. `log` receives a
// line per world done. Throws npe::Error: "world 'LABEL': ..." for a world without checkpoints,
// "steps: ..." or "long_steps: ..." for quoted steps out of range, and the loaders' errors.
ExperimentReport experiments_table(const std::vector<ExperimentWorld>& worlds, const ExperimentOptions& options,
                                   const std::function<void(const std::string&)>& log = {});

}  // namespace npe::rollout
