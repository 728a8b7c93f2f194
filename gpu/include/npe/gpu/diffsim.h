// npe/gpu/diffsim.h: the differentiable simulator: the engine's forward step with per-scene
// parameters and control forces, and its hand-written adjoint (reverse mode), on the CPU and on
// CUDA. gpu/src/adjoint.h gives the derivation; npe/gpu/diffsim_torch.h wraps both directions
// as a torch::autograd::Function.
//
// Arrays use the engine layout: body b = ball * S + scene (S = spec.num_scenes, N =
// spec.num_balls); "[4][N][S]" means x, y, vx, vy one after another. Units: px, s, mass units.
//
// Long horizons: the forward pass stores the state every `checkpoint_every` substeps (K); the
// backward pass recomputes each segment of K substeps from its checkpoint into a scratch buffer
// and runs the adjoint back through it. Memory: (substeps / K + 1 + K) * 16 B per ball in
// float32 (checkpoints plus one segment), plus the contact words' substeps / 8 B per ball,
// against 16 B per ball per substep without checkpoints.
//
// Contact words: the forward pass can also record, one bit per ball and substep, which balls
// touched a ball, wall or obstacle ([ceil(substeps / 32)][N][S] uint32, bit g % 32 of word
// [g / 32][i][s] for substep g). Given them, the backward pass does the contact work (state
// exchange, scratch round trip, contact adjoints) only at the substeps where a ball of the team
// had a contact (the CPU: of the scene; CUDA: of the warp's 32 / N scenes). In the datasets'
// worlds under 1% of ball-substeps have one; a warp's share is larger (7 to 14% of warp-substeps
// in the tests' busier worlds). The gradients are
// the same bits as without words. The words must be those the same forward call wrote: the
// backward pass trusts them.
#pragma once

#include <cstdint>

#include "npe/gpu/engine.h"

namespace npe::gpu {

// Largest scene the differentiable simulator takes: all pairs of a scene in one thread.
constexpr int kDiffMaxBallsCpu = kAllPairsMaxBalls;  // 32
// CUDA: the forward pass keeps a scene in one thread's registers (spilling beyond about 8 balls in
// float64), the backward pass one lane per ball, 32 / N scenes a warp.
constexpr int kDiffMaxBallsCuda = 16;

// Inputs of a rollout. Pointers are host memory for the CPU functions and device memory for the
// CUDA ones.
template <class T>
struct DiffInputs {
  const T* init = nullptr;      // [4][N][S] initial x, y (px), vx, vy (px/s)
  const T* mass = nullptr;      // [N][S] > 0
  const T* radius = nullptr;    // [N][S] > 0, px
  const T* damping = nullptr;   // [S] dashpot constant c = 2 zeta omega (1/s) of each scene:
                                // dashpot(restitution, omega), 0 for restitution 1
  const T* controls = nullptr;  // [frames][2][N][S] force on each ball during each frame
                                // (mass px / s^2), or null for none
  // CUDA only: the spec's obstacles already on the device, as kernel_obstacles<T>(spec) lays them
  // out (gpu/src/engine_internal.h; the torch ops fill it), or null: then each call uploads them
  // and waits for the copy (a host synchronisation).
  const void* device_obstacles = nullptr;
};

// Adjoints (gradients of the loss), same shapes as DiffInputs; each is overwritten. `controls`
// is used only when the inputs have controls.
template <class T>
struct DiffGrads {
  T* init = nullptr;
  T* mass = nullptr;
  T* radius = nullptr;
  T* damping = nullptr;  // times dashpot_derivative(e, omega): the restitution's gradient
  T* controls = nullptr;
};

// Rollout shape. checkpoint_every (K) = 0 stores one state per frame (K = spec.substeps).
struct DiffRollout {
  int frames = 1;
  int checkpoint_every = 0;
  int64_t substeps_total(const WorldSpec& spec) const { return static_cast<int64_t>(frames) * spec.substeps; }
  int resolved_k(const WorldSpec& spec) const { return checkpoint_every > 0 ? checkpoint_every : spec.substeps; }
  // Number of stored states: ceil(substeps_total / K).
  int64_t num_checkpoints(const WorldSpec& spec) const;
  // Number of uint32 contact words: ceil(substeps_total / 32) * N * S.
  int64_t num_contact_words(const WorldSpec& spec) const;
};

// Throws npe::Error when the spec or rollout cannot be simulated (naming the field: ball count
// above `max_balls`, omega h > 1, frames < 1, K < 1). The spec's radius, mass and restitution
// are not used (the inputs carry them, restitution as the dashpot constant); its box, omega, dt,
// substeps, gravity and obstacles are.
void validate_diff(const WorldSpec& spec, const DiffRollout& rollout, int max_balls);

// The damping constant c = 2 zeta(e) omega of restitution e and its derivative dc/de
// (zeta = -ln e / sqrt(pi^2 + ln^2 e), dzeta/de = -pi^2 / (e (pi^2 + ln^2 e)^(3/2))).
// Both are computed with a portable logarithm (gpu/src/physics.h), so that the CPU and CUDA give
// the same bits. Throw npe::FieldError (restitution) outside (0, 1].
double dashpot(double restitution, double omega);
double dashpot_derivative(double restitution, double omega);
// Elementwise over n restitutions (host or, for the CUDA version, device memory; queued on
// `stream`): damping[i] = dashpot(e[i], omega) and, unless `slope` is null, slope[i] =
// dashpot_derivative(e[i], omega), computed in float64 and rounded to T. Values outside (0, 1]
// are not checked here: they give NaN, which the rollout carries.
template <class T>
void dashpot_cpu(const T* restitution, T* damping, T* slope, int64_t n, double omega);
template <class T>
void dashpot_cuda(const T* restitution, T* damping, T* slope, int64_t n, double omega, void* stream);

// Forward: writes the trajectory traj [frames + 1][4][N][S] (frame 0 = init), the
// checkpoints ckpt [num_checkpoints][4][N][S] and, unless `contacts` is null, the contact words
// [num_contact_words]. With restitution equal for all scenes and no controls, the same bits as
// advance_cpu / CudaWorld.
template <class T>
void diff_forward_cpu(const WorldSpec& spec, const DiffRollout& rollout, const DiffInputs<T>& in, T* traj, T* ckpt,
                      uint32_t* contacts, int threads = 0);
// Backward: given traj_bar [frames + 1][4][N][S] (the loss's gradient with respect to the
// trajectory), the forward pass's checkpoints and its contact words (or null: every substep is
// treated as having contacts; same result, slower), writes the gradients with respect to every
// input. Scenes never mix.
template <class T>
void diff_backward_cpu(const WorldSpec& spec, const DiffRollout& rollout, const DiffInputs<T>& in, const T* ckpt,
                       const uint32_t* contacts, const T* traj_bar, const DiffGrads<T>& grads, int threads = 0);

// CUDA versions (device pointers; the forward one thread per scene, the backward one lane per ball; queued on `stream`, a cudaStream_t, 0
// for the default stream). The backward pass needs a device scratch buffer of
// K * 4 * N * S elements. Throws npe::Error when built without CUDA.
template <class T>
void diff_forward_cuda(const WorldSpec& spec, const DiffRollout& rollout, const DiffInputs<T>& in, T* traj, T* ckpt,
                       uint32_t* contacts, void* stream);
template <class T>
void diff_backward_cuda(const WorldSpec& spec, const DiffRollout& rollout, const DiffInputs<T>& in, const T* ckpt,
                        const uint32_t* contacts, const T* traj_bar, const DiffGrads<T>& grads, T* scratch,
                        void* stream);

}  // namespace npe::gpu
