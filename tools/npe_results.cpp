// npe-results: the experiments table of Chang et al. 2017 (section 4: prediction, generalisation,
// variable mass), from trained checkpoints: model x world x metrics, written as Markdown, CSV and
// JSON, with the paper's two claims checked per world. See README.md ("The paper's experiments").
#include <filesystem>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "evaluate.h"
#include "model_flags.h"
#include "npe/core/error.h"
#include "npe/core/io.h"

namespace fs = std::filesystem;

namespace {

struct World {
  std::string label, checkpoints, prefix;
};

// "LABEL:CHECKPOINT_DIR:EVAL_PREFIX"
World parse_world(const std::string& text) {
  const auto a = text.find(':'), b = a == std::string::npos ? a : text.find(':', a + 1);
  if (b == std::string::npos || a == 0 || b == a + 1 || b + 1 == text.size())
    throw npe::Error(fmt::format("--world: expected LABEL:CHECKPOINT_DIR:EVAL_PREFIX (e.g. \"4 balls:runs/n4:data/n4/n4\"), "
                                 "found '{}'", text));
  return {text.substr(0, a), text.substr(a + 1, b - a - 1), text.substr(b + 1)};
}

// The steps (1-based) at which `a` is not better than `b`: cosine similarity not higher, and
// relative magnitude error not lower.
struct NotBetter {
  std::vector<int> cosine, rel;
};
NotBetter steps_not_better(const npe::rollout::StepMetrics& a, const npe::rollout::StepMetrics& b) {
  NotBetter n;
  for (size_t k = 0; k < a.cosine.size(); ++k) {
    if (!(a.cosine[k] > b.cosine[k])) n.cosine.push_back(static_cast<int>(k) + 1);
    if (!(a.rel_mag_error[k] < b.rel_mag_error[k])) n.rel.push_back(static_cast<int>(k) + 1);
  }
  return n;
}

// "yes", or "no at 3 steps: 30 34 36" (the first few).
std::string verdict(const std::vector<int>& steps) {
  if (steps.empty()) return "yes";
  std::string s = fmt::format("**no** at {} step{}:", steps.size(), steps.size() > 1 ? "s" : "");
  for (size_t i = 0; i < std::min<size_t>(steps.size(), 4); ++i) s += fmt::format(" {}", steps[i]);
  return s + (steps.size() > 4 ? " ..." : "");
}

}  // namespace

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-results", [&] {
    cxxopts::Options o("npe-results", "The paper's experiments table: every checkpoint of each world rolled out on the "
                       "world's test scenes and scored (validation MSE, cosine similarity and relative magnitude error "
                       "at two steps, position error), as Markdown, CSV and JSON.");
    o.add_options()
      ("world", "LABEL:CHECKPOINT_DIR:EVAL_PREFIX, repeatable: the models CHECKPOINT_DIR/<classic|modern|np|lstm>.best.pt "
       "that exist, evaluated on the dataset EVAL_PREFIX", cxxopts::value<std::vector<std::string>>())
      ("num_scenes", "test scenes rolled out per world", cxxopts::value<int64_t>()->default_value("200"))
      ("rollout_steps", "predicted steps per rollout", cxxopts::value<int>()->default_value("50"))
      ("steps", "the two rollout steps the table quotes", cxxopts::value<std::vector<int>>()->default_value("10,50"))
      ("device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"))
      ("out_md", "Markdown table", cxxopts::value<std::string>()->default_value("out/results/results.md"))
      ("out_csv", "per-step metrics of every model and world", cxxopts::value<std::string>()->default_value("out/results/results.csv"))
      ("out_json", "everything, as JSON", cxxopts::value<std::string>()->default_value("out/results/results.json"))
      ("h,help", "this help");
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) { fmt::print("{}\n", o.help()); return 0; }
    if (!r.count("world")) throw npe::Error("--world: give at least one LABEL:CHECKPOINT_DIR:EVAL_PREFIX");
    const int64_t num_scenes = r["num_scenes"].as<int64_t>();
    const int steps = r["rollout_steps"].as<int>();
    const auto quoted = r["steps"].as<std::vector<int>>();
    if (num_scenes < 1) throw npe::Error(fmt::format("--num_scenes: expected >= 1, found {}", num_scenes));
    if (quoted.size() != 2 || quoted[0] < 1 || quoted[1] > steps || quoted[0] > quoted[1])
      throw npe::Error(fmt::format("--steps: expected two steps 1 <= a <= b <= --rollout_steps ({}), found {}", steps,
                                   fmt::join(quoted, ",")));
    const auto device = npe::model::pick_device(r["device"].as<std::string>());

    // Everything is checked before any rollout runs: worlds, datasets, checkpoints.
    std::vector<World> worlds;
    for (const auto& w : r["world"].as<std::vector<std::string>>()) worlds.push_back(parse_world(w));
    struct Loaded {
      npe::datagen::Manifest manifest;
      std::vector<npe::tools::LoadedModel> models;
    };
    std::vector<Loaded> loaded;
    for (const World& w : worlds) {
      Loaded l{npe::datagen::read_manifest(w.prefix), {}};
      for (npe::model::Kind kind : npe::tools::kAllKinds) {
        const fs::path path = fs::path(w.checkpoints) / (npe::model::kind_name(kind) + ".best.pt");
        if (!fs::exists(path)) continue;
        l.models.push_back({npe::model::kind_name(kind), npe::model::load_checkpoint(path.string(), kind, "--world", device)});
        npe::model::check_dataset_matches(l.models.back().checkpoint, l.manifest, path.string(), w.prefix);
      }
      if (l.models.empty())
        throw npe::Error(fmt::format("--world '{}': no checkpoint in '{}' (expected classic.best.pt, modern.best.pt, "
                                     "np.best.pt or lstm.best.pt)", w.label, w.checkpoints));
      loaded.push_back(std::move(l));
    }

    const int a = quoted[0], b = quoted[1];
    std::string md = fmt::format(
        "| world | model | val MSE | cos@{0} | cos@{1} | rel@{0} | rel@{1} | pos@{1} px |\n|---|---|---|---|---|---|---|---|\n", a, b);
    std::string csv = "world,model,step,cosine,rel_mag_error,pos_error_px\n";
    // The paper's claims (section 4): the NPEs beat the baselines; here also modern beats classic.
    const std::pair<const char*, const char*> kClaims[] = {
        {"modern", "classic"}, {"classic", "np"}, {"classic", "lstm"}, {"modern", "np"}, {"modern", "lstm"}};
    std::string claims = "| world |";
    for (const auto& [x, y] : kClaims) claims += fmt::format(" {} beats {} |", x, y);
    claims += "\n|---|---|---|---|---|---|\n";
    nlohmann::json out = {{"num_scenes", num_scenes}, {"rollout_steps", steps}, {"worlds", nlohmann::json::array()}};
    for (size_t i = 0; i < worlds.size(); ++i) {
      const World& w = worlds[i];
      const auto& manifest = loaded[i].manifest;
      const auto test = npe::datagen::load_split(w.prefix, manifest, "test");
      const auto val_t = npe::model::to_tensor(npe::datagen::load_split(w.prefix, manifest, "val"), device);
      const int64_t n = std::min(num_scenes, test.scenes);
      std::vector<npe::tools::Score> scores;
      for (const auto& m : loaded[i].models)
        scores.push_back(npe::tools::score_model(m.name, npe::model::make_predictor(m.checkpoint.net, device),
                                                 m.checkpoint.net.get(), manifest, test, val_t, n, steps));
      scores.push_back(npe::tools::score_model("constant_velocity", npe::rollout::constant_velocity(), nullptr, manifest,
                                               test, val_t, n, steps));
      nlohmann::json jw = {{"label", w.label}, {"checkpoints", w.checkpoints}, {"dataset_prefix", w.prefix},
                           {"num_scenes", n}, {"models", nlohmann::json::object()}};
      for (const auto& s : scores) {
        const auto& m = s.metrics;
        md += fmt::format("| {} | {} | {:.3e} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.1f} |\n", w.label,
                          s.name == "constant_velocity" ? "constant velocity" : s.name, s.val_mse, m.cosine[a - 1],
                          m.cosine[b - 1], m.rel_mag_error[a - 1], m.rel_mag_error[b - 1], m.pos_error_px[b - 1]);
        for (int k = 0; k < steps; ++k)
          csv += fmt::format("{},{},{},{:.6g},{:.6g},{:.6g}\n", w.label, s.name, k + 1, m.cosine[k], m.rel_mag_error[k],
                             m.pos_error_px[k]);
        jw["models"][s.name] = s.to_json();
      }
      auto find = [&](const std::string& name) -> const npe::tools::Score* {
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
        checks[std::string(winner) + ">" + loser] = {{"cosine_not_higher_at", nb.cosine}, {"rel_error_not_lower_at", nb.rel}};
        claims += fmt::format(" cos {}; rel {} |", verdict(nb.cosine), verdict(nb.rel));
      }
      claims += "\n";
      jw["claims"] = checks;  // per claim, the steps where the winner is not better
      out["worlds"].push_back(jw);
      fmt::print("npe-results: {} ({} models, {} test scenes of {})\n", w.label, loaded[i].models.size(), n, w.prefix);
    }
    md += fmt::format("\nAt every rollout step 1..{}: higher cosine similarity (cos) and lower relative magnitude error "
                      "(rel); \"no at k steps\" lists the first steps where not.\n\n", steps) + claims;
    npe::write_file_atomic(r["out_md"].as<std::string>(), md);
    npe::write_file_atomic(r["out_csv"].as<std::string>(), csv);
    npe::write_file_atomic(r["out_json"].as<std::string>(), out.dump(2) + "\n");
    fmt::print("{}\nwrote {}, {}, {}\n", md, r["out_md"].as<std::string>(), r["out_csv"].as<std::string>(),
               r["out_json"].as<std::string>());
    return 0;
  });
}
