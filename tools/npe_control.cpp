// npe-control: learns the control tasks of npe's ball worlds through the differentiable simulator
// and compares algorithms (docs/control.md; the library is npe/control).
#include <sstream>

#include <fmt/format.h>

#include "cli.h"
#include "npe/control/train.h"
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

}  // namespace

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-control", [&] {
    cxxopts::Options o("npe-control",
                       "Control through the differentiable simulator (docs/control.md).\n"
                       "  npe-control train --task billiards|herding|FILE --algo sac|apg|hybrid|cem --seed S\n"
                       "  npe-control compare --task T --algos sac,apg,hybrid,cem --seeds 5");
    o.add_options()("command", "train or compare", cxxopts::value<std::string>()->default_value(""))(
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
        "device", "cpu, cuda or auto", cxxopts::value<std::string>()->default_value("auto"))(
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
        cxxopts::value<int>()->default_value("16"))("cem_population", "CEM: shots per layout and iteration",
                                                    cxxopts::value<int>()->default_value("64"))(
        "cem_elites", "CEM: elites per iteration", cxxopts::value<int>()->default_value("8"))("h,help", "this help");
    o.parse_positional({"command"});
    o.positional_help("train|compare");
    auto r = npe::tools::parse(o, argc, argv);
    const std::string command = r["command"].as<std::string>();
    if (r.count("help") || command.empty()) {
      fmt::print("{}\n", o.help());
      return command.empty() && !r.count("help") ? 2 : 0;
    }
    if (command != "train" && command != "compare")
      throw npe::Error(fmt::format("expected a command, train or compare, found '{}'", command));
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
    a.cem_population = r["cem_population"].as<int>();
    a.cem_elites = r["cem_elites"].as<int>();
    npe::install_interrupt_handlers();
    const std::string task_name = npe::control::task_kind_name(c.task.kind);
    if (command == "train") {
      c.out_dir = r["out_dir"].as<std::string>().empty()
                      ? fmt::format("out/control/{}/{}/seed{}", task_name, npe::control::algo_name(c.algo), c.seed)
                      : r["out_dir"].as<std::string>();
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
