#include "npe/model/train.h"

#include <cmath>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/core/parallel.h"
#include "npe/model/distributed.h"
#include "train_run.h"

namespace npe::model {
using torch::Tensor;

Windows gather_windows(const Tensor& traj, const Tensor& ids) {
  const int64_t T = traj.size(1), N = traj.size(2);
  auto flat = traj.reshape({-1, N, traj.size(3)});
  auto frame = ids.div(T - 2, "floor") * T + ids.remainder(T - 2) + 1;  // index of frame t
  return {flat.index_select(0, frame - 1), flat.index_select(0, frame), flat.index_select(0, frame + 1)};
}

double window_mse(NPEImpl* net, const Tensor& traj_in, const Tensor& ids, int64_t batch) {
  torch::NoGradGuard no_grad;
  // a model without walls on a walls world's objects: it sees the balls alone
  const bool objects = traj_in.size(3) == kWallStateDim;
  const Tensor traj = net && !net->config().walls && objects
                          ? traj_in.narrow(2, 0, traj_in.size(2) - kWallObjects).narrow(3, 0, 5)
                          : traj_in;
  if (net && net->config().walls && !objects)
    throw Error("window_mse: a walls model needs the object states of a walls world (object_states)");
  const bool was_training = net && net->is_training();
  if (net) net->eval();
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < ids.size(0); i += batch) {
    auto w = gather_windows(traj, ids.narrow(0, i, std::min(batch, ids.size(0) - i)));
    auto pred = net ? net->forward(w.prev, w.cur) : w.cur.narrow(-1, 2, 2);
    const Tensor present = present_balls(w.cur);  // absent balls count for nothing
    sum += ((pred - w.next.narrow(-1, 2, 2)).pow(2).sum(-1) * present).sum().to(torch::kFloat64).item<double>();
    count += 2 * present.sum().item<int64_t>();
  }
  if (net && was_training) net->train();
  return count ? sum / count : 0.0;
}

double classic_lr(int64_t step, double base) {
  if (step <= 50000) return base;
  return base * std::pow(0.99, static_cast<double>((step - 50000) / 2500));
}

double modern_lr(int64_t step, int64_t total, double base) {
  const int64_t warm = std::max<int64_t>(1, total / 10);
  if (step < warm) return base * (0.1 + 0.9 * static_cast<double>(step) / warm);
  const double p = static_cast<double>(step - warm) / std::max<int64_t>(1, total - warm);
  return base * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, p)));
}

TrainConfig default_train_config(Kind kind) {
  TrainConfig c;
  c.model.kind = kind;
  if (!modern_recipe(kind)) {  // the classic model and the paper's baselines: the paper's recipe
    c.batch_size = 50;
    c.optimizer = "rmsprop";
    c.lr = 3e-4;
    c.weight_decay = 0.0;
    c.max_grad_norm = 0.0;
    c.name = kind_name(kind);
  } else {
    c.batch_size = 2048;
    c.optimizer = "adamw";
    c.lr = 1e-3;
    c.weight_decay = 0.01;
    c.max_grad_norm = 1.0;
    c.name = kind_name(kind);
  }
  return c;
}

torch::Device pick_device(const std::string& d) {
  if (d == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  if (d == "cpu") return torch::kCPU;
  if (d == "cuda") {
    if (!torch::cuda::is_available())
      throw FieldError("device", " cuda: no CUDA device is available on this machine (use the cpu)");
    return torch::kCUDA;
  }
  throw FieldError("device", fmt::format(": expected auto, cpu or cuda, found '{}'", d));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& c, NPEImpl& net) {
  auto params = net.parameters();
  if (c.optimizer == "rmsprop")
    return std::make_unique<torch::optim::RMSprop>(params,
                                                   torch::optim::RMSpropOptions(c.lr).weight_decay(c.weight_decay));
  if (c.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
  if (c.optimizer == "adamw")
    return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
  throw FieldError("optimizer", fmt::format(": expected rmsprop, adam or adamw, found '{}'", c.optimizer));
}

double scheduled_lr(const TrainConfig& c, Kind kind, int64_t step, int64_t total_steps) {
  if (!modern_recipe(kind) && c.optimizer == "rmsprop") return classic_lr(step, c.lr);
  if (modern_recipe(kind)) return modern_lr(step, total_steps, c.lr);
  return c.lr;
}

WindowOrder::WindowOrder(int64_t windows, int64_t batch, uint64_t seed, torch::Device device)
    : windows_(windows),
      batch_(batch),
      steps_per_epoch_(std::max<int64_t>(1, windows / batch)),
      seed_(seed),
      device_(device),
      perm_(static_cast<size_t>(windows)) {}

const std::vector<int64_t>& WindowOrder::permutation(int64_t epoch) {
  if (epoch != epoch_) {
    for (int64_t i = 0; i < windows_; ++i) perm_[i] = i;
    datagen::Rng rng(seed_ ^ 0x6e70652d74726169ULL, static_cast<uint64_t>(epoch));
    for (int64_t i = windows_ - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.below(i + 1)]);
    epoch_ = epoch;
  }
  return perm_;
}

Tensor WindowOrder::batch(int64_t s) {
  permutation(s / steps_per_epoch_);
  const int64_t off = (s % steps_per_epoch_) * batch_;
  std::vector<int64_t> ids(batch_);
  for (int64_t i = 0; i < batch_; ++i) ids[i] = perm_[(off + i) % windows_];
  return torch::tensor(ids, torch::kLong).to(device_);
}

Windows add_random_walk_noise(const Windows& w, const Tensor& vel_std, double scale, double step_scale) {
  TORCH_CHECK(step_scale > 0, "random-walk noise needs the dataset's step_scale > 0");
  const Tensor present = present_balls(w.cur).unsqueeze(-1);  // [B, N, 1]
  const Tensor sigma = vel_std * (scale / std::sqrt(2.0)) * present;
  const Tensor e1 = torch::randn_like(w.cur.narrow(-1, 2, 2)) * sigma, e2 = torch::randn_like(e1) * sigma;
  const Tensor dv_prev = e1, dv_cur = e1 + e2;
  const Tensor dx_prev = dv_prev * step_scale, dx_cur = dx_prev + dv_cur * step_scale;
  auto noised = [](const Tensor& s, const Tensor& dx, const Tensor& dv) {
    return torch::cat({s.narrow(-1, 0, 2) + dx, s.narrow(-1, 2, 2) + dv, s.narrow(-1, 4, s.size(-1) - 4)}, -1);
  };
  Windows out;
  out.prev = noised(w.prev, dx_prev, dv_prev);
  out.cur = noised(w.cur, dx_cur, dv_cur);
  out.next = noised(w.next, torch::zeros_like(dx_cur), -dx_cur / step_scale);
  return out;
}

Tensor window_loss(NPEImpl& net, const Tensor& traj, const Tensor& ids, double input_noise, bool random_walk,
                   double step_scale) {
  auto w = gather_windows(traj, ids);
  const Tensor present = present_balls(w.cur);
  if (input_noise > 0 && random_walk) {
    w = add_random_walk_noise(w, net.state_std().narrow(0, 2, 2), input_noise, step_scale);
  } else if (input_noise > 0) {  // x, y, vx, vy of present balls; masses and targets untouched
    const Tensor scale = torch::cat(
        {net.state_std().narrow(0, 0, 4) * input_noise, torch::zeros({traj.size(3) - 4}, traj.options())});
    w.prev = w.prev + torch::randn_like(w.prev) * scale * present.unsqueeze(-1);
    w.cur = w.cur + torch::randn_like(w.cur) * scale * present.unsqueeze(-1);
  }
  return masked_velocity_mse(net.forward(w.prev, w.cur), w.next.narrow(-1, 2, 2), present);
}

void optimizer_step(torch::optim::Optimizer& optimizer, NPEImpl& net, const Tensor& loss, double lr,
                    double max_grad_norm) {
  for (auto& g : optimizer.param_groups()) g.options().set_lr(lr);
  optimizer.zero_grad();
  loss.backward();
  if (max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(net.parameters(), max_grad_norm);
  optimizer.step();
}

TrainResult train(const TrainConfig& cfg) {
  run::validate_config(cfg);
  torch::Device device = pick_device(cfg.device);
  // Data parallel when a launcher started several processes (distributed.h): process r trains on
  // GPU LOCAL_RANK; process 0 alone validates and writes the checkpoints, the CSV and the progress.
  const DistEnv env = dist_env_from_environment();
  if (env.distributed() && device.is_cuda()) device = local_cuda_device(env);
  ProcessGroup group(env, device);
  torch::set_num_threads(resolve_threads(cfg.threads));
  const run::Plan plan = run::make_plan(cfg, device, group);
  // Set-up on every process; an error on any of them stops all of them (ProcessGroup::agree).
  run::Setup setup;
  group.agree("setup", [&] { setup = run::set_up(cfg, plan, group.is_root()); });
  run::share_resumed(setup.resumed, group, device);
  return run::loop(cfg, plan, setup, group);
}

}  // namespace npe::model
