// npe/model/train_step.h: one npe-train step with all of its state on the training device, so
// that on CUDA the whole step is captured once as a CUDA graph and replayed.
//
// A step is: the batch's window ids from the run's data order (WindowOrder's permutation of the
// epoch, uploaded once per epoch), the window gather, forward (bf16 autocast optionally), the
// MSE loss, backward, gradient-norm clipping, the optimizer update and the learning-rate
// schedule. libtorch's C++ optimizers and clip_grad_norm_ compute scalars on the host (bias
// corrections from a host step count, the clip coefficient through .item()), which a captured
// graph would freeze at their capture-time values; here the step count, the learning rate and
// the clip coefficient are device tensors computed inside the step:
//   AdamW / Adam: torch's fused multi-tensor kernels (_fused_adamw_ / _fused_adam_) with a
//                 tensor learning rate and a device step count (Loshchilov & Hutter 2019;
//                 Kingma & Ba 2015), the update libtorch's AdamW/Adam make;
//   RMSprop:      square_avg = alpha square_avg + (1 - alpha) g^2, p -= lr g / (sqrt(square_avg)
//                 + eps) (Tieleman & Hinton 2012, as torch.optim.RMSprop without momentum);
//   clipping:     g *= min(1, max_norm / (||g||_2 + 1e-6)) over all gradients together.
// The optimizer's state is the libtorch optimizer's own per-parameter state (exp_avg,
// exp_avg_sq / square_avg), updated in place, so checkpoints keep their format and a run
// resumes on either device; sync_optimizer() writes the step count back before a save.
//
// Data parallel (a ProcessGroup of K processes, distributed.h): config.batch_size is each
// process's batch b; the run's data order is WindowOrder's with the global batch K b, of which
// process r takes positions [r b, (r + 1) b) of each step's slice, so that the K processes
// together see exactly the batches one process with batch K b would. The gradients live in one
// flat float32 buffer (each parameter's .grad() a view of it) and, after the backward, are
// averaged over the processes by NCCL all-reduces of buckets of at most 25 MiB, enqueued on the
// compute stream (and captured in the graph with the rest of the step); clipping and the update
// then run on identical gradients, so the replicas stay identical. Each process's loss is the
// mean over its own windows' present balls, so the averaged gradient is the gradient of the
// global batch's loss exactly when every window has the same number of balls (a world of one
// ball count); otherwise each process's windows weigh the same, as in PyTorch's
// DistributedDataParallel. Dropout masks and input noise are drawn per process.
//
// On CPU the same tensor ops run eagerly (one code path; the CPU path uses all cores through
// torch's intra-op threads). On CUDA, after `warmup_steps` eager steps (real steps of the run)
// the step is captured and replayed; nothing in the loop waits for the GPU: losses and the
// NaN/Inf flag accumulate on the device and are read when asked for.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <torch/torch.h>

#include "npe/model/distributed.h"
#include "npe/model/train.h"

namespace npe::model {

struct StepOptions {
  bool cuda_graph = true;  // capture and replay the step on CUDA (ignored on CPU)
  bool bf16 = false;       // bf16 autocast of forward and backward (CUDA only; parameters,
                           // gradients and optimizer state stay float32)
  int warmup_steps = 3;    // eager steps on a side stream before the capture
  // CUDA, classic model, float32, no input noise: the hand-written forward, backward and update
  // (two kernels a step, three data parallel; npe/src/classic_fused.h) instead of libtorch's ops and autograd. The
  // same loss and gradient to float32 rounding (tested against autograd); reproducible bit for bit.
  // CUDA, modern model, bf16, msg_dim 96 and expansion 2, no dropout or input noise: the
  // hand-written loss and gradient (npe/src/modern_fused.h: bf16 tensor-core products, float32
  // elsewhere; closer to float32 autograd than libtorch's autocast, tested), then the same
  // clipping and update as libtorch's path; reproducible bit for bit on one GPU model.
  bool fused = true;
  ProcessGroup* group = nullptr;  // data parallel over these processes (nullptr: one process)
};

// True when this build can capture CUDA graphs (npe built with a CUDA compiler).
bool cuda_graphs_available();

class TrainStep {
 public:
  // `net` is on traj's device and in training mode; `optimizer` is make_optimizer(config, net)
  // (its state may come from a checkpoint: the step count is read from it); `traj` is the
  // training split [S, T, N, 5] on the device; the run is `total_steps` long and this object
  // continues it from `start_step`. Throws npe::Error for an optimizer it cannot run on the
  // device, for bf16 on CPU, and when graphs are asked for but unavailable on CUDA.
  TrainStep(const TrainConfig& config, NPEImpl& net, torch::optim::Optimizer& optimizer, torch::Tensor traj,
            int64_t total_steps, int64_t start_step, StepOptions options = {});
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  void run();             // one step
  int64_t step() const;   // the next step's index (steps taken so far, from 0)
  bool captured() const;  // replaying a CUDA graph
  // Mean training loss since the last call (waits for the device; data parallel: over every
  // process, a collective).
  double take_mean_loss();
  // The running sum behind take_mean_loss, for a checkpoint written between two evaluations
  // (waits for the device; data parallel: the mean over processes of their sums, a collective),
  // and its restoration in a resumed run (the same on every process).
  std::pair<double, int64_t> loss_accumulator();
  void restore_loss_accumulator(double sum, int64_t count);
  // First step whose loss was NaN/Inf on any process, or -1 (waits for the device; a collective).
  int64_t first_nonfinite_step();
  double lr();            // the learning rate the last step used (waits for the device)
  void sync_optimizer();  // writes the step count into the optimizer's state (before a save)
  // Data parallel: copies process 0's parameters, buffers and optimizer state (moments and step
  // count) to every process (a collective; before the first step, so that a run resumed from a
  // checkpoint only process 0 read starts everywhere from it).
  void broadcast_state();
  // Data parallel: the largest absolute difference between this process's parameters and process
  // 0's (a collective; 0 when the replicas are identical, as they should stay).
  double replica_divergence();
  int64_t gradient_buckets() const;         // all-reduces per step (0 with one process)
  bool fused() const;                       // a hand-written step (StepOptions::fused)
  const std::string& fused_reason() const;  // why not, when fused() is false

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The learning rate of scheduled_lr computed from a device step count (float64 scalar tensor):
// the schedule inside a captured step. Equal to scheduled_lr to rounding (tested).
torch::Tensor scheduled_lr_tensor(const TrainConfig& config, Kind kind, const torch::Tensor& step, int64_t total_steps);

}  // namespace npe::model
