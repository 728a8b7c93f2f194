// tools/model_flags.h: the flags npe-eval and npe-render share (checkpoints, dataset, device)
// and the loading of the checkpoints they name.
#pragma once

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/datagen/dataset.h"
#include "npe/datagen/world_identity.h"
#include "npe/rollout/evaluate.h"
#include "npe/rollout/sim_rollout.h"
#include "npe/rollout/sysid.h"
#include "npe/model/checkpoint.h"
#include "npe/model/train.h"

namespace npe::tools {

// "width, height, ..." : the world identity's compared fields.
inline std::string world_fields_text() {
  std::string t;
  for (const auto& f : datagen::identity_fields()) t += (t.empty() ? "" : ", ") + f;
  return t;
}

// --allow_world_transfer's field names, checked.
inline std::set<std::string> allowed_transfers(const cxxopts::ParseResult& r) {
  std::set<std::string> out;
  std::stringstream items(r["allow_world_transfer"].as<std::string>());
  std::string f;
  const auto& known = datagen::identity_fields();
  while (std::getline(items, f, ',')) {
    f.erase(0, f.find_first_not_of(" \t"));  // "masses, restitution" as well as "masses,restitution"
    f.erase(f.find_last_not_of(" \t") + 1);
    if (f.empty()) continue;
    if (f != "all" && std::find(known.begin(), known.end(), f) == known.end())
      throw Error(fmt::format("--allow_world_transfer: expected field names among {} or all, found '{}'",
                              world_fields_text(), f));
    out.insert(f);
  }
  return out;
}

inline void add_model_flags(cxxopts::Options& options) {
  options.add_options()("classic_ckpt", "classic model checkpoint", cxxopts::value<std::string>()->default_value(""))(
      "modern_ckpt", "modern model checkpoint", cxxopts::value<std::string>()->default_value(""))(
      "np_ckpt", "NP baseline checkpoint (npe-train --model np)", cxxopts::value<std::string>()->default_value(""))(
      "lstm_ckpt", "LSTM baseline checkpoint (npe-train --model lstm)",
      cxxopts::value<std::string>()->default_value(""))("gns_ckpt",
                                                        "graph network simulator checkpoint (npe-train --model gns)",
                                                        cxxopts::value<std::string>()->default_value(""))(
      "dataset_prefix", "dataset prefix",
      cxxopts::value<std::string>()->default_value("data/balls_n4_t60_uniform/balls_n4_t60_uniform"))(
      "device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"))(
      "allow_world_transfer",
      "world fields in which the dataset may differ from the checkpoints' training world, "
      "comma-separated (" +
          world_fields_text() +
          ", or all); the output records each difference; the ball count "
          "may always differ",
      cxxopts::value<std::string>()->default_value(""));
}

using rollout::kAllKinds;
using rollout::LoadedModel;

// The files a command reads and writes, checked before any work: no output may be an input or
// another output (npe::check_distinct_files). `outputs` are flags naming files; the inputs are the
// dataset's files (when `prefix` is given), the model flags' checkpoints and --sim_masses.
inline void check_command_files(const cxxopts::ParseResult& r, const std::string& prefix,
                                const std::vector<std::string>& outputs, std::vector<CommandFile> files = {}) {
  if (!prefix.empty())
    for (const auto& f : datagen::dataset_files(prefix)) files.push_back({"--dataset_prefix file", f, false});
  for (model::Kind kind : kAllKinds) {
    const std::string flag = model::kind_name(kind) + "_ckpt";
    if (r.count(flag) && !r[flag].as<std::string>().empty()) files.push_back({"--" + flag, r[flag].as<std::string>()});
  }
  if (r.count("sim_masses") && !r["sim_masses"].as<std::string>().empty())
    files.push_back({"--sim_masses", r["sim_masses"].as<std::string>()});
  for (const std::string& flag : outputs) files.push_back({"--" + flag, r[flag].as<std::string>(), true});
  check_distinct_files(files);
}

// Whether any of --classic_ckpt, --modern_ckpt, --np_ckpt and --lstm_ckpt is given.
inline bool any_model(const cxxopts::ParseResult& r) {
  for (model::Kind kind : kAllKinds)
    if (!r[model::kind_name(kind) + "_ckpt"].as<std::string>().empty()) return true;
  return false;
}

// Loads the checkpoints named by --classic_ckpt, --modern_ckpt, --np_ckpt and --lstm_ckpt (any of
// them, or none), each checked for its model kind and against the dataset's world, allowing the
// fields of --allow_world_transfer to differ (npe::Error naming the flag/file).
inline std::vector<LoadedModel> load_models(const cxxopts::ParseResult& r, const torch::Device& device,
                                            const datagen::Manifest& manifest, const std::string& prefix) {
  std::vector<rollout::ModelSource> sources;
  for (model::Kind kind : kAllKinds) {
    const std::string flag = model::kind_name(kind) + "_ckpt";
    const std::string path = r[flag].as<std::string>();
    if (!path.empty()) sources.push_back({kind, path, "--" + flag});
  }
  return rollout::load_models(sources, device, manifest, prefix, allowed_transfers(r));
}

// --simulator and --sim_masses, shared by npe-eval (the simulator's "row") and npe-render (its
// "panel").
inline void add_simulator_flags(cxxopts::Options& options, const std::string& what) {
  options.add_options()("simulator",
                        "add a " + what +
                            " of the engine (the differentiable simulator's forward pass) rolled out from "
                            "the same ground-truth frames (--simulator=false: none)",
                        cxxopts::value<bool>()->default_value("true"))(
      "sim_masses", "npe-sysid JSON whose identified masses the simulator " + what + " uses (default: the dataset's)",
      cxxopts::value<std::string>()->default_value(""));
}

// Whether the simulator runs: `wanted` (--simulator and what the tool needs) unless the engine
// cannot replay the dataset, which is an error naming --simulator when the flag was given and a
// one-line note ("<tool>: no simulator <what>: <why>") otherwise.
inline bool simulator_enabled(const cxxopts::ParseResult& r, bool wanted, const datagen::Manifest& manifest,
                              const std::string& prefix, const std::string& tool, const std::string& what) {
  if (!wanted) return false;
  const std::string why = rollout::replay_unsupported(manifest);
  if (why.empty()) return true;
  if (r.count("simulator")) throw Error(fmt::format("--simulator: the engine cannot replay {}: {}", prefix, why));
  fmt::print(stderr, "{}: no simulator {}: {}\n", tool, what, why);
  return false;
}

// The masses --sim_masses names for the first `scenes` scenes of `split`, checked (empty when the
// flag is not given: the dataset's masses serve).
inline std::vector<std::vector<double>> sim_masses(const cxxopts::ParseResult& r, int64_t scenes, int64_t num_balls,
                                                   const std::string& split) {
  const std::string path = r["sim_masses"].as<std::string>();
  if (path.empty()) return {};
  return rollout::read_identified_masses(path, "--sim_masses", scenes, num_balls, split);
}

}  // namespace npe::tools
