// npe/model/checkpoint.h: checkpoints that alone are enough for npe-eval and npe-render.
//
// A checkpoint (torch::serialize archive, written atomically) holds:
//   "npe_meta"  JSON string: format "npe-checkpoint" v1, model config (kind, sizes), training
//               hyper-parameters, step, samples_seen, best validation loss, elapsed seconds,
//               and the dataset's normalisation (pos_scale, vel_scale, step_scale, radius)
//   "model"     weights and buffers (including the input standardisation)
//   "optimizer" optimizer state (absent in weight-only checkpoints)
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/datagen/dataset.h"
#include "npe/model/model.h"

namespace npe::model {

struct Checkpoint {
  nlohmann::json meta;                // everything in "npe_meta"
  ModelConfig config;
  std::shared_ptr<NPEImpl> net;       // on the requested device, in eval mode
  int64_t step = 0;
};

// Writes `path` atomically (temp file + rename). `meta` must contain "model" (ModelConfig json);
// format fields are added here.
void save_checkpoint(const std::string& path, NPEImpl& net, nlohmann::json meta,
                     torch::optim::Optimizer* optimizer);

// Loads and validates a checkpoint. `expected` (with the flag that named the file, e.g.
// "--classic_ckpt") rejects a checkpoint of the other model kind. Throws npe::Error naming the
// file and what is wrong: missing, not an npe checkpoint, wrong kind, weights not matching.
Checkpoint load_checkpoint(const std::string& path, std::optional<Kind> expected,
                           const std::string& flag, const torch::Device& device);

// As load_checkpoint, from a checkpoint's bytes already in memory, onto the CPU (`name` is used in
// errors).
Checkpoint parse_checkpoint(const std::string& bytes, const std::string& name, std::optional<Kind> expected);

// Throws npe::Error if the checkpoint's training world (box, radius, velocity scale, frame
// interval) differs from the dataset's: the model's inputs and outputs would be in other units.
// The ball count may differ (generalisation to other counts is a use of the model).
void check_dataset_matches(const Checkpoint& ck, const datagen::Manifest& manifest,
                           const std::string& checkpoint_path, const std::string& dataset_prefix);

// Restores the optimizer state saved in `path` (used by --resume).
void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer,
                          const torch::Device& device);

}  // namespace npe::model
