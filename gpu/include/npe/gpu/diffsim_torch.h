// npe/gpu/diffsim_torch.h: the differentiable simulator as PyTorch operators, so that a loss built
// from torch ops on the trajectory back-propagates into the simulator's inputs through the
// hand-written adjoint (npe/gpu/diffsim.h). CPU and CUDA tensors, float32 and float64.
//
// Operators (TORCH_LIBRARY namespace "npe", registered when this library is linked; from Python
// torch.ops.npe.*, docs/python.md):
//   simulate(Tensor initial_state, Tensor mass, Tensor radius, Tensor restitution, Tensor? controls,
//            float[] world, float[] obstacles, int substeps, int frames, int checkpoint_every=0)
//       -> Tensor trajectory                                     [S, frames + 1, N, 4]
//   simulate_forward(same) -> (trajectory, checkpoints, contact_words)   what the adjoint needs
//   simulate_backward(trajectory_grad, initial_state, mass, radius, restitution, controls,
//                     checkpoints, contact_words, world, obstacles, substeps, frames,
//                     checkpoint_every) -> (grad initial_state, mass, radius, restitution, controls)
// world = simulate_world(spec), obstacles = simulate_obstacles(spec). simulate's Autograd kernel
// calls simulate_forward and, in backward, simulate_backward; without gradients it runs the plain
// rollout (one checkpoint, no contact words). The operators check shapes, dtypes, devices and the
// spec (ValueError / TypeError in Python) but read no value back from the device: CUDA work is
// queued on PyTorch's current stream with no host synchronisation.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "npe/gpu/engine.h"

namespace npe::gpu {

// Per-ball and per-scene parameters, each differentiable (requires_grad as the caller likes).
struct SimParams {
  torch::Tensor mass;         // [S, N] > 0
  torch::Tensor radius;       // [S, N] > 0, px
  torch::Tensor restitution;  // [S] in (0, 1]
};

// Rolls out `frames` frames of spec.substeps substeps each from `initial_state` [S, N, 4]
// (x, y in px, vx, vy in px/s) with the given parameters and optional `controls` [S, frames, N, 2]
// (force on each ball during each frame, mass px / s^2; an undefined tensor for none).
// Returns the trajectory [S, frames + 1, N, 4] (frame 0 = initial_state). All tensors must be
// on one device and of one floating dtype. From spec: box, contact omega, frame_dt, substeps,
// gravity, obstacles (its radius, mass and restitution are not used). `checkpoint_every`: as
// DiffRollout (0 = one stored state per frame). Runs on the caller's device on PyTorch's current
// CUDA stream. Throws npe::Error naming the argument on wrong shapes, devices, dtypes or values,
// and on specs the simulator cannot run (more than 32 balls on the CPU, 16 on CUDA).
// Through the operator npe::simulate; this C++ entry point also checks the values (masses and
// radii positive, restitution in (0, 1]), which reads them back from the device.
torch::Tensor simulate(const WorldSpec& spec, const torch::Tensor& initial_state, const SimParams& params,
                       const torch::Tensor& controls, int frames, int checkpoint_every = 0);

// The operator npe::simulate itself, without simulate's value checks: nothing is read back from
// the device, so a caller that steps every frame on the GPU (npe/control's environments) queues
// work without host synchronisation. Keeping the values valid (masses and radii positive,
// restitution in (0, 1]) is the caller's task; shapes, dtypes and devices are still checked.
torch::Tensor simulate_unchecked(const WorldSpec& spec, const torch::Tensor& initial_state, const SimParams& params,
                                 const torch::Tensor& controls, int frames, int checkpoint_every = 0);

// The operators' `world` argument: width, height (px), contact_omega (1/s), contact_ramp (px),
// gravity_x, gravity_y (px/s^2), frame_dt (s).
std::vector<double> simulate_world(const WorldSpec& spec);
// The operators' `obstacles` argument: 7 numbers per obstacle: kind (0 capsule, 1 box), ax, ay,
// bx, by, radius (px), angle (rad), as in npe/gpu/obstacles.h.
std::vector<double> simulate_obstacles(const WorldSpec& spec);

}  // namespace npe::gpu
