// npe/model/checkpoint.h: checkpoints that alone are enough for npe-eval and npe-render.
//
// A checkpoint (torch::serialize archive, written atomically) holds:
//   "npe_meta"  JSON string: format "npe-checkpoint" v1, model config (kind, sizes), training
//               hyper-parameters, step, samples_seen, best validation loss, elapsed seconds,
//               the dataset's normalisation (pos_scale, vel_scale, step_scale, radius), and
//               "world_identity": the training world (datagen::WorldIdentity)
//   "model"     weights and buffers (including the input standardisation)
//   "optimizer" optimizer state (absent in weight-only checkpoints)
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/datagen/dataset.h"
#include "npe/datagen/world_identity.h"
#include "npe/model/model.h"

namespace npe::model {

struct Checkpoint {
  nlohmann::json meta;  // everything in "npe_meta"
  ModelConfig config;
  std::shared_ptr<NPEImpl> net;  // on the requested device, in eval mode
  int64_t step = 0;
};

// Writes `path` atomically (temp file + rename). `meta` must contain "model" (ModelConfig json);
// format fields are added here.
void save_checkpoint(const std::string& path, NPEImpl& net, nlohmann::json meta, torch::optim::Optimizer* optimizer);

// Loads and validates a checkpoint. `expected` rejects a checkpoint of the other model kind;
// `label` names the file's role in errors (a tool passes its flag, e.g. "--classic_ckpt"). Throws npe::Error naming the
// file and what is wrong: missing, not an npe checkpoint, wrong kind, weights not matching.
Checkpoint load_checkpoint(const std::string& path, std::optional<Kind> expected, const std::string& label,
                           const torch::Device& device);

// As load_checkpoint, from a checkpoint's bytes already in memory, onto the CPU (`name` is used in
// errors).
Checkpoint parse_checkpoint(const std::string& bytes, const std::string& name, std::optional<Kind> expected);

// Compares the checkpoint's training world (meta "world_identity", datagen::world_identity of its
// training dataset) with the dataset's, field by field (datagen::identity_differences; the ball
// count may differ). A field named in `allowed` ("all": every field, and a checkpoint without an
// identity) may differ: such differences are returned, for the caller to record. Throws
// npe::Error naming the checkpoint, the dataset, the field and both values for any other
// difference, and when the checkpoint records no identity.
std::vector<datagen::IdentityDifference> check_dataset_matches(const Checkpoint& ck, const datagen::Manifest& manifest,
                                                               const std::string& checkpoint_path,
                                                               const std::string& dataset_prefix,
                                                               const std::set<std::string>& allowed = {});

// Restores the optimizer state saved in `path` (used by --resume).
void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer, const torch::Device& device);

}  // namespace npe::model
