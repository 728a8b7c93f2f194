// npe/src/train_run.h: the stages of npe-train's run (train() in train.cpp calls them in order):
// the plan resolved once from the config, the set-up (data, model, resume), the run's files
// (checkpoint policy and metrics CSV), and the loop. Private to npe_model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/core/io.h"
#include "npe/datagen/dataset.h"
#include "npe/model/distributed.h"
#include "npe/model/model.h"
#include "npe/model/train.h"
#include "npe/model/train_step.h"

namespace npe::model::run {

// Throws npe::Error naming the flag of the first out-of-range field of `config`.
void validate_config(const TrainConfig& config);

// What the run is, resolved once: device, processes, step options, step counts and file paths.
struct Plan {
  torch::Device device = torch::kCPU;
  StepOptions step_options;
  int64_t world = 1;         // processes
  int64_t global_batch = 0;  // processes x batch_size windows per step
  int64_t total_steps = 0;
  int64_t eval_every = 0;  // steps between validations
  std::string last_path, best_path, csv_path;
};
Plan make_plan(const TrainConfig& config, const torch::Device& device, ProcessGroup& group);

// Where a resumed run continues from (step 0 and empty for a fresh run).
struct Resumed {
  int64_t step = 0;
  double best_val = INFINITY;
  double elapsed = 0;                 // seconds spent before this run
  double loss_sum = 0;                // the loss accumulator of the interrupted evaluation interval
  int64_t loss_count = -1;            // -1: none saved
  std::vector<std::string> csv_rows;  // the metrics CSV's rows up to `step`
};

// Data, model and optimizer, built on every process; process 0 alone reads a --resume checkpoint.
struct Setup {
  datagen::Manifest manifest;
  torch::Tensor train_t, val_t, val_ids;  // splits [S, T, N, 5] and validation window ids, on the device
  std::shared_ptr<NPEImpl> net;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  Resumed resumed;
  std::shared_ptr<OutputLock> lock;  // process 0's: one run of a name at a time
};
// Loads the splits, builds the model (normalisation fitted on the training split) and the
// optimizer; with config.resume on process 0 and a checkpoint at plan.last_path, continues it:
// its flags, model and training world must match (npe::Error naming the flag or field).
Setup set_up(const TrainConfig& config, const Plan& plan, bool root);

// Process 0's progress sent to every process (a collective with several processes).
void share_resumed(Resumed& resumed, ProcessGroup& group, const torch::Device& device);

// The checkpoint's metadata that does not change during the run: the training flags, the
// dataset's normalisation and the training world's identity (datagen::WorldIdentity).
nlohmann::json run_metadata(const TrainConfig& config, const Plan& plan, const datagen::Manifest& manifest);

// The loop: steps, validations, checkpoints (the last state every validation and every
// checkpoint_every steps, the best at each improvement), the metrics CSV, progress, stops on
// SIGINT/SIGTERM and on stop_after_steps, NaN checks.
TrainResult loop(const TrainConfig& config, const Plan& plan, Setup& setup, ProcessGroup& group);

}  // namespace npe::model::run
