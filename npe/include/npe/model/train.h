// npe/model/train.h: training windows cut from trajectories, and the npe-train loop.
//
// A sample is one window (t-1, t, t+1) of one scene; the model predicts every ball of the window
// (each ball as focus), and the loss is the MSE over balls and both velocity components:
//   classic: MSE(v_t + dv, v_{t+1}); modern: MSE(v_hat_{t+1}, v_{t+1}) (normalised units).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "npe/datagen/dataset.h"
#include "npe/model/model.h"

namespace npe::model {

// Window w of a [S, T, N, 5] tensor is scene w / (T-2), frames (t-1, t, t+1) with t = 1 + w % (T-2).
struct Windows {
  torch::Tensor prev, cur, next;  // each [B, N, 5]
};
Windows gather_windows(const torch::Tensor& traj, const torch::Tensor& window_ids);

// Mean squared velocity error of `net` over the given windows and their present balls (batched,
// no grad).
// With `net` == nullptr: the constant-velocity baseline (v_{t+1} = v_t). `traj` may hold a walls
// world's object states (object_states): a model without walls then sees the balls alone.
double window_mse(NPEImpl* net, const torch::Tensor& traj, const torch::Tensor& window_ids, int64_t batch = 4096);

// "auto" (CUDA when present), "cpu" or "cuda"; throws npe::Error naming --device otherwise.
torch::Device pick_device(const std::string& device);

// Learning-rate schedules.
// Whether `kind` trains with the modern recipe (AdamW, batch 2048, warm-up and cosine, clipping):
// the modern NPE and the GNS; the classic NPE and the paper's baselines take the paper's.
inline bool modern_recipe(Kind kind) { return kind == Kind::Modern || kind == Kind::GNS; }
// Classic (paper): base until step 50,000, then x0.99 every 2,500 steps.
double classic_lr(int64_t step, double base);
// Modern: linear warm-up over the first 10% of steps from 0.1 x base to base, then cosine to 0.
double modern_lr(int64_t step, int64_t total_steps, double base);

struct TrainConfig {
  std::string dataset_prefix = "data/balls_n4_t60_uniform/balls_n4_t60_uniform";
  std::string name;  // checkpoints/<name>.pt and <name>.best.pt
  std::string checkpoint_dir = "checkpoints";
  std::string metrics_csv;          // default: <checkpoint_dir>/<name>.csv
  ModelConfig model;                // neighborhood is set from neighborhood_radii and the data
  double neighborhood_radii = 3.5;  // neighbourhood mask distance, in ball radii
  int64_t batch_size = 50;
  int64_t total_samples = 0;
  int64_t eval_every = 0;        // steps between validations (0: 20 over the run)
  int64_t checkpoint_every = 0;  // steps between checkpoints of <name>.pt (0: at each validation)
  int64_t val_windows = 20000;   // validation windows (evenly spread subset of the val split)
  std::string optimizer;         // rmsprop | adam | adamw
  double lr = 3e-4;
  double weight_decay = 0.0;
  double max_grad_norm = 0.0;         // 0: no clipping
  double input_noise = 0.0;           // noise injection on the input states (window_loss); 0: none
  std::string noise = "independent";  // input_noise's law: independent | random_walk (window_loss)
  // Normalised position advance per unit of normalised velocity per frame (the dataset's
  // step_scale): set from the dataset by train(); random-walk noise keeps the kinematics with it.
  double step_scale = 0.0;
  std::string device = "auto";     // auto | cpu | cuda
  std::string precision = "auto";  // auto (bf16 for the modern model on CUDA) | fp32 | bf16
  bool cuda_graph = true;          // CUDA: capture the step as a CUDA graph (train_step.h)
  bool fused_step = true;          // CUDA, classic model: the hand-written step (StepOptions::fused)
  uint64_t seed = 0;
  bool resume = false;
  // A fresh run (no resume) over an existing run of the same name (its checkpoint or metrics CSV
  // exists) is refused unless overwrite is set, so that no finished or live run is replaced.
  bool overwrite = false;
  int64_t stop_after_steps = 0;  // >0: stop (checkpointed) after this many steps of this run

  bool progress = true;
  int threads = 0;  // CPU threads (0: all cores)
  // Notices for the user (resuming, a setting changed on resume, a fallback), one line each
  // without a newline; empty: printed to stderr as they are. npe-train prefixes its name.
  std::function<void(const std::string&)> note;
};

// Paper / --modern defaults for the hyper-parameters that differ between the two models.
TrainConfig default_train_config(Kind kind);

struct TrainResult {
  int64_t steps = 0;           // step reached
  int64_t start_step = 0;      // step this run started from (> 0 when resumed)
  bool stopped_early = false;  // by stop_after_steps
  bool interrupted = false;    // by SIGINT/SIGTERM (install_interrupt_handlers), checkpointed
  double best_val = 0, final_val = 0;
  double baseline_val = 0;  // constant-velocity MSE on the same validation windows
  double seconds = 0, samples_per_s = 0;
  bool bf16 = false, cuda_graph = false;  // what the run used
  bool fused_step = false;                // the classic model's hand-written step (train_step.h)
  int rank = 0;                           // this process's rank; 0 writes the files and reports
  int64_t world_size = 1;                 // processes of the run (data parallel: distributed.h)
  int64_t gradient_buckets = 0;           // all-reduces per step (0 with one process)
  double replica_divergence = 0;          // max |parameter - process 0's| at the end (0 expected)
  std::string last_checkpoint, best_checkpoint, metrics_csv;
};

// The building blocks of npe-train's inner loop, shared with npe-bench train so that the
// benchmark times the loop the tool runs.

// The optimizer a config names (rmsprop | adam | adamw) over `net`'s parameters; throws
// npe::Error naming --optimizer otherwise.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& config, NPEImpl& net);

// The learning rate of step `step` of `total_steps`: the paper's decay with RMSprop for the
// classic model and the baselines (np, lstm), warm-up + cosine for the modern one, constant
// otherwise.
double scheduled_lr(const TrainConfig& config, Kind kind, int64_t step, int64_t total_steps);

// The run's data order: epoch e visits the training windows in a permutation drawn from
// (seed, e), so that a resumed run sees exactly the batches an uninterrupted one would have.
class WindowOrder {
 public:
  WindowOrder(int64_t windows, int64_t batch, uint64_t seed, torch::Device device);
  torch::Tensor batch(int64_t step);  // [batch] window ids (int64) on the device
  // Step s takes permutation(s / steps_per_epoch())[(o + i) % windows], i < batch, with
  // o = (s % steps_per_epoch()) * batch. The reference stays valid until the next call.
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  const std::vector<int64_t>& permutation(int64_t epoch);

 private:
  int64_t windows_, batch_, steps_per_epoch_, epoch_ = -1;
  uint64_t seed_;
  torch::Device device_;
  std::vector<int64_t> perm_;
};

// The training loss of `net` on windows `ids` of `traj` [S, T, N, F] (a scalar on the device): the
// velocity MSE over present balls. With input_noise > 0, noise of input_noise times each
// feature's standard deviation (the model's standardisation) is drawn from torch's default
// generator for x, y, vx and vy of the present balls:
// - `random_walk` false: independent Gaussian noise on both input frames; the target stays the
//   true next velocity;
// - `random_walk` true (graph network simulators' noise, Sanchez-Gonzalez et al. 2020, section
//   4.2): add_random_walk_noise, whose target is corrected so that the model learns to undo the
//   drift; `step_scale` as TrainConfig's.
torch::Tensor window_loss(NPEImpl& net, const torch::Tensor& traj, const torch::Tensor& ids, double input_noise = 0.0,
                          bool random_walk = false, double step_scale = 0.0);

// Random-walk noise on a batch of windows (Sanchez-Gonzalez et al. 2020, section 4.2, there on
// velocities over the input sequence): the velocity noise is a walk over the two input frames,
// dv(t-1) = e1 and dv(t) = e1 + e2 with e1, e2 ~ N(0, sigma^2 / 2) per ball and axis (so dv(t)
// has std sigma = vel_std * scale), and the positions drift with it as the rollout integrates:
// dx(t-1) = dv(t-1) step_scale, dx(t) = dx(t-1) + dv(t) step_scale. The target velocity is
// corrected to bring the noisy position back where the true one goes, v(t+1) - dx(t) / step_scale,
// so that a model trained on it undoes its own drift in a rollout. Only present balls (mass > 0)
// are noised; masses, wall blocks and the other features are untouched. vel_std: [2] (the model's
// state_std of vx, vy); the position noise follows from the velocity noise. Returns the noisy
// windows, `next` holding the corrected target velocity in its vx, vy.
Windows add_random_walk_noise(const Windows& w, const torch::Tensor& vel_std, double scale, double step_scale);

// Back-propagates `loss` and takes one step of `optimizer` at learning rate `lr`, clipping the
// gradient norm to `max_grad_norm` first when it is > 0: libtorch's own optimizers, eagerly. npe-train
// runs TrainStep (train_step.h), whose device-side update the tests hold to this one.
void optimizer_step(torch::optim::Optimizer& optimizer, NPEImpl& net, const torch::Tensor& loss, double lr,
                    double max_grad_norm);

// Trains (or with resume, continues) a model; see README for the flags. Throws npe::Error on bad
// configuration or data, on --resume with flags that differ from the checkpoint's, and when the
// loss becomes NaN/Inf (naming the first bad step, its batch and the last good checkpoint).
// Started by a launcher as several processes (RANK/WORLD_SIZE or Slurm; distributed.h), it trains
// data parallel: config.batch_size windows per process, total_samples over all of them, so that
// K processes with batch b follow the run of one process with batch K b (train_step.h); process 0
// alone reads a --resume checkpoint, validates, and writes checkpoints, CSV and progress. An
// error in set-up on any process stops every process.
TrainResult train(const TrainConfig& config);

}  // namespace npe::model
