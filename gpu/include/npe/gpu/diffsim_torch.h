// npe/gpu/diffsim_torch.h: the differentiable simulator as a torch::autograd::Function, so that a
// loss built from libtorch ops on the trajectory back-propagates into the simulator's inputs
// through the hand-written adjoint (npe/gpu/diffsim.h). CPU and CUDA tensors, float32 and
// float64.
#pragma once

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
// DiffRollout (0 = one stored state per frame). Runs on the caller's device on the default
// CUDA stream. Throws npe::Error naming the argument on wrong shapes, devices or dtypes, and
// on specs the simulator cannot run (more than 32 balls on the CPU, 8 on CUDA).
torch::Tensor simulate(const WorldSpec& spec, const torch::Tensor& initial_state, const SimParams& params,
                       const torch::Tensor& controls, int frames, int checkpoint_every = 0);

}  // namespace npe::gpu
