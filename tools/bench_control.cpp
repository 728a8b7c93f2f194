// npe-bench control: environment frames per second of the herding task (bench_train.h).
#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_train.h"
#include "npe/control/env.h"
#include "npe/core/io.h"
#include "npe/gpu/engine.h"

namespace npe::tools {
namespace {

struct ControlRow {
  std::string backend;
  int64_t envs = 0, frames = 0;
  double forward_s = 0, backward_s = 0;  // medians over repeats of `frames` steps
  double rate(double s) const { return static_cast<double>(envs * frames) / s; }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

ControlRow run(torch::Device device, int64_t envs, int steps, int repeats) {
  using Clock = std::chrono::steady_clock;
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  control::VecEnv env(control::herding_task(), envs, device, 1);
  torch::manual_seed(1);
  std::vector<double> fwd, bwd;
  for (int rep = 0; rep < repeats + 1; ++rep) {  // one warm-up
    sync();
    auto t0 = Clock::now();
    {
      torch::NoGradGuard g;
      for (int s = 0; s < steps; ++s) env.step(torch::rand({envs, 2}, torch::TensorOptions().device(device)) * 2 - 1);
    }
    sync();
    const double f = std::chrono::duration<double>(Clock::now() - t0).count();
    // windows of 16 steps, back-propagated into the actions
    t0 = Clock::now();
    for (int w = 0; w < steps / 16; ++w) {
      env.detach();
      const torch::Tensor a =
          (torch::rand({16, envs, 2}, torch::TensorOptions().device(device)) * 2 - 1).requires_grad_(true);
      torch::Tensor ret = torch::zeros({envs}, torch::TensorOptions().device(device));
      for (int s = 0; s < 16; ++s) ret = ret + env.step(a[s]).reward;
      ret.sum().backward();
    }
    sync();
    const double b = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rep > 0) fwd.push_back(f), bwd.push_back(b * steps / (16 * (steps / 16)));
  }
  return {device.is_cuda() ? "cuda" : "cpu", envs, steps, median(fwd), median(bwd)};
}

}  // namespace

int bench_control(bool do_cpu, bool do_cuda, bool quick, int repeats, const std::string& csv_path,
                  const std::string& json_path) {
  std::vector<ControlRow> rows;
  const int steps = quick ? 16 : 200;
  if (do_cpu) rows.push_back(run(torch::kCPU, quick ? 16 : 256, steps, repeats));
  if (do_cuda) rows.push_back(run(torch::Device(torch::kCUDA, 0), quick ? 256 : 4096, steps, repeats));
  std::string csv = "backend,task,envs,frames,forward_frames_per_s,forward_backward_frames_per_s\n";
  nlohmann::json j = {{"benchmark", "control"},
                      {"task", "herding"},
                      {"cuda_device", do_cuda ? gpu::cuda_device_name() : std::string()},
                      {"command", fmt::format("npe-bench control --device {} --repeats {}{}",
                                              do_cpu && do_cuda ? "all"
                                              : do_cuda         ? "cuda"
                                                                : "cpu",
                                              repeats, quick ? " --quick" : "")},
                      {"rows", nlohmann::json::array()}};
  fmt::print("{:<6} {:>6} {:>7} {:>16} {:>18}\n", "device", "envs", "frames", "forward frames/s", "fwd+bwd frames/s");
  for (const auto& r : rows) {
    csv += fmt::format("{},herding,{},{},{:.6g},{:.6g}\n", r.backend, r.envs, r.frames, r.rate(r.forward_s),
                       r.rate(r.backward_s));
    j["rows"].push_back({{"backend", r.backend},
                         {"envs", r.envs},
                         {"frames", r.frames},
                         {"forward_s", r.forward_s},
                         {"forward_backward_s", r.backward_s},
                         {"forward_frames_per_s", r.rate(r.forward_s)},
                         {"forward_backward_frames_per_s", r.rate(r.backward_s)}});
    fmt::print("{:<6} {:>6} {:>7} {:>16.4g} {:>18.4g}\n", r.backend, r.envs, r.frames, r.rate(r.forward_s),
               r.rate(r.backward_s));
  }
  write_file_atomic(csv_path, csv);
  write_file_atomic(json_path, j.dump(2) + "\n");
  fmt::print("wrote {} and {}\n", csv_path, json_path);
  return 0;
}

}  // namespace npe::tools
