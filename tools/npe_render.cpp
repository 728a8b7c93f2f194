// npe-render: side-by-side rollout videos (ground truth | classic | modern | simulator), videos of a dataset's
// scenes alone (either engine, obstacles drawn), and the training-curve plot. See README.md.
#include <filesystem>
#include <sstream>

#include "cli.h"
#include "model_flags.h"
#include "npe/core/error.h"
#include "npe/core/interrupt.h"
#include "npe/core/io.h"
#include "npe/model/metrics_csv.h"
#include "npe/rollout/sim_rollout.h"
#include "npe/rollout/plot.h"
#include "npe/rollout/rollout.h"
#include "npe/rollout/video.h"

namespace fs = std::filesystem;

namespace {
// The curves of an npe-train metrics CSV (npe/model/metrics_csv.h).
struct Curve {
  std::vector<double> samples, train, val;
};
Curve read_metrics_csv(const std::string& path) {
  Curve c;
  for (const auto& r : npe::model::parse_metrics_csv(npe::read_file(path), fmt::format("--metrics_csv '{}'", path))) {
    c.samples.push_back(static_cast<double>(r.samples_seen));
    c.train.push_back(r.train_loss);
    c.val.push_back(r.val_loss);
  }
  if (c.samples.empty()) throw npe::Error(fmt::format("--metrics_csv '{}': no rows", path));
  return c;
}
}  // namespace

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-render", [&] {
    cxxopts::Options o("npe-render",
                       "Comparison videos of rollouts (ground truth | classic | modern | simulator), videos of "
                       "a dataset's scenes (no checkpoint given: either engine, obstacles drawn) and "
                       "training-curve plots.");
    o.add_options()("num_scenes", "scenes to render (0: videos off)", cxxopts::value<int64_t>()->default_value("2"))(
        "split", "split whose scenes are rendered: train, val or test",
        cxxopts::value<std::string>()->default_value("test"))("rollout_steps", "predicted steps per rollout",
                                                              cxxopts::value<int>()->default_value("50"))(
        "out_dir", "output folder", cxxopts::value<std::string>()->default_value("out/render"))(
        "metrics_csv", "npe-train metrics CSVs for the training-curve plot (comma-separated)",
        cxxopts::value<std::vector<std::string>>()->default_value(""))(
        "curves_png", "training-curve plot (default <out_dir>/training_curves.png)",
        cxxopts::value<std::string>()->default_value(""))("h,help", "this help");
    npe::tools::add_model_flags(o);
    npe::tools::add_simulator_flags(o, "panel");  // with checkpoints only
    auto r = npe::tools::parse(o, argc, argv);
    npe::install_interrupt_handlers();  // SIGINT/SIGTERM: stop between steps, remove unfinished outputs
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    const fs::path out_dir = r["out_dir"].as<std::string>();
    const int64_t num_scenes = r["num_scenes"].as<int64_t>();
    int steps = r["rollout_steps"].as<int>();
    if (num_scenes < 0) throw npe::Error(fmt::format("--num_scenes: expected >= 0, found {}", num_scenes));

    // training curves
    std::vector<std::string> csvs;
    for (const auto& s : r["metrics_csv"].as<std::vector<std::string>>())
      if (!s.empty()) csvs.push_back(s);
    if (!csvs.empty()) {
      npe::rollout::Panel p{"Training curves", "samples seen", "MSE (normalised velocity)", true, {}};
      int color = 1;
      for (const auto& path : csvs) {
        const Curve c = read_metrics_csv(path);
        const std::string label = fs::path(path).stem().string();
        p.series.push_back({label + " train", c.samples, c.train, color, true});
        p.series.push_back({label + " val", c.samples, c.val, color, false});
        ++color;
      }
      std::string png = r["curves_png"].as<std::string>();
      if (png.empty()) png = (out_dir / "training_curves.png").string();
      std::vector<npe::CommandFile> files = {{"--curves_png", png, true}};
      for (const auto& path : csvs) files.push_back({"--metrics_csv", path});
      npe::check_distinct_files(files);
      npe::rollout::write_plot_png(png, {p}, 900, 560);
      fmt::print("npe-render: wrote {}\n", png);
    }
    if (num_scenes == 0) return 0;

    // rollout videos
    const std::string prefix = r["dataset_prefix"].as<std::string>();
    const auto device = npe::model::pick_device(r["device"].as<std::string>());
    const auto manifest = npe::datagen::read_manifest(prefix);
    npe::tools::check_command_files(r, prefix, {});
    const std::string split = r["split"].as<std::string>();
    if (split != "train" && split != "val" && split != "test")
      throw npe::Error(fmt::format("--split: expected train, val or test, found '{}'", split));
    const auto test = npe::datagen::load_split(prefix, manifest, split);
    if (num_scenes > test.scenes)
      throw npe::Error(
          fmt::format("--num_scenes: expected at most {} ({} scenes), found {}", test.scenes, split, num_scenes));
    if (!r.count("rollout_steps"))
      steps = std::min<int>(steps, static_cast<int>(test.timesteps) - 2);  // short datasets
    if (steps < 1 || steps > test.timesteps - 2)
      throw npe::Error(fmt::format("--rollout_steps: expected 1 to {} (the dataset has {} frames), found {}",
                                   test.timesteps - 2, test.timesteps, steps));
    std::vector<std::pair<std::string, npe::datagen::Trajectories>> rollouts;
    for (const auto& m : npe::tools::load_models(r, device, manifest, prefix)) {
      for (const auto& d : m.transfers)  // the videos cannot hold it: said on stdout
        fmt::print("npe-render: {} model: world transfer of {}: trained {}, dataset {}\n", m.name, d.field, d.first,
                   d.second);
      rollouts.emplace_back(
          m.name, npe::rollout::rollout(test, num_scenes, steps, manifest.step_scale(),
                                        npe::model::make_predictor(m.checkpoint.net, device, 4096, test, manifest)));
    }
    std::vector<std::pair<std::string, npe::datagen::Trajectories>> sim;
    if (npe::tools::simulator_enabled(r, !rollouts.empty() && r["simulator"].as<bool>(), manifest, prefix, "npe-render",
                                      "panel")) {
      const auto masses = npe::tools::sim_masses(r, num_scenes, manifest.world.num_balls, split);
      sim.emplace_back("simulator", npe::rollout::simulator_rollout(manifest, test, num_scenes, steps,
                                                                    device.is_cuda() && npe::gpu::cuda_available(),
                                                                    masses.empty() ? nullptr : &masses));
    }
    npe::rollout::VideoOptions vo;
    vo.box_width = manifest.world.width;
    vo.box_height = manifest.world.height;
    vo.radius = manifest.world.radius;
    vo.pos_scale = manifest.pos_scale();
    vo.obstacles = manifest.world.obstacles;
    vo.fps = std::max(1, static_cast<int>(std::lround(1.0 / manifest.world.frame_dt)));
    for (double m : manifest.world.mass_choices) vo.max_mass = std::max(vo.max_mass, m);
    std::string stem = rollouts.empty() ? split : "rollout_gt";
    for (auto& [name, _] : rollouts) stem += "_" + name;
    if (!sim.empty()) stem += "_sim";
    const std::string engine = manifest.engine == "box2d"     ? "Box2D"
                               : manifest.engine == "npe-gpu" ? "npe engine"
                                                              : manifest.engine;
    for (int64_t s = 0; s < num_scenes; ++s) {
      if (!test.walls.empty())  // a walls world: the scene's own blocks
        vo.obstacles = npe::datagen::recorded_walls(test.walls_of(s), manifest.pos_scale()).obstacles();
      std::vector<npe::rollout::VideoPanel> panels{{rollouts.empty() ? fmt::format("{} scene {} ({})", split, s, engine)
                                                                     : fmt::format("ground truth ({})", engine),
                                                    &test, s}};
      for (auto& [name, traj] : rollouts)
        panels.push_back({name == "classic" || name == "modern" ? name + " NPE" : name + " baseline", &traj, s});
      for (auto& [name, traj] : sim) panels.push_back({"simulator (npe engine)", &traj, s});
      const std::string path = (out_dir / fmt::format("{}_scene{}.mp4", stem, s)).string();
      auto [w, h] = npe::rollout::write_comparison_video(path, panels, steps + 2, vo);
      fmt::print("npe-render: wrote {} ({}x{}, {} frames)\n", path, w, h, steps + 2);
    }
    return 0;
  });
}
