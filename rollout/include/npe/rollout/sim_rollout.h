// npe/rollout/sim_rollout.h: rollouts of the engine from ground-truth frames, in npe's dataset layout:
// the "simulator" row of npe-eval and panel of npe-render, scored with the same metrics as the
// learned models (npe/rollout/rollout.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "npe/datagen/dataset.h"
#include "npe/gpu/engine.h"

namespace npe::rollout {

// The engine spec for replaying a dataset's scenes: its world's box, radius, restitution,
// obstacles and frame_dt; contact stiffness and substeps from the manifest when the dataset was
// made by the engine, otherwise (Box2D, whose substeps mean something else) chosen by
// choose_contact. Masses are filled with the world's mass.
gpu::WorldSpec replay_spec(const datagen::Manifest& manifest, int64_t num_scenes);

// Why the engine cannot replay the dataset (empty when it can): friction (the engine has none),
// a restitution outside (0, 1], or a world its spec validation refuses.
std::string replay_unsupported(const datagen::Manifest& manifest);

// Rolls the engine out from ground-truth frame 1 of the first `scenes` scenes of `truth` for
// `steps` frames; frames 0 and 1 are copied from the truth, as in rollout::rollout, so the result
// ([scenes, steps + 2, N, 5], normalised) compares frame by frame with NPE rollouts.
// Frames of a rigid-body dataset (Box2D) may hold touching balls overlapping by up to Box2D's
// slop (0.5 px, up to 0.9 px seen); such balls are first moved apart (and out of walls) along
// the contact normal, or the penalty spring would kick them apart at about omega * overlap.
// Masses: the truth's mass feature (frame 1) unless `masses` is given ([scenes][N], in the
// dataset's mass units; e.g. those npe-sysid identified). Float32, on CUDA when `use_cuda`
// (the same bits as the CPU reference), otherwise on all CPU cores. Throws npe::Error when
// `truth` has fewer than steps + 2 frames or fewer than `scenes` scenes, or on a wrong `masses`.
datagen::Trajectories simulator_rollout(const datagen::Manifest& manifest, const datagen::Trajectories& truth,
                                        int64_t scenes, int steps, bool use_cuda,
                                        const std::vector<std::vector<double>>* masses = nullptr);

// The simulator's one-step error on the windows of `truth` (all scenes, frames t = 1..T-2):
// the engine advances one frame from ground-truth frame t, and the mean squared error of the
// normalised velocity against frame t+1 is returned, the same quantity as the NPE's validation
// MSE (npe/model/train.h window_mse). Masses from the truth. Float32, CUDA when `use_cuda`.
double simulator_window_mse(const datagen::Manifest& manifest, const datagen::Trajectories& truth, bool use_cuda);

// The same one-step error window by window: [truth.windows()], window w = (scene s, frame t)
// at w = s * (T - 2) + (t - 1), each the mean over balls and both components of the squared
// normalised velocity error. simulator_window_mse is their mean. The one-step MSE is heavy-
// tailed: a light ball rattling in a gap of a few px between a heavy ball and a wall meets
// several contacts per frame, and the direction it leaves the frame in is decided by their
// timing, which the truth's integrator and this one resolve differently; per-window errors
// let such windows be counted rather than averaged.
std::vector<double> simulator_window_errors(const datagen::Manifest& manifest, const datagen::Trajectories& truth,
                                            bool use_cuda);

}  // namespace npe::rollout
