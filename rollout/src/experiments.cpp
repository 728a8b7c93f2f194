#include "npe/rollout/experiments.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/core/error.h"
#include "npe/rollout/evaluate.h"
#include "npe/gpu/engine.h"
#include "npe/model/train.h"
#include "npe/rollout/sim_rollout.h"

namespace npe::rollout {
namespace fs = std::filesystem;

NotBetter steps_not_better(const StepMetrics& a, const StepMetrics& b) {
  NotBetter n;
  for (size_t k = 0; k < a.cosine.size(); ++k) {
    if (!(a.cosine[k] > b.cosine[k])) n.cosine.push_back(static_cast<int>(k) + 1);
    if (!(a.rel_mag_error[k] < b.rel_mag_error[k])) n.rel.push_back(static_cast<int>(k) + 1);
  }
  return n;
}

std::string claim_verdict(const std::vector<int>& steps) {
  if (steps.empty()) return "yes";
  std::string s = fmt::format("**no** at {} step{}:", steps.size(), steps.size() > 1 ? "s" : "");
  for (size_t i = 0; i < std::min<size_t>(steps.size(), 4); ++i) s += fmt::format(" {}", steps[i]);
  return s + (steps.size() > 4 ? " ..." : "");
}

ExperimentReport experiments_table(const std::vector<ExperimentWorld>& worlds, const ExperimentOptions& o,
                                   const std::function<void(const std::string&)>& log) {
  if (o.num_scenes < 1) throw Error(fmt::format("num_scenes: expected >= 1, found {}", o.num_scenes));
  const int a = o.step_a, b = o.step_b, steps = o.rollout_steps;
  if (a < 1 || b > steps || a > b)
    throw Error(fmt::format("steps: expected two steps 1 <= a <= b <= rollout_steps ({}), found {},{}", steps, a, b));
  for (int k : o.long_steps)
    if (k < 1 || k > steps)
      throw FieldError("long_steps", fmt::format(": expected steps in 1..rollout_steps ({}), found {}", steps, k));

  // Everything is checked before any rollout runs: datasets, checkpoints, their worlds.
  struct Loaded {
    datagen::Manifest manifest;
    std::vector<LoadedModel> models;
  };
  std::vector<Loaded> loaded;
  for (const ExperimentWorld& w : worlds) {
    Loaded l{datagen::read_manifest(w.prefix), {}};
    std::vector<ModelSource> sources;
    for (model::Kind kind : kAllKinds) {
      const fs::path path = fs::path(w.checkpoints) / (model::kind_name(kind) + ".best.pt");
      if (fs::exists(path)) sources.push_back({kind, path.string(), "world '" + w.label + "'"});
    }
    if (sources.empty())
      throw FieldError("world", fmt::format(" '{}': no checkpoint in '{}' (expected classic.best.pt, modern.best.pt, "
                                            "np.best.pt, lstm.best.pt or gns.best.pt)",
                                            w.label, w.checkpoints));
    l.models = load_models(sources, o.device, l.manifest, w.prefix);
    loaded.push_back(std::move(l));
  }

  ExperimentReport rep;
  rep.markdown = fmt::format("| world | model | samples | val MSE | cos@{0} | cos@{1} | rel@{0} | rel@{1} | pos@{1} px "
                             "|\n|---|---|---|---|---|---|---|---|---|\n",
                             a, b);
  rep.csv = "world,model,step,cosine,rel_mag_error,pos_error_px,energy_drift\n";
  std::string long_md = "| world | model | step | cos | rel | pos px | KE drift |\n|---|---|---|---|---|---|---|\n";
  // The paper's claims (section 4): the NPEs beat the baselines; here also modern beats classic.
  const std::pair<const char*, const char*> kClaims[] = {
      {"modern", "classic"}, {"classic", "np"}, {"classic", "lstm"}, {"modern", "np"}, {"modern", "lstm"}};
  std::string claims = "| world |";
  for (const auto& [x, y] : kClaims) claims += fmt::format(" {} beats {} |", x, y);
  claims += "\n|---|---|---|---|---|---|\n";
  rep.json = {{"num_scenes", o.num_scenes}, {"rollout_steps", steps}, {"worlds", nlohmann::json::array()}};
  for (size_t i = 0; i < worlds.size(); ++i) {
    const ExperimentWorld& w = worlds[i];
    const auto& manifest = loaded[i].manifest;
    const auto test = datagen::load_split(w.prefix, manifest, "test");
    const auto val = datagen::load_split(w.prefix, manifest, "val");
    const auto val_t = model::model_states(val, manifest, o.device);
    const int64_t n = std::min(o.num_scenes, test.scenes);
    std::vector<Score> scores;
    for (const auto& m : loaded[i].models)
      scores.push_back(score_model(m.name, model::make_predictor(m.checkpoint.net, o.device, 4096, test, manifest),
                                   m.checkpoint.net.get(), manifest, test, val_t, n, steps));
    std::string no_simulator;
    if (o.simulator) {
      no_simulator = replay_unsupported(manifest);
      if (no_simulator.empty())
        scores.push_back(score_simulator(manifest, val, test, n, steps, o.device.is_cuda() && gpu::cuda_available()));
      else if (log)
        log(fmt::format("{}: no simulator rows: {}", w.label, no_simulator));
    }
    scores.push_back(score_model("constant_velocity", constant_velocity(), nullptr, manifest, test, val_t, n, steps));
    nlohmann::json jw = {{"label", w.label},
                         {"checkpoints", w.checkpoints},
                         {"dataset_prefix", w.prefix},
                         {"num_scenes", n},
                         {"models", nlohmann::json::object()}};
    if (!no_simulator.empty()) jw["simulator_unsupported"] = no_simulator;
    // each model's training budget (npe-train --total_samples), from its checkpoint
    std::map<std::string, int64_t> budget;
    for (const auto& m : loaded[i].models) {
      const nlohmann::json& meta = m.checkpoint.meta;
      if (meta.contains("train") && meta["train"].contains("total_samples") &&
          meta["train"]["total_samples"].is_number_integer())
        budget[m.name] = meta["train"]["total_samples"].get<int64_t>();
    }
    for (const auto& s : scores) {
      const auto& m = s.metrics;
      const std::string model = s.name == "constant_velocity" ? "constant velocity" : s.name;
      const auto samples = budget.find(s.name);
      rep.markdown += fmt::format("| {} | {} | {} | {:.3e} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.1f} |\n", w.label,
                                  model, samples == budget.end() ? "" : fmt::format("{:.3g} M", samples->second / 1e6),
                                  s.val_mse, m.cosine[a - 1], m.cosine[b - 1], m.rel_mag_error[a - 1],
                                  m.rel_mag_error[b - 1], m.pos_error_px[b - 1]);
      for (int k = 0; k < steps; ++k)
        rep.csv += fmt::format("{},{},{},{:.6g},{:.6g},{:.6g},{:.6g}\n", w.label, s.name, k + 1, m.cosine[k],
                               m.rel_mag_error[k], m.pos_error_px[k], m.energy_drift[k]);
      for (int k : o.long_steps)
        long_md += fmt::format("| {} | {} | {} | {:.4f} | {:.4f} | {:.1f} | {:+.3f} |\n", w.label, model, k,
                               m.cosine[k - 1], m.rel_mag_error[k - 1], m.pos_error_px[k - 1], m.energy_drift[k - 1]);
      jw["models"][s.name] = s.to_json();
      if (samples != budget.end()) jw["models"][s.name]["train_samples"] = samples->second;
    }
    auto find = [&](const std::string& name) -> const Score* {
      for (const auto& s : scores)
        if (s.name == name) return &s;
      return nullptr;
    };
    nlohmann::json checks = nlohmann::json::object();
    claims += "| " + w.label + " |";
    for (const auto& [winner, loser] : kClaims) {
      const auto *x = find(winner), *y = find(loser);
      if (!x || !y) {
        claims += " n/a |";
        continue;
      }
      const NotBetter nb = steps_not_better(x->metrics, y->metrics);
      checks[std::string(winner) + ">" + loser] = {{"cosine_not_higher_at", nb.cosine},
                                                   {"rel_error_not_lower_at", nb.rel}};
      claims += fmt::format(" cos {}; rel {} |", claim_verdict(nb.cosine), claim_verdict(nb.rel));
    }
    claims += "\n";
    jw["claims"] = checks;  // per claim, the steps where the winner is not better
    rep.json["worlds"].push_back(jw);
    if (log) log(fmt::format("{} ({} models, {} test scenes of {})", w.label, loaded[i].models.size(), n, w.prefix));
  }
  rep.markdown += fmt::format(
                      "\nAt every rollout step 1..{}: higher cosine similarity (cos) and lower relative magnitude "
                      "error (rel); \"no at k steps\" lists the first steps where not.\n\n",
                      steps) +
                  claims;
  if (!o.long_steps.empty())
    rep.markdown += fmt::format("\nLong rollouts, at steps {}: KE drift is the relative change of the rollouts' "
                                "kinetic energy, summed over the scenes, since frame 1 (0: conserved, as elastic "
                                "balls without friction do).\n\n",
                                fmt::join(o.long_steps, ", ")) +
                    long_md;
  return rep;
}

}  // namespace npe::rollout
