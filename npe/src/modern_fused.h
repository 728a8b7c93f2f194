// npe/src/modern_fused.h (private to npe_model): the modern NPE's loss and gradient written by
// hand for the CUDA fast path of npe-train (train_step.cpp), in mixed precision: bfloat16
// tensor-core products with float32 accumulation, everything else in float32.
//
// The model is ModernNPEImpl (model.h) with d = kModernWidth, h = kModernHidden and dropout 0.
// Per window (frames t-1, t, t+1 of one scene, N balls), for each focus ball i and context ball
// j != i (rows of the encoder: B N (N-1); rows of the decoder: B N):
//   x0_ij = GELU(W_in [F_i, C_ij] + b_in)                 focus and context features [20] -> [d]
//   x_{k+1} = x_k + W2 GELU(W1 LN(x_k) + b1) + b2          encoder blocks (pre-LN residual MLP)
//   z_i   = [sum_j m_ij x_E,ij, F_i],  m_ij the neighbourhood mask (present, within r)
//   y0_i  = GELU(W_dec z_i + b_dec)                         [d + 10] -> [d]
//   y_{k+1} = y_k + W2 GELU(W1 LN(y_k) + b1) + b2           decoder blocks
//   out_i = W_head LN_f(y_D) + b_head                        [2]
//   pred_i = out_i std_v + mean_v   (or v_i(t) + out_i std_v with residual_velocity)
//   loss  = sum over present focus balls |pred_i - v_i(t+1)|^2 / D,  D = max(1, 2 present balls)
// GELU is the exact one (erf), LayerNorm's epsilon 1e-5 (libtorch's defaults).
//
// Precision. The four products of each residual block (forward W1, W2; backward W2^T, W1^T) and
// its weight gradients run on tensor cores with bfloat16 operands (LN(x), GELU(h), the output
// gradient, dh and the weights rounded to bfloat16) and float32 accumulation; the residual
// stream x, LayerNorm, GELU, biases and all sums are float32. That is at least as precise as
// libtorch's bf16 autocast of the same model, which also rounds the residual stream, the
// activations between products and the weight gradients to bfloat16 (tested against float32
// autograd, modern_fused_test.cpp).
//
// Kernels (modern_fused.cu), 6 + 4 (E + D) a step for E encoder and D decoder blocks:
//   enc_in (features, input layer, GELU; the mask), E block forwards, dec_in (masked sum over
//   pairs, decoder input layer; present-ball counts), D block forwards, head (final LayerNorm,
//   head, loss, and their backward), per decoder block from the last: backward rows (dx, column
//   sums, the bf16 operands of the weight gradients), weight gradients and the reduction of the
//   block's partial sums into its parameters' gradients (while they are in L2), dec_in
//   backward, encoder blocks likewise, enc_in backward, and the reduction of the other layers'
//   partial sums and of the loss.
// The residual blocks recompute LN(x), h and GELU(h) in the backward pass from the block's input
// instead of storing them. Weight gradients are sums over rows split in a fixed number of row
// ranges, each range's sum written to scratch and the ranges summed in order by the reduction:
// no atomics, so a run is reproducible bit for bit on one GPU model (the number of ranges
// follows the number of multiprocessors, and the tensor cores' order of products inside a
// 16 x 16 x 16 tile is the hardware's).
#pragma once

#include <cstdint>
#include <string>

#include "classic_fused.h"  // Batch, batch_window, window_frame, the features, in_neighbourhood

namespace npe::model {
class NPEImpl;
}

namespace npe::model::fused {

constexpr int kModernWidth = 96;    // d (msg_dim)
constexpr int kModernHidden = 192;  // h = d x expansion 2
constexpr int kModernMaxBlocks = 16;

// One residual block's parameters and gradients (device pointers, float32, contiguous):
// LayerNorm weight and bias [d], fc1 [h, d] and [h], fc2 [d, h] and [d].
struct ModernBlock {
  const float *ln_w = nullptr, *ln_b = nullptr, *w1 = nullptr, *b1 = nullptr, *w2 = nullptr, *b2 = nullptr;
  float *g_ln_w = nullptr, *g_ln_b = nullptr, *g_w1 = nullptr, *g_b1 = nullptr, *g_w2 = nullptr, *g_b2 = nullptr;
};

// The model's parameters and their gradients (device pointers; each gradient is written, not
// accumulated into): enc_in [d, 20] and [d], dec_in [d, d + 10] and [d], the blocks,
// final_norm [d] and [d], head [2, d] and [2].
struct ModernModel {
  int enc_blocks = 0, dec_blocks = 0;
  bool residual_velocity = false;
  const float *enc_in_w = nullptr, *enc_in_b = nullptr, *dec_in_w = nullptr, *dec_in_b = nullptr;
  const float *norm_w = nullptr, *norm_b = nullptr, *head_w = nullptr, *head_b = nullptr;
  float *g_enc_in_w = nullptr, *g_enc_in_b = nullptr, *g_dec_in_w = nullptr, *g_dec_in_b = nullptr;
  float *g_norm_w = nullptr, *g_norm_b = nullptr, *g_head_w = nullptr, *g_head_b = nullptr;
  ModernBlock enc[kModernMaxBlocks], dec[kModernMaxBlocks];
};

// Points `model` at the parameters of `net` (a ModernNPEImpl of width kModernWidth and hidden
// kModernHidden) and at their gradients, which must be defined (TrainStep makes them views of
// its flat gradient); every tensor must be contiguous float32 on the device (the parameters
// 16-byte aligned, as the caching allocator's are). Returns "" or what
// does not fit (a parameter missing, of another shape, or without a gradient).
std::string bind_modern_model(NPEImpl& net, ModernModel* model);

// The sizes a step is planned for: batch B windows of N >= 2 balls, the block counts, and the
// device's multiprocessors (which set the number of row ranges of the sums) and the shared
// memory a block may use there (device_limits, classic_fused.h).
struct ModernShape {
  int batch = 0, balls = 0, enc_blocks = 0, dec_blocks = 0, sms = 0;
  int64_t smem_bytes = 0;
};

// Why the kernels cannot run a step of this shape, or nullptr when they can.
const char* modern_unsupported(const ModernShape& shape);
// Bytes of device scratch a step of this shape needs: the forward pass's activations, the
// backward pass's buffers and the partial sums (about 0.9 KB per encoder row and block at
// d = 96, 150 MB for the default model at batch 2048 and 4 balls).
int64_t modern_workspace_bytes(const ModernShape& shape);

// Once per model and workspace, before any launch and outside a graph capture: writes the
// reduction's table (which partial sums go to which gradient) into the workspace and lets the
// kernels use their shared memory. Throws std::runtime_error on a CUDA error.
void modern_prepare(const ModernShape& shape, const ModernModel& model, void* workspace);

// The loss and gradient of the step's batch (Batch and *step as the classic step reads them;
// the step count is read on the device): every gradient of `model` is written, and loss[0]
// receives the loss and loss[1] D; on `stream` (a cudaStream_t), no host synchronisation.
void launch_modern_loss_grad(const Batch& batch, const int64_t* step, const ModernShape& shape,
                             const ModernModel& model, void* workspace, float* loss, void* stream);

}  // namespace npe::model::fused
