// npe/src/classic_fused.h (private to npe_model): the classic NPE's training step written by hand,
// forward and backward, for the CUDA fast path of npe-train (train_step.cpp) and its CPU
// reference (classic_fused.cpp), over the same __host__ __device__ per-item functions.
//
// The model is ClassicNPEImpl (model.h; paper, section 2 and appendix). Per window w of the
// batch (frames t-1, t, t+1 of one scene, N balls; states [N, 5] = x, y, vx, vy, mass in the
// dataset's units), for each present focus ball i:
//   F_i   = [(s_i(t-1) - mean) / std, (s_i(t) - mean) / std]                    focus features [10]
//   C_ij  = context features of ball j != i: positions relative to ball i's     [10]
//   f_i   = relu(W_f F_i + b_f)                                                  [25]
//   e_ij  = enc(h0 = [f_i, relu(W_c C_ij + b_c)])    5 layers of 50 ReLU units  [50]
//   S_i   = sum over j in the neighbourhood of i (present, |x_j(t) - x_i(t)| <= r) of e_ij
//   out_i = dec([S_i, F_i])                          4 x 50 ReLU, linear to 2
//   pred_i = v_i(t) + out_i * dv_std,  loss = sum_{w,i present} |pred_i - v_i(t+1)|^2 / D,
//   D = max(1, 2 * present balls in the batch)   (masked_velocity_mse)
// The backward pass is the chain rule through the same layers (reverse mode, by hand). Pairs
// outside the neighbourhood and absent focus balls (mixed ball counts) take no part in the loss,
// so their rows are skipped, forward and backward: the same loss and gradient as libtorch's
// autograd of ClassicNPEImpl::forward, without computing the masked rows.
//
// Work is split in blocks of `wpb` consecutive windows of the batch. A block's gradient is the
// sum over its rows in a fixed order (windows, focus balls, context balls); the batch's gradient
// is the sum of the blocks' in block order, divided by D. No atomics: a run is reproducible bit
// for bit, and the CUDA kernels give the CPU reference's bits (see dense_unit).
#pragma once

#include <cmath>
#include <cstdint>

#include "npe/core/host_device.h"

namespace npe::model::fused {

constexpr int kFeat = 10;    // focus / context features (two frames of 5)
constexpr int kIn = 25;      // focus_in / context_in units
constexpr int kHidden = 50;  // encoder and decoder units
constexpr int kEncLayers = 5;
constexpr int kDecLayers = 5;  // 4 hidden ReLU layers and the linear head
constexpr int kOut = 2;

// The 12 linear layers in ClassicNPEImpl's parameter order (focus_in, context_in, encoder.0 ..
// encoder.8, decoder.0 .. decoder.8), each a weight [out, in] then a bias [out].
constexpr int kLayers = 12;
constexpr int kFocusIn = 0, kContextIn = 1, kEnc0 = 2, kDec0 = 7;
NPE_HD constexpr int layer_out(int l) { return l < 2 ? kIn : l == kLayers - 1 ? kOut : kHidden; }
NPE_HD constexpr int layer_in(int l) { return l < 2 ? kFeat : l == kDec0 ? kHidden + kFeat : kHidden; }
NPE_HD constexpr int weight_offset(int l) {
  return l == 0 ? 0 : weight_offset(l - 1) + layer_out(l - 1) * (layer_in(l - 1) + 1);
}
NPE_HD constexpr int bias_offset(int l) { return weight_offset(l) + layer_out(l) * layer_in(l); }
constexpr int kParams = weight_offset(kLayers);  // 24,102 floats
static_assert(kParams == 24102, "the classic NPE has 24,102 parameters");

// Row layouts (floats). A pair row (focus i, context j in the neighbourhood):
//   C [10] | h0 = [f_i, c_ij] [50] | h1 .. h5 [5 x 50] | two gradient buffers [2 x 50]
// A focus row (present ball i):
//   F [10] | f [25] | d0 = [S, F] [60] | d1 .. d4 [4 x 50] | out [2] | two gradient buffers
//   [2 x 60] | dZ [50] (encoder layer 1's output gradient summed over i's pairs) | df [25]
constexpr int kPairC = 0, kPairH0 = kPairC + kFeat, kPairH1 = kPairH0 + kHidden;
constexpr int kPairGA = kPairH1 + kEncLayers * kHidden, kPairGB = kPairGA + kHidden;
constexpr int kPairFloats = kPairGB + kHidden;  // 410
constexpr int kFocF = 0, kFocf = kFocF + kFeat, kFocD0 = kFocf + kIn, kFocD1 = kFocD0 + kHidden + kFeat;
constexpr int kFocOut = kFocD1 + (kDecLayers - 1) * kHidden, kFocGA = kFocOut + kOut;
constexpr int kFocGB = kFocGA + kHidden + kFeat, kFocDZ = kFocGB + kHidden + kFeat, kFocDf = kFocDZ + kHidden;
constexpr int kFocFloats = kFocDf + kIn;  // 492

// ---- per-item maths, shared by the CPU reference and the CUDA kernels -------------------------

// Focus features of a ball from its states at t-1 and t ([5] each).
NPE_HD void focus_features(const float* prev, const float* cur, const float* mean, const float* std, float* F) {
  for (int k = 0; k < 5; ++k) {
    F[k] = (prev[k] - mean[k]) / std[k];
    F[5 + k] = (cur[k] - mean[k]) / std[k];
  }
}

// Context features of ball j for focus i (NPEImpl::make_pairs): per frame, j's position relative
// to i's over the position scale, then j's velocity and mass standardised.
NPE_HD void context_features(const float* prev_i, const float* cur_i, const float* prev_j, const float* cur_j,
                             const float* mean, const float* std, float* C) {
  const float* si[2] = {prev_i, cur_i};
  const float* sj[2] = {prev_j, cur_j};
  for (int t = 0; t < 2; ++t) {
    for (int k = 0; k < 2; ++k) C[5 * t + k] = (sj[t][k] - si[t][k]) / std[k];
    for (int k = 2; k < 5; ++k) C[5 * t + k] = (sj[t][k] - mean[k]) / std[k];
  }
}

// Ball j is in ball i's neighbourhood at t: present (mass > 0) and centres at most r apart
// (r2 = r^2 rounded to float, as libtorch compares a float tensor with a double scalar).
NPE_HD bool in_neighbourhood(const float* cur_i, const float* cur_j, float r2) {
  const float dx = cur_j[0] - cur_i[0], dy = cur_j[1] - cur_i[1];
  return cur_j[4] > 0.0f && dx * dx + dy * dy <= r2;
}

// Products are accumulated with explicit fused multiply-adds (fmaf: one rounding, on the GPU one
// FFMA instruction, on the CPU the correctly rounded library function), so that the kernels,
// built with --fmad=false against any other contraction, still give the CPU reference's bits.

// Pre-activation of unit o of a linear layer: b[o] + sum_i W[o, i] x[i] (W [out, in] row-major).
template <int In>
NPE_HD float dense_unit(const float* W, const float* b, const float* x, int o) {
  float z = 0.0f;
  for (int i = 0; i < In; ++i) z = fmaf(W[o * In + i], x[i], z);
  return z + b[o];
}

// Gradient of a linear layer's input i: sum_o W[o, i] dz[o].
template <int Out, int In>
NPE_HD float dense_input_grad(const float* W, const float* dz, int i) {
  float g = 0.0f;
  for (int o = 0; o < Out; ++o) g = fmaf(W[o * In + i], dz[o], g);
  return g;
}

// ReLU as libtorch's threshold: a NaN passes through (so that a diverging run's loss turns NaN
// and is flagged, as on libtorch's path).
NPE_HD float relu(float z) { return z <= 0.0f ? 0.0f : z; }

// A present focus ball's loss term |v(t) + out dv_std - v(t+1)|^2 (times D) from its states at t
// and t+1 ([5] each) and the head's output [2]; `dout` [2] receives its gradient with respect to
// the head's output (times D).
NPE_HD float velocity_loss(const float* cur, const float* next, const float* out, const float* dv_std, float* dout) {
  const float e0 = cur[2] + out[0] * dv_std[0] - next[2];
  const float e1 = cur[3] + out[1] * dv_std[1] - next[3];
  dout[0] = 2.0f * e0 * dv_std[0];
  dout[1] = 2.0f * e1 * dv_std[1];
  return e0 * e0 + e1 * e1;
}
// The gradient through a ReLU whose output is y (libtorch's threshold_backward on the result).
NPE_HD float relu_grad(float g, float y) { return y <= 0.0f ? 0.0f : g; }

// ---- the optimizers' element updates (train_step.h) ----------------------------------------------

enum class Update : int { AdamW = 0, Adam = 1, RMSprop = 2 };
struct UpdateConfig {
  Update kind = Update::RMSprop;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, alpha = 0.99f, weight_decay = 0.0f;
  float max_grad_norm = 0.0f;  // 0: no clipping
  // learning rate (the classic model's schedules, scheduled_lr): base, decayed as the paper's
  // RMSprop recipe when `paper_decay`
  double lr = 3e-4;
  bool paper_decay = true;
};

// classic_lr (train.h): base until step 50,000, then x0.99 every 2,500 steps; constant otherwise.
NPE_HD double scheduled_lr(const UpdateConfig& c, int64_t step) {
  if (!c.paper_decay || step <= 50000) return c.lr;
  return c.lr * pow(0.99, static_cast<double>((step - 50000) / 2500));
}

// One parameter's update with gradient g at learning rate lr; `bc1` = 1 - beta1^steps and
// `bc2_sqrt` = sqrt(1 - beta2^steps) for Adam(W) (Kingma & Ba 2015; Loshchilov & Hutter 2019,
// torch's fused kernels), RMSprop as torch.optim.RMSprop without momentum (Tieleman & Hinton 2012).
NPE_HD void update_element(const UpdateConfig& c, float lr, float bc1, float bc2_sqrt, float g, float& p, float& m1,
                           float& m2) {
  switch (c.kind) {
    case Update::AdamW:
    case Update::Adam: {
      if (c.weight_decay != 0.0f) {
        if (c.kind == Update::AdamW)
          p -= lr * c.weight_decay * p;
        else
          g += c.weight_decay * p;
      }
      m1 = c.beta1 * m1 + (1.0f - c.beta1) * g;
      m2 = c.beta2 * m2 + (1.0f - c.beta2) * g * g;
      const float denom = sqrtf(m2) / bc2_sqrt + c.eps;
      p -= (lr / bc1) * m1 / denom;
      break;
    }
    case Update::RMSprop: {
      if (c.weight_decay != 0.0f) g += c.weight_decay * p;
      m1 = c.alpha * m1 + (1.0f - c.alpha) * g * g;
      p -= lr * g / (sqrtf(m1) + c.eps);
      break;
    }
  }
}

// ---- the batch --------------------------------------------------------------------------------

// What the step reads: the training split, the run's data order and the model's standardisation.
struct Batch {
  const float* traj = nullptr;  // [S, T, N, 5] float32, contiguous
  int64_t scenes = 0, frames = 0;
  int balls = 0;                  // N
  const int64_t* perm = nullptr;  // [windows]: this epoch's order of the training windows
  int64_t windows = 0;            // S (T - 2)
  int64_t steps_per_epoch = 1;
  int batch = 0;                  // B: this process's windows per step
  int world = 1, rank = 0;        // data parallel: the step's global batch is world x B windows
  const float* mean = nullptr;    // [5]
  const float* std = nullptr;     // [5]
  const float* dv_std = nullptr;  // [2]
  float r2 = 0.0f;                // neighbourhood radius squared (normalised position units)
};

// Window id of the step's b-th window of this process (WindowOrder; train_step.h).
NPE_HD int64_t batch_window(const Batch& a, int64_t step, int b) {
  const int64_t offset = (step % a.steps_per_epoch) * (static_cast<int64_t>(a.batch) * a.world) +
                         static_cast<int64_t>(a.rank) * a.batch;
  return a.perm[(b + offset) % a.windows];
}

// Frame t-1 + k (k = 0, 1, 2) of window w: [N, 5].
NPE_HD const float* window_frame(const Batch& a, int64_t w, int k) {
  const int64_t scene = w / (a.frames - 2), t = 1 + w % (a.frames - 2);
  return a.traj + ((scene * a.frames + (t - 1 + k)) * a.balls) * 5;
}

// Rows of a block: the present focus balls of its windows and their neighbourhood pairs, in the
// order (window, focus ball, context ball). `focus` lists (window slot, ball), `pair_focus` the
// focus row of each pair and `pair_ball` its context ball; focus row k's pairs are
// [pair_begin[k], pair_begin[k + 1]).
struct BlockRows {
  int focus_count = 0, pair_count = 0;
};

// Builds the rows of the windows whose frames are `cur[k]` ([N, 5] at t, k < windows); capacity
// for windows x N focus rows and windows x N (N - 1) pairs.
NPE_HD BlockRows build_rows(const float* const* cur, int windows, int balls, float r2, int* focus_window,
                            int* focus_ball, int* pair_begin, int* pair_focus, int* pair_ball) {
  BlockRows r;
  for (int k = 0; k < windows; ++k) {
    for (int i = 0; i < balls; ++i) {
      const float* ci = cur[k] + 5 * i;
      if (!(ci[4] > 0.0f)) continue;  // absent: no prediction, no pairs
      focus_window[r.focus_count] = k;
      focus_ball[r.focus_count] = i;
      pair_begin[r.focus_count] = r.pair_count;
      for (int j = 0; j < balls; ++j) {
        if (j == i || !in_neighbourhood(ci, cur[k] + 5 * j, r2)) continue;
        pair_focus[r.pair_count] = r.focus_count;
        pair_ball[r.pair_count] = j;
        ++r.pair_count;
      }
      ++r.focus_count;
    }
  }
  pair_begin[r.focus_count] = r.pair_count;
  return r;
}

// Windows per block for a batch of B windows of N balls on a device of `sms` multiprocessors
// whose blocks may hold `smem_bytes` of shared memory: about one block per multiprocessor,
// as many windows as fit. 0 when not even one window fits.
inline int windows_per_block(int batch, int balls, int sms, int64_t smem_bytes);
// Shared memory of a block of `wpb` windows of N balls (weights, rows, lists, states).
inline int64_t block_smem_bytes(int wpb, int balls) {
  const int64_t rows_f = static_cast<int64_t>(wpb) * balls, rows_p = rows_f * (balls - 1);
  const int64_t floats = kParams + rows_p * kPairFloats + rows_f * kFocFloats + static_cast<int64_t>(wpb) * balls * 15 +
                         64;
  const int64_t ints = 2 * rows_f + (rows_f + 1) + 2 * rows_p + 2 * static_cast<int64_t>(wpb);
  return floats * 4 + ints * 4 + static_cast<int64_t>(wpb) * 16;
}
inline int windows_per_block(int batch, int balls, int sms, int64_t smem_bytes) {
  int want = (batch + sms - 1) / (sms > 0 ? sms : 1);
  if (want < 1) want = 1;
  while (want > 0 && block_smem_bytes(want, balls) > smem_bytes) --want;
  return want;
}

// ---- the CPU reference ------------------------------------------------------------------------

// The loss and gradient of step `step`'s batch for parameters `params` ([kParams], the flat order
// above), computed as the CUDA kernels compute them with blocks of `wpb` windows: `grad`
// [kParams] receives the batch's gradient (sum over blocks / D) and the return value the loss.
float classic_loss_grad_cpu(const Batch& batch, int64_t step, int wpb, const float* params, float* grad);

// ---- the CUDA kernels (classic_fused.cu; absent without a CUDA compiler) -----------------------

// Device pointers of one step: the parameters and optimizer moments ([kLayers * 2] tensors in
// parameter order, each contiguous), the flat gradient [kParams], scratch of
// partial_floats(blocks) floats, and the step's scalars.
struct StepState {
  float* param[2 * kLayers];
  float* moment1[2 * kLayers];   // exp_avg / square_avg
  float* moment2[2 * kLayers];   // exp_avg_sq (Adam, AdamW); unused by RMSprop
  float* grad = nullptr;         // [kParams]
  float* partial = nullptr;      // [blocks, kParams + 2]: per-block gradient sums, then loss and count
  float* loss = nullptr;         // [2]: the step's loss and D (written by the reduction)
  int64_t* step = nullptr;       // the step being taken (incremented by the update)
  float* opt_steps = nullptr;    // optimizer steps taken (incremented by the update)
  float* lr = nullptr;           // the step's learning rate (written by the update)
  float* loss_sum = nullptr;     // += the step's loss
  int64_t* first_bad = nullptr;  // the first step whose loss was not finite, or -1
  unsigned int* done = nullptr;  // 0: the update's count of finished blocks (reset by the last)
};
inline int64_t partial_floats(int blocks) { return static_cast<int64_t>(blocks) * (kParams + 2); }

// Maximum shared memory a block may use on the current device, and its multiprocessors.
bool device_limits(int* sms, int64_t* smem_bytes);
// Lets the loss_grad kernel use the shared memory of blocks of `wpb` windows of N balls (once,
// before launches and outside a graph capture).
void prepare_loss_grad(int wpb, int balls);
// Forward and backward of the batch (blocks of `wpb` windows), then the gradient's reduction
// over blocks into state.grad and the loss into state.loss; on `stream` (a cudaStream_t).
void launch_loss_grad(const Batch& batch, const StepState& state, int wpb, void* stream);
// Gradient clipping, the learning rate, the optimizer's update of every parameter, and the
// step's scalars (step, optimizer steps, loss sum, first non-finite step); on `stream`.
void launch_update(const UpdateConfig& config, const StepState& state, void* stream);
// A whole step of one process: launch_loss_grad then launch_update, with the reduction over
// blocks done by the update kernel itself when there is no clipping (two kernels a step).
void launch_step(const Batch& batch, const UpdateConfig& config, const StepState& state, int wpb, void* stream);

}  // namespace npe::model::fused
