// npe/control/env.h: a batch of environments of one task (task.h), stepped on the CPU or the GPU
// through the differentiable simulator's operator (npe/gpu/diffsim_torch.h): nothing returns to
// the host inside reset() or step(). The API follows Gymnasium's vector environments
// (gymnasium.vector.VectorEnv) with same-step autoreset: an environment whose episode ends is
// reset inside the same step, `obs` holds its first observation of the next episode and
// `final_obs` the last one of the ended episode.
//
// Gradients: when the action requires grad (and grad mode is on), the observations and rewards
// of step() are differentiable with respect to it and, through the state carried from step to
// step, to the actions of earlier steps (backpropagation through time, the analytic policy
// gradient); detach() cuts that chain. An autoreset environment starts a new chain.
#pragma once

#include <cstdint>
#include <memory>

#include <torch/torch.h>

#include "npe/control/task.h"

namespace npe::control {

// Initial conditions of a batch of episodes.
struct Layouts {
  torch::Tensor position;  // [E, bodies, 2] px (idle balls at their parking spots)
  torch::Tensor active;    // [E, bodies] bool, in play
  torch::Tensor goal;      // [E, 2] px: billiards' goal centre; herding: the pen's centre
};

// Draws `n` layouts with `generator` (a CPU or device generator; tensors on its device, in
// `dtype`). Bodies are placed in distinct cells of a grid over the playing area (herding: outside
// the pen), jittered inside their cell, so that no two overlap; the billiards goal takes a cell of
// its own. Same generator state, same layouts.
Layouts sample_layouts(const TaskSpec& task, int64_t n, at::Generator generator, torch::ScalarType dtype);

struct StepResult {
  torch::Tensor obs;          // [E, obs_dim] (next episode's first observation where done)
  torch::Tensor reward;       // [E]
  torch::Tensor terminated;   // [E] bool: billiards always; herding on success
  torch::Tensor truncated;    // [E] bool: herding at the frame limit
  torch::Tensor success;      // [E] bool: the step ended its episode in success
  torch::Tensor final_obs;    // [E, obs_dim]: the observation reached by this step (before autoreset)
  torch::Tensor final_state;  // [E, bodies, 4]: the state reached by this step (before autoreset)
};

struct LayoutTables;

class VecEnv {
 public:
  // `num_envs` environments on `device` (float32 or float64), layouts drawn from a generator of
  // that device seeded with `seed`. Throws npe::FieldError on a bad task (validate_task), num_envs
  // < 1 or a dtype other than float32 / float64.
  VecEnv(const TaskSpec& task, int64_t num_envs, torch::Device device, uint64_t seed,
         torch::ScalarType dtype = torch::kFloat32);

  // New layouts for every environment (drawn, or given: `layouts` with num_envs rows on this
  // env's device). Returns the observations [E, obs_dim].
  torch::Tensor reset();
  torch::Tensor reset(const Layouts& layouts);

  // One step with `action` [E, 2] in [-1, 1] (values beyond the unit disc are scaled onto it):
  // billiards, the cue's velocity / max_speed, then episode_frames frames; herding, the herder's
  // force / (mass max_accel) during one frame. Throws npe::Error on a wrong shape, dtype or device.
  StepResult step(const torch::Tensor& action);

  // Cuts the gradient chain through the carried state.
  void detach();

  const TaskSpec& task() const { return task_; }
  int64_t num_envs() const { return num_envs_; }
  int obs_dim() const { return task_obs_dim(task_); }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }
  // Environment frames simulated since construction (every environment's, summed). Known on the
  // host without synchronisation.
  int64_t frames() const { return frames_; }
  at::Generator& generator() { return generator_; }

  // The dynamic state, for checkpoints, videos and tests.
  torch::Tensor state() const { return state_; }        // [E, bodies, 4] px, px/s
  torch::Tensor step_in_episode() const { return t_; }  // [E] int64
  const Layouts& layouts() const { return layouts_; }
  void set_state(const torch::Tensor& state, const torch::Tensor& step_in_episode, const Layouts& layouts);
  // The observation of `state` [E, bodies, 4].
  torch::Tensor observe(const torch::Tensor& state) const;

  // Billiards: runs the shot `action` [E, 2] from the current layouts, without autoreset, and
  // returns the whole trajectory [E, episode_frames + 1, bodies, 4] (videos, tests and the
  // landscape diagnostic). Herding: not available (throws).
  torch::Tensor shot_trajectory(const torch::Tensor& action);
  // One frame of the task's physics from `state` with the forces `controls` [E, bodies, 2] (or
  // undefined): the simulator, then the drag.
  torch::Tensor advance_frame(const torch::Tensor& state, const torch::Tensor& controls) const;

 private:
  torch::Tensor initial_state(const Layouts& layouts) const;
  std::pair<torch::Tensor, torch::Tensor> reward_success(const torch::Tensor& state) const;
  torch::Tensor apply_shot(const torch::Tensor& state, const torch::Tensor& action) const;

  TaskSpec task_;
  gpu::WorldSpec world_;
  int64_t num_envs_;
  torch::Device device_;
  torch::ScalarType dtype_;
  at::Generator generator_;
  torch::Tensor mass_, radius_, restitution_;   // the simulator's parameters [E, bodies], [E]
  std::shared_ptr<const LayoutTables> tables_;  // constants of the layout sampler, on the device
  Layouts layouts_;
  torch::Tensor state_, t_;
  int64_t frames_ = 0;
};

}  // namespace npe::control
