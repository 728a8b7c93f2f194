// npe-bench train: samples/s of npe-train's inner loop, built from the same functions
// (npe/model/train.h), on synthetic trajectories resident on the device.
#include "bench_train.h"

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/core/parallel.h"
#include "npe/model/distributed.h"
#include "npe/model/train.h"
#include "npe/model/train_step.h"

namespace npe::tools {
namespace {

struct TrainRow {
  std::string backend, model, variant;
  int64_t batch = 0, steps = 0;  // batch: per process
  double seconds = 0;
  int64_t processes = 1;
  double rate() const { return static_cast<double>(steps * batch * processes) / seconds; }
};

void synchronize(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// `variant`: "eager" (one step at a time, float32), "graph" (the step replayed as a CUDA graph,
// float32), "graph+bf16" (and bf16 autocast), or "fused" (the hand-written step, replayed as a
// graph: the classic model's in float32, the modern model's in bf16; train_step.h); npe-train's
// default on CUDA is fused for both, eager on the CPU.
// With `group` (several processes, one GPU each): the data-parallel step, every process timing
// the same steps; samples/s over all of them.
TrainRow run(model::Kind kind, const torch::Device& device, const std::string& variant, bool quick,
             model::ProcessGroup* group = nullptr) {
  model::TrainConfig cfg = model::default_train_config(kind);
  // synthetic trajectories [S, T, N, 5] in the dataset's normalised units: positions in [0, 1],
  // velocities of a few hundredths, masses 1
  const int64_t S = quick ? 64 : 2000, T = 60, N = 4;
  torch::manual_seed(1);
  auto traj = torch::rand({S, T, N, 5});
  traj.narrow(-1, 2, 2).mul_(0.02).sub_(0.01);
  traj.narrow(-1, 4, 1).fill_(1.0);
  auto net = model::make_model(cfg.model);
  net->fit_normalisation(traj);
  net->to(device);
  net->train();
  traj = traj.to(device);
  auto opt = model::make_optimizer(cfg, *net);
  model::StepOptions options;
  options.cuda_graph = variant != "eager";
  options.bf16 = variant == "graph+bf16" || (variant == "fused" && kind == model::Kind::Modern);
  options.fused = variant == "fused";
  options.group = group;
  model::TrainStep step(cfg, *net, *opt, traj, /*total_steps=*/1000000, 0, options);
  if (options.fused && !step.fused())
    throw Error(fmt::format("npe-bench train: the hand-written {} step is not available here: {}",
                            model::kind_name(kind), step.fused_reason()));
  // warm-up (allocator, cuBLAS heuristics, the capture), then steps until `budget` seconds
  for (int i = 0; i < (quick ? 5 : 20); ++i) step.run();
  synchronize(device);
  const double budget = quick ? 0.2 : 3.0;
  const auto t0 = std::chrono::steady_clock::now();
  auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const int64_t first = step.step();
  while (true) {
    for (int i = 0; i < (quick ? 5 : 50); ++i) step.run();
    synchronize(device);
    if (secs() >= budget) break;
  }
  const double seconds = secs();
  if (step.first_nonfinite_step() >= 0) throw Error("npe-bench train: the loss became NaN or infinite");
  return {
      device.is_cuda() ? "cuda" : "cpu", model::kind_name(kind), variant, cfg.batch_size, step.step() - first, seconds,
      group ? group->size() : 1};
}

}  // namespace

int bench_train(bool do_cpu, bool do_cuda, bool quick, int threads, const std::string& csv_path,
                const std::string& json_path) {
  torch::set_num_threads(resolve_threads(threads));
  std::vector<TrainRow> rows;
  for (const bool cuda : {false, true}) {
    if (cuda ? !do_cuda : !do_cpu) continue;
    if (cuda && !torch::cuda::is_available())
      throw Error("npe-bench train --device cuda: libtorch sees no CUDA device (a CPU-only libtorch?)");
    const torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    if (!cuda) {
      for (const auto kind : {model::Kind::Classic, model::Kind::Modern})
        rows.push_back(run(kind, device, "eager", quick));
      continue;
    }
    const bool graphs = model::cuda_graphs_available();
    if (!graphs) fmt::print(stderr, "npe-bench train: this build has no CUDA graphs; eager rows only\n");
    for (const auto kind : {model::Kind::Classic, model::Kind::Modern})
      for (const std::string variant : {"eager", "graph", "graph+bf16", "fused"}) {
        if (variant != "eager" && !graphs) continue;
        if (variant == "graph+bf16" && kind == model::Kind::Classic) continue;  // the classic model stays float32
        rows.push_back(run(kind, device, variant, quick));
      }
  }
  std::string csv = "backend,model,variant,batch,steps,seconds,samples_per_s,recipe_samples,recipe_minutes\n";
  nlohmann::json j = {{"benchmark", "train"}, {"rows", nlohmann::json::array()}};
  fmt::print("\n{:<5} {:<8} {:<11} {:>6} {:>7} {:>9} {:>13} {:>16}\n", "dev", "model", "variant", "batch", "steps",
             "seconds", "samples/s", "recipe minutes");
  for (const TrainRow& x : rows) {
    // the full recipes: classic 60 M samples, modern 200 M
    const double recipe = x.model == "classic" ? 60e6 : 200e6, minutes = recipe / x.rate() / 60;
    csv += fmt::format("{},{},{},{},{},{:.4f},{:.6g},{:.0f},{:.4g}\n", x.backend, x.model, x.variant, x.batch, x.steps,
                       x.seconds, x.rate(), recipe, minutes);
    j["rows"].push_back({{"backend", x.backend},
                         {"model", x.model},
                         {"variant", x.variant},
                         {"batch", x.batch},
                         {"steps", x.steps},
                         {"seconds", x.seconds},
                         {"samples_per_s", x.rate()},
                         {"recipe_samples", recipe},
                         {"recipe_minutes", minutes}});
    fmt::print("{:<5} {:<8} {:<11} {:>6} {:>7} {:>9.2f} {:>13.4g} {:>16.4g}\n", x.backend, x.model, x.variant, x.batch,
               x.steps, x.seconds, x.rate(), minutes);
  }
  write_file_atomic(csv_path, csv);
  write_file_atomic(json_path, j.dump(2) + "\n");
  fmt::print("wrote {} and {}\n", csv_path, json_path);
  return 0;
}

int bench_train_data_parallel(bool quick, const std::string& csv_path, const std::string& json_path) {
  const model::DistEnv env = model::dist_env_from_environment();
  if (!torch::cuda::is_available()) throw Error("npe-bench train-dp: libtorch sees no CUDA device");
  const torch::Device device = model::local_cuda_device(env);
  model::ProcessGroup group(env, device);
  const model::Kind kind = model::Kind::Modern;
  // 1. one GPU: process 0 alone, the others waiting (the npe-train step without all-reduce)
  TrainRow one;
  group.agree("one-gpu", [&] {
    if (group.is_root()) one = run(kind, device, "graph+bf16", quick);
  });
  // 2. every GPU, data parallel
  const TrainRow dp = run(kind, device, "graph+bf16", quick, group.size() > 1 ? &group : nullptr);
  // 3. the all-reduce alone: the gradient's size (one bucket), averaged, on the compute stream
  const int64_t params = [&] {
    model::TrainConfig cfg = model::default_train_config(kind);
    int64_t n = 0;
    for (const auto& p : model::make_model(cfg.model)->parameters()) n += p.numel();
    return n;
  }();
  const torch::Tensor grad = torch::randn({params}, torch::TensorOptions().device(device));
  const int reps = quick ? 20 : 500;
  for (int i = 0; i < 20; ++i) group.all_reduce(grad, model::Reduce::Avg);
  torch::cuda::synchronize(device.index());
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) group.all_reduce(grad, model::Reduce::Avg);
  torch::cuda::synchronize(device.index());
  const double allreduce_us = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps * 1e6;
  if (!group.is_root()) return 0;
  const double step_one_us = one.seconds / one.steps * 1e6, step_dp_us = dp.seconds / dp.steps * 1e6;
  const double speedup = dp.rate() / one.rate();
  std::string csv = "model,variant,batch_per_gpu,gpus,steps,seconds,samples_per_s,step_us,speedup,"
                    "allreduce_floats,allreduce_us\n";
  nlohmann::json j = {{"benchmark", "train-dp"},
                      {"gradient_floats", params},
                      {"allreduce_us", allreduce_us},
                      {"speedup", speedup},
                      {"rows", nlohmann::json::array()}};
  fmt::print("\n{:<7} {:<11} {:>6} {:>5} {:>7} {:>9} {:>13} {:>9} {:>8}\n", "model", "variant", "batch", "gpus",
             "steps", "seconds", "samples/s", "step us", "speedup");
  for (const auto& [x, step_us] : {std::pair{one, step_one_us}, std::pair{dp, step_dp_us}}) {
    const double sp = x.rate() / one.rate();
    csv += fmt::format("{},{},{},{},{},{:.4f},{:.6g},{:.2f},{:.4f},{},{:.2f}\n", x.model, x.variant, x.batch,
                       x.processes, x.steps, x.seconds, x.rate(), step_us, sp, params,
                       x.processes > 1 ? allreduce_us : 0.0);
    j["rows"].push_back({{"model", x.model},
                         {"variant", x.variant},
                         {"batch_per_gpu", x.batch},
                         {"gpus", x.processes},
                         {"steps", x.steps},
                         {"seconds", x.seconds},
                         {"samples_per_s", x.rate()},
                         {"step_us", step_us},
                         {"speedup", sp}});
    fmt::print("{:<7} {:<11} {:>6} {:>5} {:>7} {:>9.2f} {:>13.4g} {:>9.1f} {:>8.3f}\n", x.model, x.variant, x.batch,
               x.processes, x.steps, x.seconds, x.rate(), step_us, sp);
  }
  fmt::print("all-reduce of the gradient ({} float32, {:.2f} MiB, 1 bucket) over {} GPUs: {:.1f} us alone; "
             "data-parallel step {:.1f} us vs {:.1f} us on one GPU\n",
             params, params * 4.0 / (1 << 20), group.size(), allreduce_us, step_dp_us, step_one_us);
  write_file_atomic(csv_path, csv);
  write_file_atomic(json_path, j.dump(2) + "\n");
  fmt::print("wrote {} and {}\n", csv_path, json_path);
  return 0;
}

}  // namespace npe::tools
