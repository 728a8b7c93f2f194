// npe-sysid: infers each ball's mass from observed trajectories by gradient descent through the
// differentiable simulator, and (given NPE checkpoints) by the paper's mass-hypothesis test with
// the learned models, on the same scenes. See README.md and npe/gpu/sysid.h.
#include <filesystem>

#include <nlohmann/json.hpp>

#include <fmt/ranges.h>

#include "cli.h"
#include "model_flags.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/gpu/engine.h"
#include "npe/rollout/sysid.h"
#include "npe/model/infer.h"

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-sysid", [&] {
    cxxopts::Options o("npe-sysid",
                       "Identify ball masses from a --variable_mass dataset: gradient descent through "
                       "the differentiable simulator, and the NPE mass-hypothesis test (paper, section 4.3) for "
                       "any checkpoints given.");
    o.add_options()("split", "split whose scenes are used: train, val or test",
                    cxxopts::value<std::string>()->default_value("test"))(
        "num_scenes", "scenes of the split (0: all; default: 200, or all when fewer)",
        cxxopts::value<int64_t>()->default_value("200"))(
        "window", "frames per fitted window, each started from the observed state",
        cxxopts::value<int>()->default_value("10"))("iterations", "gradient evaluations",
                                                    cxxopts::value<int>()->default_value("100"))(
        "lr", "first step in ln(mass) (with --fit_restitution: Adam's learning rate)",
        cxxopts::value<double>()->default_value("0.5"))("fit_restitution", "also fit a restitution per problem",
                                                        cxxopts::value<bool>()->default_value("false"))(
        "dtype", "simulator precision: float64 or float32", cxxopts::value<std::string>()->default_value("float64"))(
        "store_every", "substeps between the states the simulator stores for its backward pass (0: one per frame)",
        cxxopts::value<int>()->default_value("0"))(
        "out_json", "identified masses (npe-eval --sim_masses reads them) and the summary",
        cxxopts::value<std::string>()->default_value("out/sysid/sysid.json"))(
        "out_md", "the comparison table, Markdown",
        cxxopts::value<std::string>()->default_value("out/sysid/mass_inference.md"))("h,help", "this help");
    npe::tools::add_model_flags(o);
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    const std::string prefix = r["dataset_prefix"].as<std::string>();
    const auto manifest = npe::datagen::read_manifest(prefix);
    npe::tools::check_command_files(r, prefix, {"out_json", "out_md"});
    if (!manifest.world.variable_mass)
      throw npe::Error(fmt::format("--dataset_prefix '{}': expected a dataset made with --variable_mass (masses "
                                   "from {{{}}}), found uniform masses",
                                   prefix, fmt::join(manifest.world.mass_choices, ", ")));
    const std::string split = r["split"].as<std::string>();
    if (split != "train" && split != "val" && split != "test")
      throw npe::Error(fmt::format("--split: expected train, val or test, found '{}'", split));
    const auto obs = npe::datagen::load_split(prefix, manifest, split);
    int64_t scenes = r["num_scenes"].as<int64_t>();
    if (scenes == 0) scenes = obs.scenes;
    if (scenes < 0) throw npe::Error(fmt::format("--num_scenes: expected >= 0, found {}", scenes));
    if (!r.count("num_scenes"))
      scenes = std::min(scenes, obs.scenes);  // the default: at most 200; a count given
                                              // beyond the split is refused, as npe-eval does
    const std::string dtype = r["dtype"].as<std::string>();
    if (dtype != "float64" && dtype != "float32")
      throw npe::Error(fmt::format("--dtype: expected float64 or float32, found '{}'", dtype));

    npe::rollout::SysIdOptions so;
    so.window = r["window"].as<int>();
    so.iterations = r["iterations"].as<int>();
    so.lr = r["lr"].as<double>();
    so.fit_restitution = r["fit_restitution"].as<bool>();
    so.store_every = r["store_every"].as<int>();
    so.device = npe::model::pick_device(r["device"].as<std::string>());
    if (so.device.is_cuda() && !npe::gpu::cuda_available()) so.device = torch::kCPU;  // CUDA code left out of the build
    so.dtype = dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
    const auto models = npe::tools::load_models(r, so.device, manifest, prefix);

    fmt::print("npe-sysid: {} {} scenes of {}, {} balls each; simulator on {} ({}), {} iterations\n", scenes, split,
               prefix, obs.num_balls, so.device.str(), dtype, so.iterations);
    const npe::rollout::SysIdResult res = npe::rollout::identify_masses(manifest, obs, scenes, so);
    const auto sum = res.summary();
    nlohmann::json out = res.to_json();
    out["dataset_prefix"] = prefix;
    out["split"] = split;
    out["options"] = {{"window", so.window}, {"iterations", so.iterations},
                      {"lr", so.lr},         {"fit_restitution", so.fit_restitution},
                      {"dtype", dtype},      {"device", so.device.str()}};

    std::string md = fmt::format("Mass inference on {} {} scenes of `{}` ({} balls, masses from {{{}}}); scored on "
                                 "the {} balls that touch another ball.\n\n",
                                 scenes, split, prefix, obs.num_balls, fmt::join(manifest.world.mass_choices, ", "),
                                 sum.balls);
    md += "| method | accuracy | median rel. mass error | p90 rel. mass error |\n|---|---|---|---|\n";
    md += fmt::format("| simulator, gradient-based fit ({} gradient evaluations, {} s) | {:.1f}% | {:.2e} | {:.2e} |\n",
                      so.iterations, fmt::format("{:.1f}", res.seconds), 100 * sum.accuracy, sum.median_rel_error,
                      sum.p90_rel_error);
    if (!models.empty()) {
      const torch::Tensor traj = npe::model::to_tensor(obs, so.device).narrow(0, 0, scenes);
      std::vector<std::vector<double>> truth_class(scenes, std::vector<double>(obs.num_balls));
      for (int64_t s = 0; s < scenes; ++s)
        for (int64_t b = 0; b < obs.num_balls; ++b) truth_class[s][b] = res.classify(res.truth[s][b]);
      for (const auto& m : models) {
        const npe::rollout::MassInference mi = npe::rollout::npe_mass_inference(
            *m.checkpoint.net, traj, manifest.world.mass_choices, res.collides, truth_class);
        const double acc = mi.accuracy;
        out["npe"][m.name] = {
            {"accuracy", acc}, {"balls_that_collide", mi.balls_that_collide}, {"inferred", mi.inferred}};
        if (!m.transfers.empty()) out["npe"][m.name]["world_transfer"] = npe::rollout::transfers_json(m.transfers);
        const std::string label = m.name == "np"     ? "NP baseline"
                                  : m.name == "lstm" ? "LSTM baseline"
                                  : m.name == "gns"  ? "graph network simulator"
                                                     : m.name + " NPE";
        md += fmt::format("| {}, best of {} hypotheses | {:.1f}% | n/a | n/a |\n", label,
                          manifest.world.mass_choices.size(), 100 * acc);
      }
    }
    md += fmt::format("| chance | {:.1f}% | | |\n", 100.0 / manifest.world.mass_choices.size());
    npe::write_file_atomic(r["out_json"].as<std::string>(), out.dump(1) + "\n");
    npe::write_file_atomic(r["out_md"].as<std::string>(), md);
    fmt::print("\n{}\n", md);
    fmt::print("loss per problem (px^2): {:.4g} at the start, {:.4g} at the chosen estimates\n", res.loss.front(),
               res.loss_final);
    fmt::print("wrote {}, {}\n", r["out_json"].as<std::string>(), r["out_md"].as<std::string>());
    return 0;
  });
}
