// npe-control: learns the control tasks of npe's ball worlds through the differentiable simulator
// and compares algorithms (docs/control.md; the library is npe/control).
#include <sstream>

#include <fmt/format.h>

#include "cli.h"
#include "npe/control/diagnostics.h"
#include "npe/control/train.h"
#include "npe/core/io.h"
#ifdef NPE_HAVE_MEDIA
#include "npe/rollout/plot.h"
#endif
#include "npe/core/interrupt.h"
#include "npe/gpu/engine.h"

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

torch::Device pick(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name == "auto") {
    std::string why;
    if (torch::cuda::is_available() && npe::gpu::cuda_available(&why)) return torch::Device(torch::kCUDA, 0);
    if (name == "cuda")
      throw npe::Error("--device cuda: no usable CUDA device (" + (why.empty() ? "PyTorch sees none" : why) + ")");
    return torch::kCPU;
  }
  throw npe::Error(fmt::format("--device: expected cpu, cuda or auto, found '{}'", name));
}

std::vector<int> parse_ints(const std::string& flag, const std::string& text) {
  std::vector<int> out;
  for (const auto& item : split_list(text)) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 1 || v > 100000)
      throw npe::Error(fmt::format("--{}: expected positive integers separated by commas, found '{}'", flag, item));
    out.push_back(v);
  }
  if (out.empty()) throw npe::Error(fmt::format("--{}: expected at least one value", flag));
  return out;
}

// npe-control diagnose: gradient norm, variance and agreement with the score function against the
// horizon; for the billiards shot, the reward along a sweep of the shot's angle.
int diagnose(npe::control::TrainConfig& c, const cxxopts::ParseResult& r) {
  namespace ctl = npe::control;
  if (c.algo == ctl::Algo::kCem) throw npe::Error("--algo: diagnose needs a policy: sac, apg or hybrid, found cem");
  const bool fresh = r.count("fresh") > 0;
  const std::string dir = r["diag_dir"].as<std::string>().empty() ? c.out_dir + "/diagnose"
                                                                  : r["diag_dir"].as<std::string>();
  const auto horizons = parse_ints("horizons", r["horizons"].as<std::string>());
  const int batches = r["batches"].as<int>();
  auto agent = ctl::run_agent(c, fresh);
  fmt::print("npe-control diagnose: {} policy of {} ({}), {} environments in {} batches\n",
             fresh ? "an untrained" : "the trained", ctl::algo_name(c.algo), fresh ? "seed" : c.out_dir, c.num_envs,
             batches);
  const auto rows = ctl::gradient_vs_horizon(c.task, *agent, horizons, c.num_envs, batches, c.agent.gamma, c.seed,
                                             c.device);
  std::string csv = "horizon,grad_norm,grad_variance,score_norm,cosine,first_order_self,score_self\n";
  std::vector<double> k, norm, var, cosine;
  fmt::print("{:>8} {:>12} {:>14} {:>12} {:>8} {:>8} {:>8}\n", "horizon", "|grad|", "variance", "|score|", "cosine",
             "self 1st", "self sf");
  for (const auto& h : rows) {
    csv += fmt::format("{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g}\n", h.horizon, h.norm, h.variance, h.score_norm,
                       h.cosine, h.first_order_self, h.score_self);
    fmt::print("{:>8} {:>12.4g} {:>14.4g} {:>12.4g} {:>8.3f} {:>8.3f} {:>8.3f}\n", h.horizon, h.norm, h.variance,
               h.score_norm, h.cosine, h.first_order_self, h.score_self);
    k.push_back(h.horizon);
    norm.push_back(h.norm);
    var.push_back(h.variance);
    cosine.push_back(h.cosine);
  }
  npe::write_file_atomic(dir + "/gradients.csv", csv);
#ifdef NPE_HAVE_MEDIA
  namespace ro = npe::rollout;
  ro::write_plot_png(dir + "/gradients.png",
                     {ro::Panel{"policy gradient against the horizon",
                                "horizon K (steps)",
                                "gradient",
                                true,
                                {ro::Series{"|first-order|", k, norm, 1}, ro::Series{"variance per env", k, var, 2}}},
                      ro::Panel{"agreement with the score function",
                                "horizon K (steps)",
                                "cosine similarity",
                                false,
                                {ro::Series{"cosine", k, cosine, 3}}}});
#endif
  if (c.task.kind == ctl::TaskKind::kBilliards) {
    const auto layouts = ctl::held_out_layouts(c.task, 4, c.eval_seed, c.device, c.dtype);
    const auto shots = ctl::shot_landscape(c.task, layouts, 0.8, 720);
    std::string lcsv = "layout,angle,reward,slope,success\n";
    for (const auto& s : shots)
      lcsv += fmt::format("{},{:.6f},{:.6g},{:.6g},{}\n", s.layout, s.angle, s.reward, s.slope, s.success ? 1 : 0);
    npe::write_file_atomic(dir + "/landscape.csv", lcsv);
#ifdef NPE_HAVE_MEDIA
    ro::Panel reward{"reward along the shot angle", "angle (rad)", "reward", false, {}};
    ro::Panel slope{"d reward / d angle from the adjoint", "angle (rad)", "slope (1/rad)", false, {}};
    for (int64_t l = 0; l < 4; ++l) {
      std::vector<double> a, rw, sl;
      for (const auto& s : shots)
        if (s.layout == l) a.push_back(s.angle), rw.push_back(s.reward), sl.push_back(s.slope);
      reward.series.push_back({fmt::format("layout {}", l), a, rw, static_cast<int>(l) + 1});
      slope.series.push_back({fmt::format("layout {}", l), a, sl, static_cast<int>(l) + 1});
    }
    ro::write_plot_png(dir + "/landscape.png", {reward, slope});
#endif
  }
  fmt::print("npe-control diagnose: wrote {}/gradients.csv{}\n", dir,
             c.task.kind == ctl::TaskKind::kBilliards ? " and landscape.csv" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-control", [&] {
    cxxopts::Options o("npe-control",
                       "Control through the differentiable simulator (docs/control.md).\n"
                       "  npe-control train --task billiards|herding|FILE --algo sac|apg|hybrid|cem --seed S\n"
                       "  npe-control compare --task T --algos sac,apg,hybrid,cem --seeds 5\n"
                       "  npe-control diagnose --task T --algo A [--out_dir RUN]   gradients against the horizon\n"
                       "  npe-control video --task T --algo A --out_dir RUN         the run's policy, RUN/policy.mp4");
    o.add_options()("command", "train, compare, diagnose or video", cxxopts::value<std::string>()->default_value(""))(
        "task", "billiards, herding or a task file (JSON)", cxxopts::value<std::string>()->default_value("billiards"))(
        "algo", "train: sac, apg, hybrid or cem", cxxopts::value<std::string>()->default_value("sac"))(
        "algos", "compare: the algorithms, comma-separated",
        cxxopts::value<std::string>()->default_value("sac,apg,hybrid"))("seed", "train: the run's seed",
                                                                        cxxopts::value<uint64_t>()->default_value("0"))(
        "seeds", "compare: seeds 0 .. N-1 of each algorithm", cxxopts::value<int>()->default_value("5"))(
        "num_envs", "environments stepped together", cxxopts::value<int64_t>()->default_value("1024"))(
        "max_frames", "budget of environment frames (every simulated frame counts)",
        cxxopts::value<int64_t>()->default_value("50000000"))("max_seconds", "budget of training seconds (0: none)",
                                                              cxxopts::value<double>()->default_value("0"))(
        "eval_every_frames", "frames between evaluations (0: a 40th of the budget)",
        cxxopts::value<int64_t>()->default_value("0"))("eval_layouts", "held-out layouts of each evaluation",
                                                       cxxopts::value<int64_t>()->default_value("1000"))(
        "eval_seed", "the held-out layouts' seed", cxxopts::value<uint64_t>()->default_value("20261207"))(
        "target_success", "the success rate whose first crossing is reported",
        cxxopts::value<double>()->default_value("0.8"))(
        "out_dir", "train: the run's directory; compare: the comparison's",
        cxxopts::value<std::string>()->default_value(""))("resume", "train: continue the run in --out_dir")(
        "checkpoint_seconds", "seconds between checkpoints (0: at every evaluation; always one at the end)",
        cxxopts::value<double>()->default_value("300"))("device", "cpu, cuda or auto",
                                                        cxxopts::value<std::string>()->default_value("auto"))(
        "dtype", "float32 or float64", cxxopts::value<std::string>()->default_value("float32"))(
        "hidden", "units per hidden layer", cxxopts::value<int>()->default_value("256"))(
        "layers", "hidden layers", cxxopts::value<int>()->default_value("2"))(
        "actor_lr", "policy learning rate (Adam)", cxxopts::value<double>()->default_value("3e-4"))(
        "critic_lr", "critic learning rate (Adam)", cxxopts::value<double>()->default_value("3e-4"))(
        "init_alpha", "SAC, hybrid: initial entropy temperature", cxxopts::value<double>()->default_value("0.1"))(
        "gamma", "discount per step", cxxopts::value<double>()->default_value("0.99"))(
        "batch_size", "SAC, hybrid: transitions per critic update", cxxopts::value<int64_t>()->default_value("4096"))(
        "replay_capacity", "SAC, hybrid: transitions kept", cxxopts::value<int64_t>()->default_value("1000000"))(
        "updates_per_step", "SAC, hybrid: updates per environment step", cxxopts::value<int>()->default_value("2"))(
        "warmup_steps", "SAC, hybrid: steps of random actions first", cxxopts::value<int64_t>()->default_value("1"))(
        "horizon", "APG, hybrid: steps back-propagated per update (billiards: 1)",
        cxxopts::value<int>()->default_value("16"))("zo_mix",
                                                    "APG, hybrid, billiards: share of the zeroth-order estimate "
                                                    "in the shot's gradient (the remedy; 0: none)",
                                                    cxxopts::value<double>()->default_value("0"))(
        "zo_samples", "the zeroth-order estimate's antithetic pairs per shot",
        cxxopts::value<int>()->default_value("4"))("zo_sigma", "their perturbation (action units)",
                                                   cxxopts::value<double>()->default_value("0.1"))(
        "cem_population", "CEM: shots per layout and iteration", cxxopts::value<int>()->default_value("64"))(
        "cem_elites", "CEM: elites per iteration", cxxopts::value<int>()->default_value("8"))(
        "video_layouts", "train, video: held-out layouts in out_dir/policy.mp4 (train: 0, no video)",
        cxxopts::value<int64_t>()->default_value("4"))(
        "horizons", "diagnose: horizons K, comma-separated",
        cxxopts::value<std::string>()->default_value("1,2,4,8,16,32,64"))(
        "batches", "diagnose: batches of environments for the variance", cxxopts::value<int>()->default_value("8"))(
        "fresh", "diagnose: an untrained policy (seed --seed) instead of the run in --out_dir")(
        "diag_dir", "diagnose: where the tables and plots go (default: <out_dir>/diagnose)",
        cxxopts::value<std::string>()->default_value(""))("h,help", "this help");
    o.parse_positional({"command"});
    o.positional_help("train|compare");
    auto r = npe::tools::parse(o, argc, argv);
    const std::string command = r["command"].as<std::string>();
    if (r.count("help") || command.empty()) {
      fmt::print("{}\n", o.help());
      return command.empty() && !r.count("help") ? 2 : 0;
    }
    if (command != "train" && command != "compare" && command != "diagnose" && command != "video")
      throw npe::Error(fmt::format("expected a command, train, compare, diagnose or video, found '{}'", command));
    npe::control::TrainConfig c;
    c.task = npe::control::load_task(r["task"].as<std::string>());
    c.algo = npe::control::parse_algo(r["algo"].as<std::string>());
    c.seed = r["seed"].as<uint64_t>();
    c.num_envs = r["num_envs"].as<int64_t>();
    c.max_frames = r["max_frames"].as<int64_t>();
    c.max_seconds = r["max_seconds"].as<double>();
    c.eval_every_frames = r["eval_every_frames"].as<int64_t>();
    c.eval_layouts = r["eval_layouts"].as<int64_t>();
    c.eval_seed = r["eval_seed"].as<uint64_t>();
    c.target_success = r["target_success"].as<double>();
    c.resume = r.count("resume") > 0;
    c.checkpoint_seconds = r["checkpoint_seconds"].as<double>();
    c.device = pick(r["device"].as<std::string>());
    const std::string dtype = r["dtype"].as<std::string>();
    if (dtype != "float32" && dtype != "float64")
      throw npe::Error(fmt::format("--dtype: expected float32 or float64, found '{}'", dtype));
    c.dtype = dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
    auto& a = c.agent;
    a.hidden = r["hidden"].as<int>();
    a.layers = r["layers"].as<int>();
    a.actor_lr = r["actor_lr"].as<double>();
    a.critic_lr = r["critic_lr"].as<double>();
    a.init_alpha = r["init_alpha"].as<double>();
    a.gamma = r["gamma"].as<double>();
    a.batch_size = r["batch_size"].as<int64_t>();
    a.replay_capacity = r["replay_capacity"].as<int64_t>();
    a.updates_per_step = r["updates_per_step"].as<int>();
    a.warmup_steps = r["warmup_steps"].as<int64_t>();
    a.horizon = r["horizon"].as<int>();
    a.zo_mix = r["zo_mix"].as<double>();
    a.zo_samples = r["zo_samples"].as<int>();
    a.zo_sigma = r["zo_sigma"].as<double>();
    a.cem_population = r["cem_population"].as<int>();
    a.cem_elites = r["cem_elites"].as<int>();
    npe::install_interrupt_handlers();
    const std::string task_name = npe::control::task_kind_name(c.task.kind);
    const int64_t video_layouts = r["video_layouts"].as<int64_t>();
    if (video_layouts < 0 || video_layouts > 16)
      throw npe::Error(fmt::format("--video_layouts: expected 0 to 16, found {}", video_layouts));
    if (command == "train" || command == "diagnose" || command == "video")
      c.out_dir = r["out_dir"].as<std::string>().empty()
                      ? fmt::format("out/control/{}/{}/seed{}", task_name, npe::control::algo_name(c.algo), c.seed)
                      : r["out_dir"].as<std::string>();
    if (command == "diagnose") return diagnose(c, r);
    if (command == "video") {
      // a finished run's policy (trained on any device; its settings flags as in train)
#ifdef NPE_HAVE_MEDIA
      if (c.algo == npe::control::Algo::kCem) throw npe::Error("--algo: cem has no policy to film");
      if (video_layouts < 1) throw npe::Error("--video_layouts: expected 1 to 16 layouts to film, found 0");
      npe::control::write_policy_video(c, c.out_dir + "/policy.mp4", video_layouts);
      fmt::print("npe-control video: wrote {}/policy.mp4\n", c.out_dir);
      return 0;
#else
      throw npe::Error("npe-control video: this build has no media (configure with NPE_WITH_MEDIA=ON)");
#endif
    }
    if (command == "train") {
      fmt::print("npe-control train: {} with {}, seed {}, {} environments on {}, {} frames; {}\n", task_name,
                 npe::control::algo_name(c.algo), c.seed, c.num_envs, c.device.str(), c.max_frames, c.out_dir);
      const auto s = npe::control::train(c, [](const npe::control::ControlMetrics& m) {
        fmt::print("  frames {:>12}  {:>8.1f} s  success {:.3f}  return {:+.3f}  actor {:+.4g}  critic {:.4g}\n",
                   m.frames, m.seconds, m.success, m.eval_return, m.actor_loss, m.critic_loss);
        std::fflush(stdout);
      });
      fmt::print("npe-control train: final success {:.3f} (best {:.3f}); {:.0f}% reached {}; wrote {}/metrics.csv, "
                 "checkpoint.pt, summary.json\n",
                 s.final_success, s.best_success, 100 * c.target_success,
                 s.frames_to_target >= 0
                     ? fmt::format("after {} frames, {:.1f} s", s.frames_to_target, s.seconds_to_target)
                     : std::string("never"),
                 c.out_dir);
#ifdef NPE_HAVE_MEDIA
      if (video_layouts > 0 && c.algo != npe::control::Algo::kCem) {
        npe::control::write_policy_video(c, c.out_dir + "/policy.mp4", video_layouts);
        fmt::print("npe-control train: wrote {}/policy.mp4\n", c.out_dir);
      }
#endif
      return 0;
    }
    npe::control::CompareConfig cc;
    cc.base = c;
    for (const auto& name : split_list(r["algos"].as<std::string>()))
      cc.algos.push_back(npe::control::parse_algo(name));
    const int seeds = r["seeds"].as<int>();
    if (seeds < 1 || seeds > 1000) throw npe::Error(fmt::format("--seeds: expected 1 to 1000, found {}", seeds));
    for (int s = 0; s < seeds; ++s) cc.seeds.push_back(static_cast<uint64_t>(s));
    cc.out_dir = r["out_dir"].as<std::string>().empty() ? fmt::format("out/control/compare/{}", task_name)
                                                        : r["out_dir"].as<std::string>();
    npe::control::compare(cc);
    fmt::print("npe-control compare: wrote {}/compare.md, compare.json{}\n", cc.out_dir,
#ifdef NPE_HAVE_MEDIA
               ", compare.png"
#else
               ""
#endif
    );
    return 0;
  });
}
