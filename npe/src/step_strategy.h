// npe/src/step_strategy.h: the ways TrainStep computes a step, behind one interface: libtorch's
// autograd (float32 or bf16 autocast, any model, any device), the classic model's hand-written
// forward, backward and update (classic_fused.h), and the modern model's hand-written bf16 loss
// and gradient (modern_fused.h). Each works on the step's device state (StepContext) with device
// ops only, so that TrainStep can capture it as a CUDA graph. Private to npe_model.
#pragma once

#include <memory>
#include <string>

#include <torch/torch.h>

#include "device_optimizer.h"
#include "npe/model/distributed.h"
#include "npe/model/model.h"
#include "npe/model/train.h"
#include "npe/model/train_step.h"

namespace npe::model {

// The step's device state, shared by the strategies and TrainStep.
struct StepContext {
  const TrainConfig& cfg;
  Kind kind;
  NPEImpl& net;
  torch::Tensor traj;  // float32 [S, T, N, 5] on the device
  int64_t total_steps;
  StepOptions options;
  torch::Device device;
  ProcessGroup* processes;  // data parallel (nullptr: one process)
  int rank, world;
  DeviceOptimizer& optimizer;
  WindowOrder& order;

  torch::Tensor step_t;       // int64 scalar: the step being taken
  torch::Tensor lr_t;         // float32 scalar: the last step's learning rate
  torch::Tensor perm_t;       // int64 [windows]: the current epoch's permutation
  torch::Tensor arange_t;     // int64 [batch]
  torch::Tensor loss_sum_t;   // float32 scalar: the loss accumulated since the last read
  torch::Tensor first_bad_t;  // int64 scalar: the first step with a NaN/Inf loss, -1: none

  // The step after a loss and gradient computed by libtorch or by the modern kernels: the
  // all-reduce (data parallel), the loss's accumulators, clipping, the learning rate and the
  // optimizer's update; then the step count.
  void finish(const torch::Tensor& loss);
  // The window ids this process takes at the current step: its slice of the global batch.
  torch::Tensor batch_ids() const;
};

class StepStrategy {
 public:
  virtual ~StepStrategy() = default;
  // One step's device work (captured as a CUDA graph on CUDA).
  virtual void body(StepContext& c) = 0;
  // A hand-written step (StepOptions::fused).
  virtual bool hand_written() const = 0;
};

// libtorch's forward and autograd, under bf16 autocast when c.options.bf16.
std::unique_ptr<StepStrategy> make_libtorch_step();
// The hand-written step for this model and device, or nullptr with the reason in `why` (it is
// not asked for, the model or device is not one it is written for, the shapes do not fit).
std::unique_ptr<StepStrategy> make_hand_written_step(StepContext& c, std::string* why);

}  // namespace npe::model
