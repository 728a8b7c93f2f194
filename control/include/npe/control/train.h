// npe/control/train.h: training runs, held-out evaluation, the cross-entropy planner, the
// comparison of algorithms over seeds and the gradient diagnostics (npe-control, docs/control.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/control/agents.h"

namespace npe::control {

struct TrainConfig {
  TaskSpec task = billiards_task();
  Algo algo = Algo::kSac;
  uint64_t seed = 0;
  int64_t num_envs = 1024;                  // environments stepped together (every algorithm alike)
  int64_t max_frames = 50000000;            // budget: environment frames (every simulated frame counts)
  double max_seconds = 0;                   // and/or wall-clock seconds of training (0: no limit)
  int64_t eval_every_frames = 0;            // 0: max_frames / 40
  int64_t eval_layouts = 1000;              // held-out layouts
  uint64_t eval_seed = 20261207;            // their seed (the same for every run)
  double target_success = 0.8;              // the success rate whose first crossing is reported
  std::string out_dir = "out/control/run";  // metrics.csv, checkpoint.pt, summary.json
  bool resume = false;                      // continue from out_dir/checkpoint.pt
  // a checkpoint at the first evaluation this long after the last one (0: at every evaluation), and
  // always at the end
  double checkpoint_seconds = 300;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
  AgentConfig agent;
};

// One row of metrics.csv, written after each evaluation.
struct ControlMetrics {
  int64_t evaluation = 0, frames = 0, env_steps = 0;
  double seconds = 0;                   // training wall clock so far (evaluations excluded)
  double success = 0, eval_return = 0;  // on the held-out layouts, deterministic policy
  double train_reward = 0, actor_loss = 0, critic_loss = 0, alpha = 0, grad_norm = 0;  // last iteration
};
inline constexpr const char* kControlCsvHeader =
    "evaluation,frames,env_steps,seconds,success,eval_return,train_reward,actor_loss,critic_loss,alpha,grad_norm";

struct TrainSummary {
  int64_t frames = 0;
  double seconds = 0;
  double final_success = 0, best_success = 0;
  int64_t frames_to_target = -1;  // first evaluation at or above target_success (-1: never)
  double seconds_to_target = -1;
};
// The summary of a run's evaluations (frames, seconds and success of each row are read): its last
// row, its best success and its first row at or above `target`.
TrainSummary summarise(const std::vector<ControlMetrics>& rows, double target);

// Checks the config (FieldError naming the field) and trains, writing out_dir/metrics.csv (after
// every evaluation), out_dir/checkpoint.pt (every checkpoint_seconds, at the end and when
// interrupted; with `resume`, read back first, and the run continues as if uninterrupted from it:
// on the CPU, bit for bit) and out_dir/summary.json.
// `on_eval` is called after each evaluation. Stops cleanly on SIGINT/SIGTERM (npe::Interrupted)
// after writing a checkpoint.
TrainSummary train(const TrainConfig& config, const std::function<void(const ControlMetrics&)>& on_eval = {});

// What identifies a run (task, algorithm, seed, environments, evaluation, precision, agent settings,
// device type): a resumed run must match its checkpoint's, and compare reuses only a finished run
// whose summary.json matches it (and max_frames).
nlohmann::json run_identity(const TrainConfig& config);
// The first key of run_identity in which a run's summary.json `summary` differs from `config`, or
// "" when none; "device" is not compared (a run is read on any device). `policy_only`: only the
// settings its policy depends on (task, algo, agent, dtype).
std::string differing_setting(const nlohmann::json& summary, const TrainConfig& config, bool policy_only);

// The agent of the run in config.out_dir (its checkpoint.pt), for videos and diagnostics; a fresh
// one (torch::manual_seed(config.seed)) when `fresh`. Throws npe::Error naming the file.
std::unique_ptr<Agent> run_agent(const TrainConfig& config, bool fresh = false);

// The held-out layouts: drawn on the CPU from `seed`, so that every device sees the same ones.
Layouts held_out_layouts(const TaskSpec& task, int64_t n, uint64_t seed, torch::Device device, torch::ScalarType dtype);

// Success rate and mean return of `policy` (observations -> actions) over one episode of each
// layout.
struct Evaluation {
  double success = 0, mean_return = 0;
  torch::Tensor successes;  // [n] bool
};
Evaluation evaluate(const TaskSpec& task, const Layouts& layouts,
                    const std::function<torch::Tensor(const torch::Tensor&)>& policy);

// One episode of `policy` from each layout: the states [n, frames + 1, bodies, 4] (px, px/s),
// frame by frame (billiards: the shot's frames); an episode that ends early holds its last state.
torch::Tensor policy_episodes(const TaskSpec& task, const Layouts& layouts,
                              const std::function<torch::Tensor(const torch::Tensor&)>& policy);

// Writes `path` (H.264 MP4, through npe/rollout's video writer) with the deterministic policy of
// the run in config.out_dir on its first `n` held-out layouts, side by side: the actuated disc
// or cue dark, goals as green rings. Throws npe::Error when built without media.
void write_policy_video(const TrainConfig& config, const std::string& path, int64_t n);

// The cross-entropy method, planning each layout's billiards shot with the simulator: each
// iteration draws cem_population shots per layout from a Gaussian, keeps the cem_elites best by
// reward and refits mean and standard deviation; the mean shot is then scored. Returns, per
// iteration, the success rate of the mean shots and the frames simulated so far (candidates and
// scoring).
struct CemProgress {
  int iteration = 0;
  int64_t frames = 0;
  double seconds = 0, success = 0, mean_return = 0;
};
std::vector<CemProgress> cem_plan(const TaskSpec& task, const Layouts& layouts, const AgentConfig& config,
                                  int iterations, uint64_t seed,
                                  const std::function<void(const CemProgress&)>& on_iteration = {});

// npe-control compare: `seeds` runs of each algorithm (base config otherwise; runs in
// out_dir/<algo>/seed<S>, resumed when interrupted, skipped when finished), then the table
// (out_dir/compare.md, compare.json) and the learning curves with 95% bootstrap bands
// (out_dir/compare.png, when built with media).
struct CompareConfig {
  TrainConfig base;
  std::vector<Algo> algos;
  std::vector<uint64_t> seeds;
  std::string out_dir = "out/control/compare";
  int cem_iterations = 10;
};
void compare(const CompareConfig& config);

// The interquartile mean of `v` (the mean of the middle half, as in Agarwal et al. 2021) and its
// 95% bootstrap interval over `resamples` resamples drawn with `seed`.
struct Interval {
  double value = 0, low = 0, high = 0;
};
Interval iqm_with_ci(const std::vector<double>& v, int resamples = 2000, uint64_t seed = 1);

}  // namespace npe::control
