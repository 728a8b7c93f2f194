// npe-bench train: samples/s of npe-train's inner loop, built from the same functions
// (npe/model/train.h), on synthetic trajectories resident on the device.
#include "bench_train.h"

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "npe/datagen/io.h"
#include "npe/model/train.h"
#include "npe/model/train_step.h"

namespace npe::tools {
namespace {

struct TrainRow {
  std::string backend, model, variant;
  int64_t batch = 0, steps = 0;
  double seconds = 0;
  double rate() const { return static_cast<double>(steps * batch) / seconds; }
};

void synchronize(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// `variant`: "eager" (one step at a time, float32), "graph" (the step replayed as a CUDA graph,
// float32) or "graph+bf16" (and bf16 autocast); npe-train's defaults are graph for the classic
// model and graph+bf16 for the modern one on CUDA, eager on the CPU.
TrainRow run(model::Kind kind, const torch::Device& device, const std::string& variant, bool quick) {
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
  options.bf16 = variant == "graph+bf16";
  model::TrainStep step(cfg, *net, *opt, traj, /*total_steps=*/1000000, 0, options);
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
  return {device.is_cuda() ? "cuda" : "cpu", model::kind_name(kind), variant, cfg.batch_size, step.step() - first,
          seconds};
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
      for (const auto kind : {model::Kind::Classic, model::Kind::Modern}) rows.push_back(run(kind, device, "eager", quick));
      continue;
    }
    const bool graphs = model::cuda_graphs_available();
    if (!graphs) fmt::print(stderr, "npe-bench train: this build has no CUDA graphs; eager rows only\n");
    for (const auto kind : {model::Kind::Classic, model::Kind::Modern})
      for (const std::string variant : {"eager", "graph", "graph+bf16"}) {
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
    j["rows"].push_back({{"backend", x.backend}, {"model", x.model}, {"variant", x.variant}, {"batch", x.batch},
                         {"steps", x.steps},
                         {"seconds", x.seconds}, {"samples_per_s", x.rate()}, {"recipe_samples", recipe},
                         {"recipe_minutes", minutes}});
    fmt::print("{:<5} {:<8} {:<11} {:>6} {:>7} {:>9.2f} {:>13.4g} {:>16.4g}\n", x.backend, x.model, x.variant, x.batch,
               x.steps, x.seconds, x.rate(), minutes);
  }
  write_file_atomic(csv_path, csv);
  write_file_atomic(json_path, j.dump(2) + "\n");
  fmt::print("wrote {} and {}\n", csv_path, json_path);
  return 0;
}

}  // namespace npe::tools
