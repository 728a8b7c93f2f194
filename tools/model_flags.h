// tools/model_flags.h: the flags npe-eval and npe-render share (checkpoints, dataset, device)
// and the loading of the checkpoints they name.
#pragma once

#include <string>
#include <vector>

#include "cli.h"
#include "npe/datagen/dataset.h"
#include "npe/model/checkpoint.h"
#include "npe/model/train.h"

namespace npe::tools {

inline void add_model_flags(cxxopts::Options& options) {
  options.add_options()
    ("classic_ckpt", "classic model checkpoint", cxxopts::value<std::string>()->default_value(""))
    ("modern_ckpt", "modern model checkpoint", cxxopts::value<std::string>()->default_value(""))
    ("dataset_prefix", "dataset prefix", cxxopts::value<std::string>()->default_value("data/balls_n4_t60_uniform/balls_n4_t60_uniform"))
    ("device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"));
}

struct LoadedModel {
  std::string name;  // "classic" or "modern"
  model::Checkpoint checkpoint;
};

// Loads the checkpoints named by --classic_ckpt and --modern_ckpt (either, both or none), each
// checked for its model kind and against the dataset's world (npe::Error naming the flag/file).
inline std::vector<LoadedModel> load_models(const cxxopts::ParseResult& r, const torch::Device& device,
                                            const datagen::Manifest& manifest, const std::string& prefix) {
  std::vector<LoadedModel> models;
  for (model::Kind kind : {model::Kind::Classic, model::Kind::Modern}) {
    const std::string name = model::kind_name(kind), flag = name + "_ckpt";
    const std::string path = r[flag].as<std::string>();
    if (path.empty()) continue;
    models.push_back({name, model::load_checkpoint(path, kind, "--" + flag, device)});
    model::check_dataset_matches(models.back().checkpoint, manifest, path, prefix);
  }
  return models;
}

}  // namespace npe::tools
