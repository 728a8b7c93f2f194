// gpu/src/diffsim_internal.h (private): the rollout's arrays as the per-scene sweeps of
// adjoint.h see them, shared by the CPU (diffsim.cpp) and CUDA (diffsim_cuda.cu) entry points.
#pragma once

#include <string>

#include "adjoint.h"
#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"

namespace npe::gpu::detail {

// Restitution i's dashpot constant and, unless `slope` is null, dc/de (dashpot_cpu, dashpot_cuda).
template <class T>
NPE_HD void dashpot_item(const T* e, T* damping, T* slope, int64_t i, double omega) {
  damping[i] = static_cast<T>(dashpot_constant(static_cast<double>(e[i]), omega));
  if (slope) slope[i] = static_cast<T>(dashpot_slope(static_cast<double>(e[i]), omega));
}

// Inputs and rollout shape; outputs, gradients and scratch are filled in by the caller.
// Throws npe::Error when a required input is missing.
template <class T>
DiffArrays<T> diff_arrays(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in) {
  if (!in.init || !in.mass || !in.radius || !in.damping)
    throw Error("differentiable simulator: init, mass, radius and damping are required");
  DiffArrays<T> a{};
  a.init = in.init;
  a.mass = in.mass;
  a.radius = in.radius;
  a.damping = in.damping;
  a.controls = in.controls;
  a.S = spec.num_scenes;
  a.frames = r.frames;
  a.substeps = spec.substeps;
  a.k = r.resolved_k(spec);
  return a;
}

// As diff_arrays, plus the backward pass's inputs and gradient outputs. Throws npe::Error naming
// `who` when a gradient output is missing (controls' only when there are controls).
template <class T>
DiffArrays<T> diff_backward_arrays(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, const T* ckpt,
                                   const uint32_t* contacts, const T* traj_bar, const DiffGrads<T>& g,
                                   const char* who) {
  if (!g.init || !g.mass || !g.radius || !g.damping || (in.controls && !g.controls))
    throw Error(std::string(who) + ": every gradient output is required (controls when there are controls)");
  DiffArrays<T> a = diff_arrays(spec, r, in);
  a.ckpt = const_cast<T*>(ckpt);  // read only in the backward sweep
  a.contacts = const_cast<uint32_t*>(contacts);
  a.traj_bar = traj_bar;
  a.g_init = g.init;
  a.g_mass = g.mass;
  a.g_radius = g.radius;
  a.g_damping = g.damping;
  a.g_controls = g.controls;
  return a;
}

}  // namespace npe::gpu::detail
