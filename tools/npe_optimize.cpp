// npe-optimize: trajectory optimisation through the differentiable simulator: chooses the initial
// velocity of one ball so that another ends at a target at time T (npe/rollout/optimize.h). Writes the
// first-guess and optimised rollouts as an npe dataset (test split, scenes 0 and 1) that
// npe-render draws, and a JSON summary. See README.md.

#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/datagen/dataset.h"
#include "npe/rollout/optimize.h"
#include "npe/model/train.h"

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-optimize", [&] {
    cxxopts::Options o("npe-optimize", "Choose the initial velocity of one ball so that another reaches a target at "
                                       "time T, by gradient descent through the differentiable simulator.");
    o.add_options()("problem", "problem JSON (see data/examples/launch.json)",
                    cxxopts::value<std::string>()->default_value("data/examples/launch.json"))(
        "method",
        "gauss-newton (Levenberg-Marquardt on the 2x2 Jacobian) or gradient-descent (steepest descent, "
        "quadratic-interpolation line search)",
        cxxopts::value<std::string>()->default_value("gauss-newton"))(
        "iterations", "at most this many gradient evaluations", cxxopts::value<int>()->default_value("100"))(
        "tolerance", "stop when the ball ends this close to the target, px (exit status 3 if never)",
        cxxopts::value<double>()->default_value("0.1"))("device", "auto | cpu | cuda",
                                                        cxxopts::value<std::string>()->default_value("cpu"))(
        "out_prefix",
        "rollouts as an npe dataset: <prefix>.json, <prefix>_test.npy (scene 0 first guess, scene 1 optimised)",
        cxxopts::value<std::string>()->default_value("out/optimize/launch"))("h,help", "this help");
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    const std::string problem_path = r["problem"].as<std::string>();
    const std::string prefix = r["out_prefix"].as<std::string>();
    npe::check_distinct_files({{"--problem", problem_path},
                               {"--out_prefix manifest", npe::datagen::manifest_path(prefix), true},
                               {"--out_prefix array", npe::datagen::split_path(prefix, "test"), true},
                               {"--out_prefix summary", prefix + "_summary.json", true}});
    const auto p = npe::rollout::LaunchProblem::from_json_file(problem_path);
    npe::rollout::LaunchOptions lo;
    const std::string method = r["method"].as<std::string>();
    if (method != "gauss-newton" && method != "gradient-descent")
      throw npe::Error(fmt::format("--method: expected gauss-newton or gradient-descent, found '{}'", method));
    lo.method = method == "gradient-descent" ? npe::rollout::LaunchMethod::kGradientDescent
                                             : npe::rollout::LaunchMethod::kGaussNewton;
    lo.iterations = r["iterations"].as<int>();
    lo.tolerance_px = r["tolerance"].as<double>();
    if (!(lo.tolerance_px > 0))
      throw npe::Error(fmt::format("--tolerance: expected > 0 px, found {}", lo.tolerance_px));
    lo.device = npe::model::pick_device(r["device"].as<std::string>());
    if (lo.device.is_cuda() && !npe::gpu::cuda_available()) lo.device = torch::kCPU;
    const auto res = npe::rollout::optimize_launch(p, lo);

    npe::rollout::write_launch_outputs(p, res, problem_path, method, prefix);
    const int64_t N = static_cast<int64_t>(p.balls.size());

    fmt::print("npe-optimize: {} ({} balls, ball {} launched, ball {} to ({}, {}) px at t = {} s)\n", problem_path, N,
               p.shooter, p.target_ball, p.target_x, p.target_y, p.frames * p.world.frame_dt);
    fmt::print("  first guess  v = ({:.3f}, {:.3f}) px/s: {:.2f} px from the target\n", res.guess_vx, res.guess_vy,
               res.distance_px.front());
    fmt::print(
        "  optimised    v = ({:.3f}, {:.3f}) px/s: {:.3f} px from the target after {} iterations, {} rollouts ({})\n",
        res.vx, res.vy, res.distance_px.back(), res.iterations, res.rollouts,
        res.converged ? "converged" : "NOT converged");
    fmt::print("  wrote {}.json, {}_test.npy, {}_summary.json\n", prefix, prefix, prefix);
    fmt::print("  render: npe-render --dataset_prefix {} --num_scenes 2\n", prefix);
    return res.converged ? 0 : 3;
  });
}
