// npe-results: the experiments table of Chang et al. 2017 (section 4: prediction, generalisation,
// variable mass), from trained checkpoints: model x world x metrics, written as Markdown, CSV and
// JSON, with the paper's two claims checked per world. See README.md ("The paper's experiments").
#include <string>
#include <vector>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/datagen/dataset.h"
#include "npe/model/train.h"
#include "npe/rollout/experiments.h"

namespace {

// "LABEL:CHECKPOINT_DIR:EVAL_PREFIX"
npe::rollout::ExperimentWorld parse_world(const std::string& text) {
  const auto a = text.find(':'), b = a == std::string::npos ? a : text.find(':', a + 1);
  if (b == std::string::npos || a == 0 || b == a + 1 || b + 1 == text.size())
    throw npe::Error(
        fmt::format("--world: expected LABEL:CHECKPOINT_DIR:EVAL_PREFIX (e.g. \"4 balls:runs/n4:data/n4/n4\"), "
                    "found '{}'",
                    text));
  return {text.substr(0, a), text.substr(a + 1, b - a - 1), text.substr(b + 1)};
}

}  // namespace

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-results", [&] {
    cxxopts::Options o("npe-results",
                       "The paper's experiments table: every checkpoint of each world rolled out on the "
                       "world's test scenes and scored (validation MSE, cosine similarity and relative magnitude error "
                       "at two steps, position error), as Markdown, CSV and JSON.");
    o.add_options()(
        "world",
        "LABEL:CHECKPOINT_DIR:EVAL_PREFIX, repeatable: the models CHECKPOINT_DIR/<classic|modern|np|lstm|gns>.best.pt "
        "that exist, evaluated on the dataset EVAL_PREFIX",
        cxxopts::value<std::vector<std::string>>())("num_scenes", "test scenes rolled out per world",
                                                    cxxopts::value<int64_t>()->default_value("200"))(
        "rollout_steps", "predicted steps per rollout", cxxopts::value<int>()->default_value("50"))(
        "steps", "the two rollout steps the table quotes", cxxopts::value<std::vector<int>>()->default_value("10,50"))(
        "long_steps",
        "steps of a second, long-rollout table (cosine, relative error, position error, kinetic-energy drift), "
        "e.g. 50,100,300,600 with --rollout_steps 600 on datasets of 602 frames",
        cxxopts::value<std::vector<int>>())("simulator", "also score npe's simulator on the worlds it can replay",
                                            cxxopts::value<bool>()->default_value("false"))(
        "device", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"))(
        "out_md", "Markdown table", cxxopts::value<std::string>()->default_value("out/results/results.md"))(
        "out_csv", "per-step metrics of every model and world",
        cxxopts::value<std::string>()->default_value("out/results/results.csv"))(
        "out_json", "everything, as JSON", cxxopts::value<std::string>()->default_value("out/results/results.json"))(
        "h,help", "this help");
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    if (!r.count("world")) throw npe::Error("--world: give at least one LABEL:CHECKPOINT_DIR:EVAL_PREFIX");
    const int64_t num_scenes = r["num_scenes"].as<int64_t>();
    const int steps = r["rollout_steps"].as<int>();
    const auto quoted = r["steps"].as<std::vector<int>>();
    if (num_scenes < 1) throw npe::Error(fmt::format("--num_scenes: expected >= 1, found {}", num_scenes));
    if (quoted.size() != 2 || quoted[0] < 1 || quoted[1] > steps || quoted[0] > quoted[1])
      throw npe::Error(fmt::format("--steps: expected two steps 1 <= a <= b <= --rollout_steps ({}), found {}", steps,
                                   fmt::join(quoted, ",")));
    npe::rollout::ExperimentOptions eo;
    eo.num_scenes = num_scenes;
    eo.rollout_steps = steps;
    eo.step_a = quoted[0];
    eo.step_b = quoted[1];
    if (r.count("long_steps")) eo.long_steps = r["long_steps"].as<std::vector<int>>();
    for (int k : eo.long_steps)
      if (k < 1 || k > steps)
        throw npe::Error(fmt::format("--long_steps: expected steps in 1..--rollout_steps ({}), found {}", steps, k));
    eo.simulator = r["simulator"].as<bool>();
    eo.device = npe::model::pick_device(r["device"].as<std::string>());
    std::vector<npe::rollout::ExperimentWorld> worlds;
    for (const auto& w : r["world"].as<std::vector<std::string>>()) worlds.push_back(parse_world(w));
    std::vector<npe::CommandFile> files;
    for (const auto& w : worlds)
      for (const auto& f : npe::datagen::dataset_files(w.prefix)) files.push_back({"--world " + w.label + " file", f});
    for (const char* flag : {"out_md", "out_csv", "out_json"})
      files.push_back({std::string("--") + flag, r[flag].as<std::string>(), true});
    npe::check_distinct_files(files);
    const npe::rollout::ExperimentReport rep = npe::rollout::experiments_table(
        worlds, eo, [](const std::string& line) { fmt::print("npe-results: {}\n", line); });
    const std::string& md = rep.markdown;
    npe::write_file_atomic(r["out_md"].as<std::string>(), md);
    npe::write_file_atomic(r["out_csv"].as<std::string>(), rep.csv);
    npe::write_file_atomic(r["out_json"].as<std::string>(), rep.json.dump(2) + "\n");
    fmt::print("{}\nwrote {}, {}, {}\n", md, r["out_md"].as<std::string>(), r["out_csv"].as<std::string>(),
               r["out_json"].as<std::string>());
    return 0;
  });
}
