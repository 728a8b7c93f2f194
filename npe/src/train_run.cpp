#include "train_run.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/core/interrupt.h"
#include "npe/core/io.h"
#include "npe/core/parallel.h"
#include "npe/core/progress.h"
#include "npe/datagen/world_identity.h"
#include "npe/model/checkpoint.h"
#include "npe/model/metrics_csv.h"

namespace npe::model::run {
namespace fs = std::filesystem;
using torch::Tensor;

namespace {

// Keeps the rows of an existing metrics CSV up to `max_step` (for --resume), byte for byte.
std::vector<std::string> read_csv_rows(const std::string& path, int64_t max_step) {
  std::vector<std::string> rows;
  if (!fs::exists(path)) return rows;
  for (const MetricsRow& r : parse_metrics_csv(read_file(path), fmt::format("'{}'", path)))
    if (r.step <= max_step) rows.push_back(r.line);
  return rows;
}

// Runs `read`; a plain npe::Error it throws becomes an error about `field` (the setting that made
// npe-train read the file), so that the tool names its flag.
template <typename F>
auto about_field(const char* field, F&& read) {
  try {
    return read();
  } catch (const FieldError&) {
    throw;
  } catch (const Interrupted&) {
    throw;
  } catch (const Error& e) {
    throw FieldError(field, std::string(" ") + e.what());
  }
}

// A notice for the user (resume, fallbacks): through cfg.note, else one line on stderr.
void note(const TrainConfig& cfg, const std::string& text) {
  if (cfg.note)
    cfg.note(text);
  else
    fmt::print(stderr, "{}\n", text);
}

double meta_number(const nlohmann::json& meta, const char* key, double fallback) {
  return meta.contains(key) && meta[key].is_number() ? meta[key].get<double>() : fallback;
}

// resume continues the run that wrote the checkpoint: settings that change the model, the data
// order or the optimizer must be the same. A different total_samples extends or shortens the
// run (for --modern it also reshapes the cosine schedule), so it is allowed with a note.
void check_resume_matches(const Checkpoint& ck, const TrainConfig& cfg, const ModelConfig& mc, const std::string& path,
                          int64_t world) {
  const nlohmann::json& t = ck.meta.contains("train") ? ck.meta["train"] : nlohmann::json::object();
  // The global batch is processes x --batch_size: a run resumes with as many processes as it had.
  const int64_t was_world = t.contains("world_size") && t["world_size"].is_number_integer()
                                ? t["world_size"].get<int64_t>()
                                : 1;
  if (was_world != world)
    throw FieldError("resume",
                     fmt::format(" '{}': the run was trained by {} process{} (WORLD_SIZE), this launch has {}; "
                                 "resume with as many processes, or start a new run with another name",
                                 path, was_world, was_world == 1 ? "" : "es", world));
  // A setting that differs is the error's field (the tool names its flag).
  auto same = [&](const char* key, const nlohmann::json& now) {
    if (!t.contains(key)) return;
    const nlohmann::json& was = t[key];
    const bool equal = was.is_number() && now.is_number()
                           ? std::abs(was.get<double>() - now.get<double>()) <= 1e-12 * std::abs(now.get<double>())
                           : was == now;
    if (!equal)
      throw FieldError(key, fmt::format(" {}: resuming '{}', whose run was trained with {} {}; resume with the "
                                        "same value or start a new run with another name",
                                        now.dump(), path, key, was.dump()));
  };
  same("batch_size", cfg.batch_size);
  same("seed", cfg.seed);
  same("optimizer", cfg.optimizer);
  same("lr", cfg.lr);
  same("weight_decay", cfg.weight_decay);
  same("max_grad_norm", cfg.max_grad_norm);
  same("input_noise", cfg.input_noise);
  same("noise", cfg.noise);
  const nlohmann::json was = ck.config.to_json(), now = mc.to_json();
  for (const char* key : {"msg_dim", "enc_blocks", "dec_blocks", "expansion", "dropout", "neighborhood", "mp_steps"})
    if (std::abs(was[key].get<double>() - now[key].get<double>()) >
        1e-9 * std::max(1.0, std::abs(now[key].get<double>())))
      throw FieldError(key, fmt::format(" {}: resuming '{}', whose model was built with {} {}", now[key].dump(), path,
                                        key, was[key].dump()));
  if (was["residual_velocity"] != now["residual_velocity"])
    throw FieldError("residual_velocity",
                     fmt::format(" {}: resuming '{}', whose model was built with residual_velocity {}",
                                 now["residual_velocity"].dump(), path, was["residual_velocity"].dump()));
  if (t.contains("total_samples") && t["total_samples"] != nlohmann::json(cfg.total_samples))
    note(cfg, fmt::format("resume: total_samples changed from {} to {}", t["total_samples"].dump(), cfg.total_samples));
}

}  // namespace

void validate_config(const TrainConfig& cfg) {
  if (cfg.name.empty()) throw FieldError("name", ": expected a run name, found an empty string");
  if (cfg.name.find('/') != std::string::npos || cfg.name == "." || cfg.name == "..")
    throw FieldError("name", fmt::format(" '{}': expected a run name (a file name inside the checkpoint directory, "
                                         "without '/'), found a path",
                                         cfg.name));
  if (cfg.resume && cfg.overwrite) throw FieldError("overwrite", ": replaces a run, resume continues it; choose one");
  if (cfg.batch_size < 1) throw FieldError("batch_size", fmt::format(": expected >= 1, found {}", cfg.batch_size));
  // A batch's pair inputs alone are batch x N x (N - 1) x 20 floats; refused before any allocation.
  constexpr int64_t kMaxBatch = int64_t{1} << 24;
  if (cfg.batch_size > kMaxBatch)
    throw FieldError(
        "batch_size",
        fmt::format(" {}: one batch's pair inputs alone would take {:.3g} GiB for 4 balls; "
                    "expected at most {} windows",
                    cfg.batch_size, static_cast<double>(cfg.batch_size) * 4 * 3 * 20 * 4 / (1 << 30), kMaxBatch));
  if (cfg.total_samples > int64_t{1} << 50)
    throw FieldError("total_samples", fmt::format(": expected at most 2^50 windows, found {}", cfg.total_samples));
  if (!(cfg.lr > 0)) throw FieldError("lr", fmt::format(": expected > 0, found {}", cfg.lr));
  if (cfg.weight_decay < 0)
    throw FieldError("weight_decay", fmt::format(": expected >= 0, found {}", cfg.weight_decay));
  if (cfg.max_grad_norm < 0)
    throw FieldError("max_grad_norm", fmt::format(": expected >= 0, found {}", cfg.max_grad_norm));
  if (!(cfg.input_noise >= 0 && cfg.input_noise < 100))
    throw FieldError(
        "input_noise",
        fmt::format(": expected a noise scale in [0, 100) feature standard deviations, found {}", cfg.input_noise));
  if (cfg.noise != "independent" && cfg.noise != "random_walk")
    throw FieldError("noise", fmt::format(": expected independent or random_walk, found '{}'", cfg.noise));
  if (cfg.noise == "random_walk" && !(cfg.input_noise > 0))
    throw FieldError("noise", " random_walk: the walk's scale is input_noise, which is 0; give input_noise > 0");
  if (cfg.eval_every < 0) throw FieldError("eval_every", fmt::format(": expected >= 0, found {}", cfg.eval_every));
  if (cfg.checkpoint_every < 0)
    throw FieldError("checkpoint_every",
                     fmt::format(": expected >= 0 steps (0: at each validation), found {}", cfg.checkpoint_every));
  if (cfg.val_windows < 1) throw FieldError("val_windows", fmt::format(": expected >= 1, found {}", cfg.val_windows));
  if (cfg.precision != "auto" && cfg.precision != "fp32" && cfg.precision != "bf16")
    throw FieldError("precision", fmt::format(": expected auto, fp32 or bf16, found '{}'", cfg.precision));
}

Plan make_plan(const TrainConfig& cfg, const torch::Device& device, ProcessGroup& group) {
  Plan p;
  p.device = device;
  p.world = group.size();
  const bool root = group.is_root();
  if (cfg.precision == "bf16" && !device.is_cuda())
    throw FieldError("precision", " bf16: bf16 autocast is for CUDA training (the CPU path stays float32)");
  p.step_options.bf16 = cfg.precision == "bf16" ||
                        (cfg.precision == "auto" && device.is_cuda() && cfg.model.kind == Kind::Modern);
  p.step_options.cuda_graph = cfg.cuda_graph && device.is_cuda() && cuda_graphs_available();
  p.step_options.group = p.world > 1 ? &group : nullptr;
  p.step_options.fused = cfg.fused_step;
  if (cfg.cuda_graph && device.is_cuda() && !cuda_graphs_available() && root)
    note(cfg, "this build has no CUDA graphs (built without a CUDA compiler); steps run eagerly");
  p.global_batch = cfg.batch_size * p.world;
  if (cfg.total_samples < p.global_batch)
    throw FieldError("total_samples",
                     fmt::format(": expected at least one global batch ({} processes x batch_size {} = "
                                 "{}), found {}",
                                 p.world, cfg.batch_size, p.global_batch, cfg.total_samples));
  p.last_path = (fs::path(cfg.checkpoint_dir) / (cfg.name + ".pt")).string();
  p.best_path = (fs::path(cfg.checkpoint_dir) / (cfg.name + ".best.pt")).string();
  p.csv_path = cfg.metrics_csv.empty() ? (fs::path(cfg.checkpoint_dir) / (cfg.name + ".csv")).string()
                                       : cfg.metrics_csv;
  p.total_steps = cfg.total_samples / p.global_batch;
  p.eval_every = cfg.eval_every > 0 ? cfg.eval_every : std::max<int64_t>(1, p.total_steps / 20);
  return p;
}

Setup set_up(const TrainConfig& cfg, const Plan& plan, bool root) {
  Setup s;
  const torch::Device& device = plan.device;
  if (root) {
    // One process writes a run at a time; a fresh run never replaces an existing one unasked.
    s.lock = std::make_shared<OutputLock>(plan.last_path, "run");
    if (!cfg.resume && !cfg.overwrite)
      for (const std::string& path : {plan.last_path, plan.best_path, plan.csv_path})
        if (fs::exists(fs::symlink_status(path)))
          throw FieldError("name", fmt::format(" '{}': a run of this name exists ('{}'); continue it with resume, "
                                               "replace it with overwrite, or choose another name",
                                               cfg.name, path));
    std::vector<CommandFile> files;
    for (const fs::path& f : datagen::dataset_files(cfg.dataset_prefix)) files.push_back({"dataset file", f, false});
    files.push_back({"checkpoint", plan.last_path, true});
    files.push_back({"best checkpoint", plan.best_path, true});
    files.push_back({"metrics_csv", plan.csv_path, true});
    check_distinct_files(files);
    check_writable(plan.last_path);
    check_writable(plan.csv_path);
    // overwrite: the old run's files go now, so that a new run stopped early never sits beside
    // the old run's best checkpoint or metrics
    if (cfg.overwrite)
      for (const std::string& path : {plan.last_path, plan.best_path, plan.csv_path}) {
        std::error_code ec;
        fs::remove(output_target(path), ec);
      }
    // a run killed while writing one of its files (SIGKILL) leaves that file's temporary beside
    // it; this run may never write that file again (run.best.pt when no later validation
    // improves), so they are removed here rather than at the next write
    for (const std::string& path : {plan.last_path, plan.best_path, plan.csv_path})
      remove_stale_temps(output_target(path));  // temporaries lie beside the file a link names
  }
  // data
  s.manifest = datagen::read_manifest(cfg.dataset_prefix);
  const auto train_traj = datagen::load_split(cfg.dataset_prefix, s.manifest, "train");
  const auto val_traj = datagen::load_split(cfg.dataset_prefix, s.manifest, "val");
  // One host copy of the training split serves the normalisation fit and the device copy (on
  // CPU they are the same tensor).
  // a walls world: object states, the wall blocks after the balls (model.h)
  const Tensor train_host = model_states(train_traj, s.manifest, torch::kCPU);
  s.train_t = train_host.to(device);
  s.val_t = model_states(val_traj, s.manifest, device);
  const int64_t val_total = val_traj.windows();
  const int64_t nval = std::min(cfg.val_windows, val_total);
  s.val_ids = (torch::arange(nval, torch::kFloat64) * (static_cast<double>(val_total) / nval))
                  .floor()
                  .to(torch::kLong)
                  .to(device);

  // model
  torch::manual_seed(cfg.seed);
  ModelConfig mc = cfg.model;
  if (!(cfg.neighborhood_radii > 0))
    throw FieldError("neighborhood",
                     fmt::format(": expected a positive number of radii, found {}", cfg.neighborhood_radii));
  mc.neighborhood = cfg.neighborhood_radii * s.manifest.world.radius / s.manifest.world.width;
  mc.walls = !s.manifest.world.walls.empty();  // a walls world: object states (model.h)
  s.net = make_model(mc);
  s.net->fit_normalisation(train_host);
  s.net->to(device);
  s.optimizer = make_optimizer(cfg, *s.net);

  // resume: process 0 reads the checkpoint; the others receive its state (TrainStep::broadcast_state)
  if (cfg.resume && root && fs::exists(plan.last_path)) {
    Checkpoint ck = about_field("resume", [&] { return load_checkpoint(plan.last_path, mc.kind, "", device); });
    check_resume_matches(ck, cfg, mc, plan.last_path, plan.world);
    // the run continues on data of the world it was trained on (a checkpoint written before
    // checkpoints recorded their world is resumed unchecked, and records it from now on)
    if (ck.meta.contains("world_identity")) {
      check_dataset_matches(ck, s.manifest, plan.last_path, cfg.dataset_prefix);
    } else {
      note(cfg, fmt::format("resume: '{}' records no training world (an older checkpoint); not checked against the "
                            "dataset",
                            plan.last_path));
    }
    // ... and on the same dataset (another draw of the same world changes every later batch)
    const nlohmann::json& was = ck.meta.contains("dataset") ? ck.meta["dataset"] : nlohmann::json::object();
    if (was.contains("seed") && was.contains("num_scenes") &&
        (was["seed"] != nlohmann::json(s.manifest.seed) || was["num_scenes"] != nlohmann::json(s.manifest.num_scenes)))
      throw FieldError("dataset_prefix",
                       fmt::format(" '{}': a dataset of seed {} with {} scenes; the run '{}' being resumed trained "
                                   "on seed {} with {} scenes; resume on that dataset or start a new run",
                                   cfg.dataset_prefix, s.manifest.seed, s.manifest.num_scenes, plan.last_path,
                                   was["seed"].dump(), was["num_scenes"].dump()));
    s.net = ck.net;
    s.net->train();
    s.optimizer = make_optimizer(cfg, *s.net);
    about_field("resume", [&] {
      load_optimizer_state(plan.last_path, *s.optimizer, device);
      return 0;
    });
    Resumed& r = s.resumed;
    r.step = ck.step;
    r.best_val = meta_number(ck.meta, "best_val", INFINITY);
    r.elapsed = meta_number(ck.meta, "seconds", 0.0);
    r.loss_sum = meta_number(ck.meta, "loss_sum", 0.0);
    r.loss_count = ck.meta.contains("loss_count") ? ck.meta["loss_count"].get<int64_t>() : -1;
    r.csv_rows = about_field("metrics_csv", [&] { return read_csv_rows(plan.csv_path, r.step); });
    note(cfg, fmt::format("resuming '{}' at step {} of {}", plan.last_path, r.step, plan.total_steps));
  } else if (cfg.resume && root) {
    note(cfg, fmt::format("resume: no checkpoint '{}' yet, starting from step 0", plan.last_path));
  }
  s.net->train();
  return s;
}

void share_resumed(Resumed& r, ProcessGroup& group, const torch::Device& device) {
  if (group.size() == 1) return;
  // the step, the loss accumulator and the time already spent; best_val and the CSV stay on
  // process 0, which alone validates and writes
  const Tensor head = torch::tensor(
                          {static_cast<double>(r.step), r.loss_sum, static_cast<double>(r.loss_count), r.elapsed},
                          torch::TensorOptions().dtype(torch::kFloat64))
                          .to(device);
  group.broadcast(head, 0);
  const Tensor h = head.cpu();
  r.step = static_cast<int64_t>(h[0].item<double>());
  r.loss_sum = h[1].item<double>();
  r.loss_count = static_cast<int64_t>(h[2].item<double>());
  r.elapsed = h[3].item<double>();
}

nlohmann::json run_metadata(const TrainConfig& cfg, const Plan& plan, const datagen::Manifest& manifest) {
  return {{"train",
           {{"dataset_prefix", cfg.dataset_prefix},
            {"batch_size", cfg.batch_size},
            {"total_samples", cfg.total_samples},
            {"optimizer", cfg.optimizer},
            {"lr", cfg.lr},
            {"weight_decay", cfg.weight_decay},
            {"max_grad_norm", cfg.max_grad_norm},
            {"input_noise", cfg.input_noise},
            {"noise", cfg.noise},
            {"seed", cfg.seed},
            {"name", cfg.name},
            {"precision", plan.step_options.bf16 ? "bf16" : "fp32"},
            {"cuda_graph", plan.step_options.cuda_graph},
            {"fused_step", cfg.fused_step},
            {"world_size", plan.world}}},
          {"dataset",
           {{"pos_scale", manifest.pos_scale()},
            {"vel_scale", manifest.vel_scale()},
            {"step_scale", manifest.step_scale()},
            {"radius", manifest.world.radius},
            {"width", manifest.world.width},
            {"height", manifest.world.height},
            {"num_balls", manifest.world.num_balls},
            {"ball_counts", manifest.world.ball_counts},
            {"frame_dt", manifest.world.frame_dt},
            {"variable_mass", manifest.world.variable_mass},
            {"preset", manifest.world.preset},
            {"seed", manifest.seed},  // the dataset's identity: a resumed run checks it
            {"num_scenes", manifest.num_scenes},
            {"engine", manifest.engine}}},
          {"world_identity", datagen::world_identity(manifest).to_json()}};
}

TrainResult loop(const TrainConfig& cfg, const Plan& plan, Setup& setup, ProcessGroup& group) {
  const torch::Device& device = plan.device;
  const bool root = group.is_root();
  const int64_t world = plan.world, global_batch = plan.global_batch, total_steps = plan.total_steps;
  const int64_t eval_every = plan.eval_every;
  const std::string &last_path = plan.last_path, &best_path = plan.best_path, &csv_path = plan.csv_path;
  const StepOptions& step_options = plan.step_options;
  NPEImpl& net = *setup.net;
  const Tensor &val_t = setup.val_t, &val_ids = setup.val_ids;
  int64_t step = setup.resumed.step;
  double best_val = setup.resumed.best_val;
  const double elapsed_before = setup.resumed.elapsed;
  std::vector<std::string>& csv_rows = setup.resumed.csv_rows;
  const nlohmann::json meta_base = run_metadata(cfg, plan, setup.manifest);

  TrainResult res;
  res.rank = group.rank();
  res.world_size = world;
  if (root) res.baseline_val = window_mse(nullptr, val_t, val_ids);
  res.last_checkpoint = last_path;
  res.best_checkpoint = best_path;
  res.metrics_csv = csv_path;

  std::optional<npe::Progress> progress;  // process 0's
  if (root) progress.emplace(fmt::format("npe-train {}", cfg.name), total_steps);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t start_step = step;
  TrainConfig step_cfg = cfg;  // the step's noise integrates positions as the dataset does
  step_cfg.step_scale = setup.manifest.step_scale();
  TrainStep trainer(step_cfg, net, *setup.optimizer, setup.train_t, total_steps, step, step_options);
  trainer.broadcast_state();
  if (setup.resumed.loss_count >= 0) trainer.restore_loss_accumulator(setup.resumed.loss_sum, setup.resumed.loss_count);
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
    save_checkpoint(last_path, net, meta, setup.optimizer.get());
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
                            saved_step >= 0         ? fmt::format("'{}' (step {})", last_path, saved_step)
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
        last_val = window_mse(&net, val_t, val_ids);
        csv_rows.push_back(fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.3f}", step, step * global_batch, last_train,
                                       last_val, lr, secs));
        std::string csv = std::string(kMetricsCsvHeader) + "\n";
        for (const auto& r : csv_rows) csv += r + "\n";
        write_file_atomic(csv_path, csv);
      }
      if (root && last_val < best_val) {
        best_val = last_val;
        nlohmann::json meta = save_last(secs);
        save_checkpoint(best_path, net, meta, nullptr);
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
                                 : fmt::format("{:.0f} samples/s train {:.3e} val {:.3e} (baseline {:.3e})", rate,
                                               last_train, last_val, res.baseline_val));
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

}  // namespace npe::model::run
