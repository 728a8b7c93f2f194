#include "npe/model/train.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "npe/core/interrupt.h"
#include "npe/core/progress.h"
#include "npe/core/io.h"
#include "npe/core/parallel.h"
#include "npe/datagen/world_identity.h"
#include "npe/model/checkpoint.h"
#include "npe/model/distributed.h"
#include "npe/model/metrics_csv.h"
#include "npe/model/train_step.h"

namespace npe::model {
namespace fs = std::filesystem;
using torch::Tensor;

Tensor to_tensor(const datagen::Trajectories& t, const torch::Device& device) {
  return torch::from_blob(const_cast<float*>(t.data.data()),
                          {t.scenes, t.timesteps, t.num_balls, datagen::kStateDim}, torch::kFloat32)
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}

Windows gather_windows(const Tensor& traj, const Tensor& ids) {
  const int64_t T = traj.size(1), N = traj.size(2);
  auto flat = traj.reshape({-1, N, datagen::kStateDim});
  auto frame = ids.div(T - 2, "floor") * T + ids.remainder(T - 2) + 1;  // index of frame t
  return {flat.index_select(0, frame - 1), flat.index_select(0, frame), flat.index_select(0, frame + 1)};
}

double window_mse(NPEImpl* net, const Tensor& traj, const Tensor& ids, int64_t batch) {
  torch::NoGradGuard no_grad;
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
  if (kind != Kind::Modern) {  // the classic model and the paper's baselines: the paper's recipe
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
    c.name = "modern";
  }
  return c;
}

torch::Device pick_device(const std::string& d) {
  if (d == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  if (d == "cpu") return torch::kCPU;
  if (d == "cuda") {
    if (!torch::cuda::is_available())
      throw Error("--device cuda: no CUDA device is available on this machine (use --device cpu)");
    return torch::kCUDA;
  }
  throw Error(fmt::format("--device: expected auto, cpu or cuda, found '{}'", d));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& c, NPEImpl& net) {
  auto params = net.parameters();
  if (c.optimizer == "rmsprop")
    return std::make_unique<torch::optim::RMSprop>(
        params, torch::optim::RMSpropOptions(c.lr).weight_decay(c.weight_decay));
  if (c.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
  if (c.optimizer == "adamw")
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
  throw Error(fmt::format("--optimizer: expected rmsprop, adam or adamw, found '{}'", c.optimizer));
}

double scheduled_lr(const TrainConfig& c, Kind kind, int64_t step, int64_t total_steps) {
  if (kind != Kind::Modern && c.optimizer == "rmsprop") return classic_lr(step, c.lr);
  if (kind == Kind::Modern) return modern_lr(step, total_steps, c.lr);
  return c.lr;
}

WindowOrder::WindowOrder(int64_t windows, int64_t batch, uint64_t seed, torch::Device device)
    : windows_(windows), batch_(batch), steps_per_epoch_(std::max<int64_t>(1, windows / batch)), seed_(seed),
      device_(device), perm_(static_cast<size_t>(windows)) {}

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

Tensor window_loss(NPEImpl& net, const Tensor& traj, const Tensor& ids, double input_noise) {
  auto w = gather_windows(traj, ids);
  const Tensor present = present_balls(w.cur);
  if (input_noise > 0) {  // x, y, vx, vy of present balls; masses and targets untouched
    const Tensor scale = torch::cat({net.state_std().narrow(0, 0, 4) * input_noise, torch::zeros({1}, traj.options())});
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

namespace {

const char* kCsvHeader = kMetricsCsvHeader;

// Keeps the rows of an existing metrics CSV up to `max_step` (for --resume), byte for byte.
std::vector<std::string> read_csv_rows(const std::string& path, int64_t max_step) {
  std::vector<std::string> rows;
  if (!fs::exists(path)) return rows;
  for (const MetricsRow& r : parse_metrics_csv(read_file(path), fmt::format("--metrics_csv '{}'", path)))
    if (r.step <= max_step) rows.push_back(r.line);
  return rows;
}

double meta_number(const nlohmann::json& meta, const char* key, double fallback) {
  return meta.contains(key) && meta[key].is_number() ? meta[key].get<double>() : fallback;
}

// --resume continues the run that wrote the checkpoint: flags that change the model, the data
// order or the optimizer must be the same. A different --total_samples extends or shortens the
// run (for --modern it also reshapes the cosine schedule), so it is allowed with a note.
void check_resume_matches(const Checkpoint& ck, const TrainConfig& cfg, const ModelConfig& mc,
                          const std::string& path, int64_t world) {
  const nlohmann::json& t = ck.meta.contains("train") ? ck.meta["train"] : nlohmann::json::object();
  // The global batch is processes x --batch_size: a run resumes with as many processes as it had.
  const int64_t was_world = t.contains("world_size") && t["world_size"].is_number_integer() ? t["world_size"].get<int64_t>() : 1;
  if (was_world != world)
    throw Error(fmt::format("--resume '{}': the run was trained by {} process{} (WORLD_SIZE), this launch has {}; "
                            "resume with as many processes, or start a new run with another --name",
                            path, was_world, was_world == 1 ? "" : "es", world));
  auto same = [&](const char* flag, const char* key, const nlohmann::json& now) {
    if (!t.contains(key)) return;
    const nlohmann::json& was = t[key];
    const bool equal = was.is_number() && now.is_number()
                           ? std::abs(was.get<double>() - now.get<double>()) <= 1e-12 * std::abs(now.get<double>())
                           : was == now;
    if (!equal)
      throw Error(fmt::format("--resume '{}': the run was trained with --{} {}, this command asks for {}; "
                              "resume with the same flags or start a new run with another --name",
                              path, flag, was.dump(), now.dump()));
  };
  same("batch_size", "batch_size", cfg.batch_size);
  same("seed", "seed", cfg.seed);
  same("optimizer", "optimizer", cfg.optimizer);
  same("lr", "lr", cfg.lr);
  same("weight_decay", "weight_decay", cfg.weight_decay);
  same("max_grad_norm", "max_grad_norm", cfg.max_grad_norm);
  same("input_noise", "input_noise", cfg.input_noise);
  const nlohmann::json was = ck.config.to_json(), now = mc.to_json();
  for (const char* key : {"msg_dim", "enc_blocks", "dec_blocks", "expansion", "dropout", "neighborhood"})
    if (std::abs(was[key].get<double>() - now[key].get<double>()) > 1e-9 * std::max(1.0, std::abs(now[key].get<double>())))
      throw Error(fmt::format("--resume '{}': the model was built with {} {}, this command asks for {}", path,
                              key, was[key].dump(), now[key].dump()));
  if (was["residual_velocity"] != now["residual_velocity"])
    throw Error(fmt::format("--resume '{}': the model was built with residual_velocity {}, this command asks for {} "
                            "(--residual_velocity)", path, was["residual_velocity"].dump(), now["residual_velocity"].dump()));
  if (t.contains("total_samples") && t["total_samples"] != nlohmann::json(cfg.total_samples))
    fmt::print(stderr, "npe-train: --resume: --total_samples changed from {} to {}\n", t["total_samples"].dump(),
               cfg.total_samples);
}

}  // namespace

TrainResult train(const TrainConfig& cfg) {
  if (cfg.name.empty()) throw Error("--name: expected a run name, found an empty string");
  if (cfg.batch_size < 1) throw Error(fmt::format("--batch_size: expected >= 1, found {}", cfg.batch_size));
  // A batch's pair inputs alone are batch x N x (N - 1) x 20 floats; refused before any allocation.
  constexpr int64_t kMaxBatch = int64_t{1} << 24;
  if (cfg.batch_size > kMaxBatch)
    throw Error(fmt::format("--batch_size {}: one batch's pair inputs alone would take {:.3g} GiB for 4 balls; "
                            "expected at most {} windows", cfg.batch_size,
                            static_cast<double>(cfg.batch_size) * 4 * 3 * 20 * 4 / (1 << 30), kMaxBatch));
  if (cfg.total_samples > int64_t{1} << 50)
    throw Error(fmt::format("--total_samples: expected at most 2^50 windows, found {}", cfg.total_samples));
  if (!(cfg.lr > 0)) throw Error(fmt::format("--lr: expected > 0, found {}", cfg.lr));
  if (cfg.weight_decay < 0) throw Error(fmt::format("--weight_decay: expected >= 0, found {}", cfg.weight_decay));
  if (cfg.max_grad_norm < 0) throw Error(fmt::format("--max_grad_norm: expected >= 0, found {}", cfg.max_grad_norm));
  if (!(cfg.input_noise >= 0 && cfg.input_noise < 100))
    throw Error(fmt::format("--input_noise: expected a noise scale in [0, 100) feature standard deviations, found {}",
                            cfg.input_noise));
  if (cfg.eval_every < 0) throw Error(fmt::format("--eval_every: expected >= 0, found {}", cfg.eval_every));
  if (cfg.checkpoint_every < 0)
    throw Error(fmt::format("--checkpoint_every: expected >= 0 steps (0: at each validation), found {}", cfg.checkpoint_every));
  if (cfg.val_windows < 1) throw Error(fmt::format("--val_windows: expected >= 1, found {}", cfg.val_windows));
  torch::Device device = pick_device(cfg.device);
  // Data parallel when a launcher started several processes (distributed.h): process r trains on
  // GPU LOCAL_RANK; process 0 alone validates and writes the checkpoints, the CSV and the progress.
  const DistEnv env = dist_env_from_environment();
  if (env.distributed() && device.is_cuda()) device = local_cuda_device(env);
  ProcessGroup group(env, device);
  const bool root = group.is_root();
  const int64_t world = group.size();
  if (cfg.precision != "auto" && cfg.precision != "fp32" && cfg.precision != "bf16")
    throw Error(fmt::format("--precision: expected auto, fp32 or bf16, found '{}'", cfg.precision));
  if (cfg.precision == "bf16" && !device.is_cuda())
    throw Error("--precision bf16: bf16 autocast is for CUDA training (the CPU path stays float32)");
  StepOptions step_options;
  step_options.bf16 = cfg.precision == "bf16" || (cfg.precision == "auto" && device.is_cuda() && cfg.model.kind == Kind::Modern);
  step_options.cuda_graph = cfg.cuda_graph && device.is_cuda() && cuda_graphs_available();
  step_options.group = world > 1 ? &group : nullptr;
  step_options.fused = cfg.fused_step;
  if (cfg.cuda_graph && device.is_cuda() && !cuda_graphs_available() && root)
    fmt::print(stderr, "npe-train: this build has no CUDA graphs (built without a CUDA compiler); steps run eagerly\n");
  torch::set_num_threads(resolve_threads(cfg.threads));
  const int64_t global_batch = cfg.batch_size * world;
  if (cfg.total_samples < global_batch)
    throw Error(fmt::format("--total_samples: expected at least one global batch ({} processes x --batch_size {} = "
                            "{}), found {}", world, cfg.batch_size, global_batch, cfg.total_samples));

  const std::string last_path = (fs::path(cfg.checkpoint_dir) / (cfg.name + ".pt")).string();
  const std::string best_path = (fs::path(cfg.checkpoint_dir) / (cfg.name + ".best.pt")).string();
  const std::string csv_path = cfg.metrics_csv.empty()
                                   ? (fs::path(cfg.checkpoint_dir) / (cfg.name + ".csv")).string()
                                   : cfg.metrics_csv;
  const int64_t total_steps = cfg.total_samples / global_batch;
  const int64_t eval_every = cfg.eval_every > 0 ? cfg.eval_every : std::max<int64_t>(1, total_steps / 20);

  // Set-up, on every process; an error on any of them stops all of them (ProcessGroup::agree).
  datagen::Manifest manifest;
  Tensor train_t, val_t, val_ids;
  std::shared_ptr<NPEImpl> net;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  int64_t step = 0;
  double best_val = INFINITY, elapsed_before = 0;
  std::vector<std::string> csv_rows;
  nlohmann::json resumed_meta = nlohmann::json::object();
  group.agree("setup", [&] {
    if (root) {
      check_writable(last_path);
      check_writable(csv_path);
      // a run killed while writing one of its files (SIGKILL) leaves that file's temporary beside
      // it; this run may never write that file again (run.best.pt when no later validation
      // improves), so they are removed here rather than at the next write
      for (const std::string& path : {last_path, best_path, csv_path}) remove_stale_temps(path);
    }
    // data
    manifest = datagen::read_manifest(cfg.dataset_prefix);
    const auto train_traj = datagen::load_split(cfg.dataset_prefix, manifest, "train");
    const auto val_traj = datagen::load_split(cfg.dataset_prefix, manifest, "val");
    // One host copy of the training split serves the normalisation fit and the device copy (on
    // CPU they are the same tensor).
    const Tensor train_host = to_tensor(train_traj, torch::kCPU);
    train_t = train_host.to(device);
    val_t = to_tensor(val_traj, device);
    const int64_t val_total = val_traj.windows();
    const int64_t nval = std::min(cfg.val_windows, val_total);
    val_ids = (torch::arange(nval, torch::kFloat64) * (static_cast<double>(val_total) / nval))
                  .floor().to(torch::kLong).to(device);

    // model
    torch::manual_seed(cfg.seed);
    ModelConfig mc = cfg.model;
    if (!(cfg.neighborhood_radii > 0))
      throw Error(fmt::format("--neighborhood: expected a positive number of radii, found {}", cfg.neighborhood_radii));
    mc.neighborhood = cfg.neighborhood_radii * manifest.world.radius / manifest.world.width;
    net = make_model(mc);
    net->fit_normalisation(train_host);
    net->to(device);
    optimizer = make_optimizer(cfg, *net);
    // Process 0 reads the checkpoint; the others receive its state (TrainStep::broadcast_state).
    if (cfg.resume && root && fs::exists(last_path)) {
      Checkpoint ck = load_checkpoint(last_path, mc.kind, "--resume", device);
      check_resume_matches(ck, cfg, mc, last_path, world);
      net = ck.net;
      net->train();
      optimizer = make_optimizer(cfg, *net);
      load_optimizer_state(last_path, *optimizer, device);
      step = ck.step;
      best_val = meta_number(ck.meta, "best_val", INFINITY);
      elapsed_before = meta_number(ck.meta, "seconds", 0.0);
      resumed_meta = ck.meta;
      csv_rows = read_csv_rows(csv_path, step);
      fmt::print(stderr, "npe-train: resuming '{}' at step {} of {}\n", last_path, step, total_steps);
    } else if (cfg.resume && root) {
      fmt::print(stderr, "npe-train: --resume: no checkpoint '{}' yet, starting from step 0\n", last_path);
    }
    net->train();
  });
  // What process 0 read from a checkpoint and every process needs: the step, the loss
  // accumulator and the time already spent.
  double acc_sum = meta_number(resumed_meta, "loss_sum", 0.0);
  int64_t acc_count = resumed_meta.contains("loss_count") ? resumed_meta["loss_count"].get<int64_t>() : -1;
  if (world > 1) {
    const Tensor head = torch::tensor({static_cast<double>(step), acc_sum, static_cast<double>(acc_count), elapsed_before},
                                      torch::TensorOptions().dtype(torch::kFloat64)).to(device);
    group.broadcast(head, 0);
    const Tensor h = head.cpu();
    step = static_cast<int64_t>(h[0].item<double>());
    acc_sum = h[1].item<double>();
    acc_count = static_cast<int64_t>(h[2].item<double>());
    elapsed_before = h[3].item<double>();
  }

  nlohmann::json meta_base = {
      {"train", {{"dataset_prefix", cfg.dataset_prefix}, {"batch_size", cfg.batch_size},
                 {"total_samples", cfg.total_samples}, {"optimizer", cfg.optimizer}, {"lr", cfg.lr},
                 {"weight_decay", cfg.weight_decay}, {"max_grad_norm", cfg.max_grad_norm},
                 {"input_noise", cfg.input_noise}, {"seed", cfg.seed}, {"name", cfg.name}, {"precision", step_options.bf16 ? "bf16" : "fp32"},
                 {"cuda_graph", step_options.cuda_graph}, {"fused_step", cfg.fused_step}, {"world_size", world}}},
      {"dataset", {{"pos_scale", manifest.pos_scale()}, {"vel_scale", manifest.vel_scale()},
                   {"step_scale", manifest.step_scale()}, {"radius", manifest.world.radius},
                   {"width", manifest.world.width}, {"height", manifest.world.height},
                   {"num_balls", manifest.world.num_balls}, {"ball_counts", manifest.world.ball_counts},
                   {"frame_dt", manifest.world.frame_dt},
                   {"variable_mass", manifest.world.variable_mass}, {"preset", manifest.world.preset}}},
      {"world_identity", datagen::world_identity(manifest).to_json()}};

  TrainResult res;
  res.rank = group.rank();
  res.world_size = world;
  if (root) res.baseline_val = window_mse(nullptr, val_t, val_ids);
  res.last_checkpoint = last_path;
  res.best_checkpoint = best_path;
  res.metrics_csv = csv_path;

  std::optional<Progress> progress;  // process 0's
  if (root) progress.emplace(fmt::format("npe-train {}", cfg.name), total_steps);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t start_step = step;
  TrainStep trainer(cfg, *net, *optimizer, train_t, total_steps, step, step_options);
  trainer.broadcast_state();
  if (acc_count >= 0) trainer.restore_loss_accumulator(acc_sum, acc_count);
  res.gradient_buckets = trainer.gradient_buckets();
  // NaN/Inf losses are flagged on the device by the step; the flag is read every step on CPU
  // and every 100 steps on CUDA, so that the inner loop never waits for the GPU. With several
  // processes, stop requests (SIGINT/SIGTERM) are agreed on at the same steps.
  const int64_t check_every = device.is_cpu() ? 1 : 100;
  double last_train = NAN, last_val = NAN, lr = cfg.lr;
  auto seconds = [&] {
    return elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  int64_t saved_step = -1;  // the step of the last checkpoint this run wrote
  // A collective (the loss accumulator); process 0 writes.
  auto save_last = [&](double secs) {
    const auto [loss_sum, loss_count] = trainer.loss_accumulator();  // the evaluation interval so far
    nlohmann::json meta = meta_base;
    if (!root) return meta;
    meta["step"] = step;
    meta["samples_seen"] = step * global_batch;
    meta["seconds"] = secs;
    if (std::isfinite(last_val)) meta["val_loss"] = last_val;
    meta["baseline_val_loss"] = res.baseline_val;
    if (std::isfinite(best_val)) meta["best_val"] = best_val;
    meta["loss_sum"] = loss_sum;
    meta["loss_count"] = loss_count;
    trainer.sync_optimizer();
    save_checkpoint(last_path, *net, meta, optimizer.get());
    saved_step = step;
    return meta;
  };
  // Steps count from 1 as in the metrics CSV and checkpoints: the trainer's 0-based step index k
  // is step k + 1, whose global batch holds samples k * B .. (k + 1) * B - 1 of the run's data
  // order (B = processes x --batch_size).
  auto check_finite = [&] {
    const int64_t bad = trainer.first_nonfinite_step();
    if (bad < 0) return;
    throw Error(fmt::format("training loss became NaN or infinite at step {} (batch of samples {}..{} of the "
                            "run's data order); stopped; last good checkpoint: {}",
                            bad + 1, bad * global_batch, (bad + 1) * global_batch - 1,
                            saved_step >= 0 ? fmt::format("'{}' (step {})", last_path, saved_step)
                            : fs::exists(last_path) ? fmt::format("'{}' (from before this run)", last_path)
                                                    : std::string("none written yet")));
  };

  while (step < total_steps) {
    if (cfg.stop_after_steps > 0 && step - start_step >= cfg.stop_after_steps) {
      save_last(seconds());
      res.stopped_early = true;
      break;
    }
    // SIGINT/SIGTERM (the tool installs the handlers): stop checkpointed
    if (world == 1 ? interrupt_requested() : (step % check_every == 0 && group.any(interrupt_requested()))) {
      check_finite();
      save_last(seconds());
      res.interrupted = true;
      break;
    }
    trainer.run();
    ++step;
    if (step % check_every == 0) check_finite();

    if (step % eval_every == 0 || step == total_steps) {
      check_finite();
      last_train = trainer.take_mean_loss();
      lr = trainer.lr();
      const double secs = seconds();
      if (root) {
        last_val = window_mse(net.get(), val_t, val_ids);
        csv_rows.push_back(fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.3f}", step, step * global_batch,
                                       last_train, last_val, lr, secs));
        std::string csv = std::string(kCsvHeader) + "\n";
        for (const auto& r : csv_rows) csv += r + "\n";
        write_file_atomic(csv_path, csv);
      }
      if (root && last_val < best_val) {
        best_val = last_val;
        nlohmann::json meta = save_last(secs);
        save_checkpoint(best_path, *net, meta, nullptr);
      } else {
        save_last(secs);
      }
    } else if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) {
      check_finite();
      save_last(seconds());
    }
    if (cfg.progress && root) {
      const double rate = (step - start_step) * global_batch / std::max(1e-9, seconds() - elapsed_before);
      progress->update(step, std::isnan(last_val)
                                ? fmt::format("{:.0f} samples/s (first validation at step {})", rate, eval_every)
                                : fmt::format("{:.0f} samples/s train {:.3e} val {:.3e} (baseline {:.3e})",
                                              rate, last_train, last_val, res.baseline_val));
    }
  }
  if (progress) progress->finish();
  res.replica_divergence = trainer.replica_divergence();
  res.steps = step;
  res.start_step = start_step;
  res.best_val = best_val;
  res.final_val = last_val;
  res.seconds = seconds();
  res.samples_per_s = (step - start_step) * global_batch / std::max(1e-9, res.seconds - elapsed_before);
  res.bf16 = step_options.bf16;
  res.cuda_graph = trainer.captured();
  res.fused_step = trainer.fused();
  return res;
}

}  // namespace npe::model
