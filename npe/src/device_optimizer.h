// npe/src/device_optimizer.h: a libtorch optimizer's update (AdamW, Adam, RMSprop) as device ops
// on static tensors, so that a training step, update included, can be captured as a CUDA graph
// with no host synchronisation. The moments are the libtorch optimizer's own state tensors, so a
// checkpoint saves and restores them through the optimizer (sync() writes the step count back).
// Private to npe_model; the tests hold it to libtorch's optimizers (StepVsLibtorch.*).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace npe::model {

enum class UpdateKind { AdamW, Adam, RMSprop };

class DeviceOptimizer {
 public:
  // Binds `opt` (one parameter group of float32 parameters; AdamW and Adam without amsgrad,
  // RMSprop without momentum or centering): reads its hyper-parameters and step count, creates
  // its per-parameter state where it has none yet, and makes every parameter's gradient a view
  // of one flat buffer. Throws npe::Error naming what is not supported.
  DeviceOptimizer(torch::optim::Optimizer& opt, const torch::Device& device);

  // Scales the gradients so that their global 2-norm is at most `max_norm`
  // (torch.nn.utils.clip_grad_norm_ without its host read).
  void clip(double max_norm);
  // One update at learning rate `lr` (a float32 scalar on the device); counts the step.
  void update(const torch::Tensor& lr);
  // Writes the device step count into the libtorch optimizer's state (before a checkpoint).
  void sync();

  UpdateKind kind = UpdateKind::AdamW;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, alpha = 0.99, weight_decay = 0;
  std::vector<torch::Tensor> params, grads;     // grads: views of grad_flat
  std::vector<torch::Tensor> moment1, moment2;  // exp_avg / square_avg, exp_avg_sq (empty for RMSprop)
  torch::Tensor grad_flat;                      // float32 [parameters]
  std::vector<torch::Tensor> buckets;           // views of grad_flat, all-reduced in turn (data parallel)
  torch::Tensor steps;                          // float32 scalar: updates taken (the fused kernels' state_steps)

 private:
  torch::optim::Optimizer& opt_;
};

}  // namespace npe::model
