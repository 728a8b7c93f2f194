// npe-eval: autoregressive rollouts of trained NPEs on test scenes, scored per step, plus the
// one-step validation MSE of each model and of the constant-velocity baseline. See README.md.
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "model_flags.h"
#include "npe/core/error.h"
#include "npe/core/interrupt.h"
#include "npe/core/io.h"
#ifdef NPE_HAVE_MEDIA
#include "npe/rollout/plot.h"
#endif
#include "npe/rollout/sim_rollout.h"
#include "npe/rollout/rollout.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-eval", [&] {
    cxxopts::Options o("npe-eval", "Score NPE rollouts on the test split (cosine similarity, relative "
                                   "magnitude error, position error per step) against the constant-velocity baseline.");
    o.add_options()("num_scenes", "test scenes to roll out", cxxopts::value<int64_t>()->default_value("200"))(
        "rollout_steps", "predicted steps per rollout", cxxopts::value<int>()->default_value("50"))(
        "out_png", "metrics plot", cxxopts::value<std::string>()->default_value("out/eval/rollout_metrics.png"))(
        "out_json", "metrics as JSON", cxxopts::value<std::string>()->default_value("out/eval/rollout_metrics.json"))(
        "out_csv", "per-step metrics as CSV",
        cxxopts::value<std::string>()->default_value("out/eval/rollout_metrics.csv"))("h,help", "this help");
    npe::tools::add_model_flags(o);
    npe::tools::add_simulator_flags(o, "row");
    auto r = npe::tools::parse(o, argc, argv);
    npe::install_interrupt_handlers();  // SIGINT/SIGTERM: stop between steps, remove unfinished outputs
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    const std::string prefix = r["dataset_prefix"].as<std::string>();
    const auto device = npe::model::pick_device(r["device"].as<std::string>());
    bool simulator = r["simulator"].as<bool>();
    if (!npe::tools::any_model(r) && !simulator)
      throw npe::Error(
          "give at least one of --classic_ckpt, --modern_ckpt, --np_ckpt, --lstm_ckpt, --gns_ckpt (or --simulator)");
    const int64_t num_scenes = r["num_scenes"].as<int64_t>();
    const int steps = r["rollout_steps"].as<int>();
    if (num_scenes < 1) throw npe::Error(fmt::format("--num_scenes: expected >= 1, found {}", num_scenes));

    const auto manifest = npe::datagen::read_manifest(prefix);
    npe::tools::check_command_files(r, prefix, {"out_json", "out_csv", "out_png"});
    simulator = npe::tools::simulator_enabled(r, simulator, manifest, prefix, "npe-eval", "row");
    if (!npe::tools::any_model(r) && !simulator)
      throw npe::Error("give at least one of --classic_ckpt, --modern_ckpt, --np_ckpt, --lstm_ckpt, --gns_ckpt");
    const auto models = npe::tools::load_models(r, device, manifest, prefix);
    const auto test = npe::datagen::load_split(prefix, manifest, "test");
    // the simulator's masses are checked before any rollout runs
    const auto masses = simulator ? npe::tools::sim_masses(r, std::min(num_scenes, test.scenes),
                                                           manifest.world.num_balls, "test")
                                  : std::vector<std::vector<double>>{};
    const auto val = npe::datagen::load_split(prefix, manifest, "val");
    // a walls world: object states (a model without walls sees their balls alone)
    const auto val_t = npe::model::model_states(val, manifest, device);

    nlohmann::json out = {{"dataset_prefix", prefix},
                          {"num_scenes", std::min(num_scenes, test.scenes)},
                          {"rollout_steps", steps},
                          {"models", nlohmann::json::object()}};
    std::vector<std::pair<std::string, npe::rollout::StepMetrics>> metrics;
    auto record = [&](npe::rollout::Score s) {
      out["models"][s.name] = s.to_json();
      metrics.emplace_back(s.name, std::move(s.metrics));
    };
    for (const auto& m : models)
      if (!m.transfers.empty()) out["world_transfer"][m.name] = npe::rollout::transfers_json(m.transfers);
    for (const auto& m : models)
      record(npe::rollout::score_model(m.name,
                                       npe::model::make_predictor(m.checkpoint.net, device, 4096, test, manifest),
                                       m.checkpoint.net.get(), manifest, test, val_t, num_scenes, steps));
    if (simulator) {
      const bool cuda = device.is_cuda() && npe::gpu::cuda_available();
      record(npe::rollout::score_simulator(manifest, val, test, num_scenes, steps, cuda,
                                           masses.empty() ? nullptr : &masses));
      out["simulator"] = {{"engine", "npe-gpu penalty contacts (replay_spec)"},
                          {"cuda", cuda},
                          {"masses", masses.empty() ? "dataset" : r["sim_masses"].as<std::string>()}};
    }
    record(npe::rollout::score_model("constant_velocity", npe::rollout::constant_velocity(), nullptr, manifest, test,
                                     val_t, num_scenes, steps));

    // outputs
    npe::write_file_atomic(r["out_json"].as<std::string>(), out.dump(2) + "\n");
    std::string csv = "model,step,cosine,rel_mag_error,pos_error_px,energy_drift\n";
    for (auto& [name, m] : metrics)
      for (int k = 0; k < steps; ++k)
        csv += fmt::format("{},{},{:.6g},{:.6g},{:.6g},{:.6g}\n", name, k + 1, m.cosine[k], m.rel_mag_error[k],
                           m.pos_error_px[k], m.energy_drift[k]);
    npe::write_file_atomic(r["out_csv"].as<std::string>(), csv);
#ifdef NPE_HAVE_MEDIA
    npe::rollout::Panel cos{"Velocity cosine similarity", "rollout step", "cosine similarity", false, {}};
    npe::rollout::Panel rel{"Relative magnitude error", "rollout step", "relative error of |v|", false, {}};
    std::vector<double> xs(steps);
    for (int k = 0; k < steps; ++k) xs[k] = k + 1;
    int color = 1;
    for (auto& [name, m] : metrics) {
      const bool base = name == "constant_velocity";
      const int c = base ? 6 : color++;
      cos.series.push_back({base ? "constant velocity" : name, xs, m.cosine, c, base});
      rel.series.push_back({base ? "constant velocity" : name, xs, m.rel_mag_error, c, base});
    }
    npe::rollout::write_plot_png(r["out_png"].as<std::string>(), {cos, rel});
#else
    fmt::print(stderr, "npe-eval: built without plots (NPE_WITH_MEDIA=OFF): no {}\n", r["out_png"].as<std::string>());
#endif

    fmt::print("npe-eval: {} test scenes, {} rollout steps; dataset {}\n", out["num_scenes"].get<int64_t>(), steps,
               prefix);
    fmt::print("{:<18} {:>11} {:>9} {:>9} {:>9} {:>9} {:>10}\n", "model", "val MSE", "cos@10", "cos@50", "rel@10",
               "rel@50", "pos@50 px");
    auto at = [&](const std::vector<double>& v, int k) { return k <= steps ? v[k - 1] : NAN; };
    for (auto& [name, m] : metrics)
      fmt::print("{:<18} {:>11.4e} {:>9.4f} {:>9.4f} {:>9.4f} {:>9.4f} {:>10.2f}\n", name,
                 out["models"][name]["val_mse"].get<double>(), at(m.cosine, 10), at(m.cosine, 50),
                 at(m.rel_mag_error, 10), at(m.rel_mag_error, 50), at(m.pos_error_px, 50));
#ifdef NPE_HAVE_MEDIA
    fmt::print("wrote {}\n", r["out_png"].as<std::string>());
#endif
    fmt::print("wrote {}, {}\n", r["out_json"].as<std::string>(), r["out_csv"].as<std::string>());
    return 0;
  });
}
