// The classic NPE's hand-written training step on CUDA (classic_fused.h): two kernels a step.
//   loss_grad:  one block per `wpb` windows; the block stages the 24,102 weights in shared
//               memory, builds its rows (present focus balls, neighbourhood pairs), runs the
//               forward and the backward pass over them, layer by layer (one thread per output),
//               and writes its gradient sum, loss sum and present-ball count to `partial`.
//   update:     one thread per parameter: the sum over blocks in block order, / D (the batch's
//               gradient; the loss likewise), the optimizer's update, and, in the last block to
//               finish, the step's scalars.
// With clipping (the norm needs the whole gradient first) or data parallel (the all-reduce goes
// between), a reduce kernel writes the gradient and the update kernel reads it: three kernels.
// Every value is the CPU reference's (classic_fused.cpp): the same per-item functions, the same
// order of sums, the same explicit fused multiply-adds and no others (--fmad=false), no atomics
// in any sum (the update's ticket counter only elects the block that writes the scalars).
#include "classic_fused.h"

#include <cuda_runtime.h>
#include "npe/core/cuda_check.h"

#include <stdexcept>
#include <string>

namespace npe::model::fused {
namespace {

constexpr int kThreads = 512;  // H100, batch 50: 76 us a step under ncu against 99 us with 256, 78 us with 1024
constexpr int kUpdateThreads = 256;


struct Shared {
  float* P;       // [kParams]
  float* foc;     // [wpb N, kFocFloats]
  float* pair;    // [wpb N (N-1), kPairFloats]
  float* states;  // [wpb, 3, N, 5]: prev, cur, next
  int* fw;        // [wpb N] window slot of each focus row
  int* fb;        // [wpb N] ball of each focus row
  int* pbegin;    // [wpb N + 1]
  int* pf;        // [wpb N (N-1)] focus row of each pair
  int* pj;        // [wpb N (N-1)] context ball of each pair
  int* counts;    // [2]: focus rows, pairs
};

__device__ Shared carve(void* smem, int wpb, int N) {
  Shared s;
  const int cap_f = wpb * N, cap_p = wpb * N * (N - 1);
  float* f = static_cast<float*>(smem);
  s.P = f, f += kParams;
  s.foc = f, f += cap_f * kFocFloats;
  s.pair = f, f += cap_p * kPairFloats;
  s.states = f, f += wpb * 3 * N * 5;
  int* i = reinterpret_cast<int*>(f);
  s.fw = i, i += cap_f;
  s.fb = i, i += cap_f;
  s.pbegin = i, i += cap_f + 1;
  s.pf = i, i += cap_p;
  s.pj = i, i += cap_p;
  s.counts = i;
  return s;
}

// Block gradient of layer L over `count` rows (dW then db, items split over the threads),
// written to the block's partial sums.
template <int L>
__device__ void layer_grad(const float* rows, int count, int stride, int dz_at, int in_at, float* out) {
  constexpr int n_out = layer_out(L), n_in = layer_in(L), n_w = n_out * n_in;
  for (int k = threadIdx.x; k < n_w + n_out; k += blockDim.x) {
    float acc = 0.0f;
    if (k < n_w) {
      const int o = k / n_in, i = k % n_in;
      for (int r = 0; r < count; ++r) acc = fmaf(rows[r * stride + dz_at + o], rows[r * stride + in_at + i], acc);
      out[weight_offset(L) + k] = acc;
    } else {
      const int o = k - n_w;
      for (int r = 0; r < count; ++r) acc += rows[r * stride + dz_at + o];
      out[bias_offset(L) + o] = acc;
    }
  }
}

// Decoder layer l (0 .. 4) backward over the focus rows: its block gradient from dz (at `dz`) and
// its input (d_l), then the gradient of its input into `dx` (through the ReLU of the layer
// below; layer 0: the gradient of S, the neighbourhood sum, which is linear).
template <int l>
__device__ void dec_backward(const float* P, float* foc, int nf, int dz, int dx, float* out) {
  constexpr int layer = kDec0 + l;
  constexpr int in = l == 0 ? kFocD0 : kFocD1 + (l - 1) * kHidden;
  const float* w = P + weight_offset(layer);
  layer_grad<layer>(foc, nf, kFocFloats, dz, in, out);
  for (int k = threadIdx.x; k < nf * kHidden; k += blockDim.x) {
    const int r = k / kHidden, i = k % kHidden;
    float* row = foc + r * kFocFloats;
    float g;
    if (l == kDecLayers - 1)
      g = relu_grad(dense_input_grad<kOut, kHidden>(w, row + dz, i), row[in + i]);
    else if (l > 0)
      g = relu_grad(dense_input_grad<kHidden, kHidden>(w, row + dz, i), row[in + i]);
    else
      g = dense_input_grad<kHidden, kHidden + kFeat>(w, row + dz, i);
    row[dx + i] = g;
  }
  __syncthreads();
}

// Encoder layer l (0 .. 4) backward over the pair rows; layer 0's input gradient is taken for the
// context half of h0 only (the focus half is summed per focus row afterwards).
template <int l>
__device__ void enc_backward(const float* P, float* pair, int np, int dz, int dx, float* out) {
  constexpr int layer = kEnc0 + l, in = kPairH0 + l * kHidden;
  constexpr int width = l > 0 ? kHidden : kIn, first = l > 0 ? 0 : kIn;
  const float* w = P + weight_offset(layer);
  layer_grad<layer>(pair, np, kPairFloats, dz, in, out);
  for (int k = threadIdx.x; k < np * width; k += blockDim.x) {
    const int q = k / width, i = k % width;
    float* row = pair + q * kPairFloats;
    row[dx + i] = relu_grad(dense_input_grad<kHidden, kHidden>(w, row + dz, first + i), row[in + first + i]);
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads) loss_grad_kernel(Batch a, int wpb, const StepState st) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int N = a.balls;
  Shared s = carve(smem_raw, wpb, N);
  const int w0 = blockIdx.x * wpb, nw = min(wpb, a.batch - w0);
  float* out = st.partial + static_cast<int64_t>(blockIdx.x) * (kParams + 2);
  const float* P = s.P;
  const int64_t step = *st.step;

  // the weights, and the windows' frames
  for (int l = 0; l < 2 * kLayers; ++l) {
    const int n = l % 2 == 0 ? layer_out(l / 2) * layer_in(l / 2) : layer_out(l / 2);
    float* dst = s.P + (l % 2 == 0 ? weight_offset(l / 2) : bias_offset(l / 2));
    for (int k = threadIdx.x; k < n; k += blockDim.x) dst[k] = st.param[l][k];
  }
  for (int k = threadIdx.x; k < nw * 3 * N * 5; k += blockDim.x) {
    const int win = k / (3 * N * 5), rest = k % (3 * N * 5), frame = rest / (N * 5);
    s.states[k] = window_frame(a, batch_window(a, step, w0 + win), frame)[rest % (N * 5)];
  }
  __syncthreads();
  auto prev = [&](int win, int ball) { return s.states + ((win * 3 + 0) * N + ball) * 5; };
  auto cur = [&](int win, int ball) { return s.states + ((win * 3 + 1) * N + ball) * 5; };
  auto next = [&](int win, int ball) { return s.states + ((win * 3 + 2) * N + ball) * 5; };
  if (threadIdx.x == 0) {
    const float* cur_frames[64];
    for (int k = 0; k < nw; ++k) cur_frames[k] = cur(k, 0);
    const BlockRows br = build_rows(cur_frames, nw, N, a.r2, s.fw, s.fb, s.pbegin, s.pf, s.pj);
    s.counts[0] = br.focus_count, s.counts[1] = br.pair_count;
  }
  __syncthreads();
  const int nf = s.counts[0], np = s.counts[1];
  float* foc = s.foc;
  float* pair = s.pair;
  auto foc_row = [&](int r) { return foc + r * kFocFloats; };
  auto Pr = [&](int r) { return pair + r * kPairFloats; };

  // features
  for (int k = threadIdx.x; k < nf + np; k += blockDim.x) {
    if (k < nf) {
      focus_features(prev(s.fw[k], s.fb[k]), cur(s.fw[k], s.fb[k]), a.mean, a.std, foc_row(k) + kFocF);
    } else {
      const int q = k - nf, f = s.pf[q];
      context_features(prev(s.fw[f], s.fb[f]), cur(s.fw[f], s.fb[f]), prev(s.fw[f], s.pj[q]), cur(s.fw[f], s.pj[q]),
                       a.mean, a.std, Pr(q) + kPairC);
    }
  }
  __syncthreads();
  // input layers: f of each focus row; h0 = [f, c] of each pair
  for (int k = threadIdx.x; k < nf * kIn + np * 2 * kIn; k += blockDim.x) {
    if (k < nf * kIn) {
      const int r = k / kIn, u = k % kIn;
      foc_row(r)[kFocf + u] = relu(
          dense_unit<kFeat>(P + weight_offset(kFocusIn), P + bias_offset(kFocusIn), foc_row(r) + kFocF, u));
    } else {
      const int q = (k - nf * kIn) / (2 * kIn), u = (k - nf * kIn) % (2 * kIn);
      Pr(q)[kPairH0 + u] = u < kIn ? relu(dense_unit<kFeat>(P + weight_offset(kFocusIn), P + bias_offset(kFocusIn),
                                                            foc_row(s.pf[q]) + kFocF, u))
                                   : relu(dense_unit<kFeat>(P + weight_offset(kContextIn), P + bias_offset(kContextIn),
                                                            Pr(q) + kPairC, u - kIn));
    }
  }
  __syncthreads();
  // encoder
  for (int l = 0; l < kEncLayers; ++l) {
    const float* w = P + weight_offset(kEnc0 + l);
    const float* b = P + bias_offset(kEnc0 + l);
    for (int k = threadIdx.x; k < np * kHidden; k += blockDim.x) {
      const int q = k / kHidden, o = k % kHidden;
      Pr(q)[kPairH1 + l * kHidden + o] = relu(dense_unit<kHidden>(w, b, Pr(q) + kPairH0 + l * kHidden, o));
    }
    __syncthreads();
  }
  // sum over the neighbourhood
  constexpr int kH5 = kPairH1 + (kEncLayers - 1) * kHidden;
  for (int k = threadIdx.x; k < nf * (kHidden + kFeat); k += blockDim.x) {
    const int r = k / (kHidden + kFeat), u = k % (kHidden + kFeat);
    if (u < kHidden) {
      float sum = 0.0f;
      for (int q = s.pbegin[r]; q < s.pbegin[r + 1]; ++q) sum += Pr(q)[kH5 + u];
      foc_row(r)[kFocD0 + u] = sum;
    } else {
      foc_row(r)[kFocD0 + u] = foc_row(r)[kFocF + u - kHidden];
    }
  }
  __syncthreads();
  // decoder
  for (int l = 0; l < kDecLayers - 1; ++l) {
    const float* w = P + weight_offset(kDec0 + l);
    const float* b = P + bias_offset(kDec0 + l);
    for (int k = threadIdx.x; k < nf * kHidden; k += blockDim.x) {
      const int r = k / kHidden, o = k % kHidden;
      foc_row(r)[kFocD1 + l * kHidden + o] = relu(
          l == 0 ? dense_unit<kHidden + kFeat>(w, b, foc_row(r) + kFocD0, o)
                 : dense_unit<kHidden>(w, b, foc_row(r) + kFocD1 + (l - 1) * kHidden, o));
    }
    __syncthreads();
  }
  constexpr int kD4 = kFocD1 + (kDecLayers - 2) * kHidden;
  for (int k = threadIdx.x; k < nf * kOut; k += blockDim.x) {
    const int r = k / kOut, o = k % kOut;
    foc_row(r)[kFocOut + o] = dense_unit<kHidden>(P + weight_offset(kLayers - 1), P + bias_offset(kLayers - 1),
                                                  foc_row(r) + kD4, o);
  }
  __syncthreads();
  // loss, and the gradient of the head's output (times D)
  if (threadIdx.x == 0) {
    float loss = 0.0f;
    for (int r = 0; r < nf; ++r) {
      loss += velocity_loss(cur(s.fw[r], s.fb[r]), next(s.fw[r], s.fb[r]), foc_row(r) + kFocOut, a.dv_std,
                            foc_row(r) + kFocGA);
    }
    out[kParams] = loss;
    out[kParams + 1] = static_cast<float>(nf);
  }
  __syncthreads();

  // backward through the decoder: its gradients alternate between the rows' GA and GB
  dec_backward<4>(P, foc, nf, kFocGA, kFocGB, out);
  dec_backward<3>(P, foc, nf, kFocGB, kFocGA, out);
  dec_backward<2>(P, foc, nf, kFocGA, kFocGB, out);
  dec_backward<1>(P, foc, nf, kFocGB, kFocGA, out);
  dec_backward<0>(P, foc, nf, kFocGA, kFocGB, out);
  const int dz = kFocGB;  // dS
  // the encoder's last layer, from dS
  for (int k = threadIdx.x; k < np * kHidden; k += blockDim.x) {
    const int q = k / kHidden, u = k % kHidden;
    Pr(q)[kPairGA + u] = relu_grad(foc_row(s.pf[q])[dz + u], Pr(q)[kH5 + u]);
  }
  __syncthreads();
  enc_backward<4>(P, pair, np, kPairGA, kPairGB, out);
  enc_backward<3>(P, pair, np, kPairGB, kPairGA, out);
  enc_backward<2>(P, pair, np, kPairGA, kPairGB, out);
  enc_backward<1>(P, pair, np, kPairGB, kPairGA, out);
  enc_backward<0>(P, pair, np, kPairGA, kPairGB, out);
  const int pdz = kPairGA, pdx = kPairGB;  // encoder layer 1's output gradient; context input layer's
  // focus input layer: encoder layer 1's output gradients summed over each focus row's pairs
  for (int k = threadIdx.x; k < nf * kHidden; k += blockDim.x) {
    const int r = k / kHidden, o = k % kHidden;
    float sum = 0.0f;
    for (int q = s.pbegin[r]; q < s.pbegin[r + 1]; ++q) sum += Pr(q)[pdz + o];
    foc_row(r)[kFocDZ + o] = sum;
  }
  __syncthreads();
  for (int k = threadIdx.x; k < nf * kIn; k += blockDim.x) {
    const int r = k / kIn, u = k % kIn;
    foc_row(r)[kFocDf + u] = relu_grad(
        dense_input_grad<kHidden, kHidden>(P + weight_offset(kEnc0), foc_row(r) + kFocDZ, u), foc_row(r)[kFocf + u]);
  }
  __syncthreads();
  layer_grad<kContextIn>(pair, np, kPairFloats, pdx, kPairC, out);
  layer_grad<kFocusIn>(foc, nf, kFocFloats, kFocDf, kFocF, out);
}

// The sum over blocks of entry p of the partial sums, in block order (loads unrolled, adds in order).
__device__ float sum_over_blocks(const float* partial, int blocks, int p) {
  float sum = 0.0f;
#pragma unroll 8
  for (int b = 0; b < blocks; ++b) sum += partial[static_cast<int64_t>(b) * (kParams + 2) + p];
  return sum;
}

// D = max(1, 2 x present balls of the batch), from the blocks' counts.
__device__ float loss_normaliser(const float* partial, int blocks) {
  return fmaxf(1.0f, 2.0f * sum_over_blocks(partial, blocks, kParams + 1));
}

// The batch's gradient and loss: the sums over blocks / D.
__global__ void reduce_kernel(const float* partial, int blocks, float* grad, float* loss) {
  __shared__ float D;
  if (threadIdx.x == 0) D = loss_normaliser(partial, blocks);
  __syncthreads();
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p > kParams) return;
  const float sum = sum_over_blocks(partial, blocks, p);
  if (p < kParams) {
    grad[p] = sum / D;
  } else {
    loss[0] = sum / D;
    loss[1] = D;
  }
}

// The parameter tensor t (weight or bias of layer t / 2) holding flat entry p, and p's index in it.
__device__ int tensor_of(int p, int* index) {
  int t = 0;
  while (t + 1 < 2 * kLayers && p >= ((t + 1) % 2 == 0 ? weight_offset((t + 1) / 2) : bias_offset((t + 1) / 2))) ++t;
  *index = p - (t % 2 == 0 ? weight_offset(t / 2) : bias_offset(t / 2));
  return t;
}

// The optimizer's update of every parameter, one thread each: the gradient from state.grad, or
// (kReduce) reduced here from the blocks' partial sums (and written to state.grad, the loss to
// state.loss). With clipping each block computes the whole gradient's norm itself, in one fixed
// order (the same value in every block). The last block to finish (a ticket counter, reset by it)
// then writes the step's scalars, once every block has read them.
template <bool kReduce>
__global__ void __launch_bounds__(kUpdateThreads)
    update_kernel(UpdateConfig c, StepState st, const float* partial, int blocks) {
  __shared__ float red[kUpdateThreads];
  __shared__ float coef, lr, bc1, bc2_sqrt, D;
  __shared__ bool last;
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (threadIdx.x == 0) {
    if (kReduce) D = loss_normaliser(partial, blocks);
    const float steps = *st.opt_steps + 1.0f;
    lr = static_cast<float>(scheduled_lr(c, *st.step));
    bc1 = static_cast<float>(1.0 - pow(static_cast<double>(c.beta1), static_cast<double>(steps)));
    bc2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(c.beta2), static_cast<double>(steps))));
  }
  if (c.max_grad_norm > 0.0f) {  // torch.nn.utils.clip_grad_norm_ (not with kReduce: see launch_step)
    float ss = 0.0f;
    for (int k = threadIdx.x; k < kParams; k += blockDim.x) ss += st.grad[k] * st.grad[k];
    red[threadIdx.x] = ss;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
      if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) {  // min(1, ratio) keeping a NaN norm's NaN, as libtorch's clamp_max
      const float ratio = c.max_grad_norm / (sqrtf(red[0]) + 1e-6f);
      coef = ratio > 1.0f ? 1.0f : ratio;
    }
  } else if (threadIdx.x == 0) {
    coef = 1.0f;
  }
  __syncthreads();
  if (p < kParams) {
    float g;
    if (kReduce) {
      g = sum_over_blocks(partial, blocks, p) / D;
      st.grad[p] = g;
    } else {
      g = st.grad[p];
    }
    int k = 0;
    const int t = tensor_of(p, &k);
    float unused = 0.0f;
    update_element(c, lr, bc1, bc2_sqrt, g * coef, st.param[t][k], st.moment1[t][k],
                   st.moment2[t] ? st.moment2[t][k] : unused);
  } else if (kReduce && p == kParams) {
    st.loss[0] = sum_over_blocks(partial, blocks, kParams) / D;
    st.loss[1] = D;
    __threadfence();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(st.done, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (last && threadIdx.x == 0) {
    __threadfence();
    const float loss = *static_cast<volatile float*>(st.loss);
    *st.lr = lr;
    *st.opt_steps += 1.0f;
    *st.loss_sum += loss;
    if (*st.first_bad < 0 && !isfinite(loss)) *st.first_bad = *st.step;
    *st.step += 1;
    *st.done = 0u;
  }
}

}  // namespace

bool device_limits(int* sms, int64_t* smem_bytes) {
  int dev = 0, n = 0, bytes = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return false;
  *sms = n;
  *smem_bytes = bytes;
  return true;
}

void prepare_loss_grad(int wpb, int balls) {
  // the device's whole opt-in limit (a process-wide setting of the kernel), so that steps of other
  // sizes alive in the same process keep launching
  int sms = 0;
  int64_t limit = 0;
  if (!device_limits(&sms, &limit)) throw std::runtime_error("classic fused step: no CUDA device");
  if (block_smem_bytes(wpb, balls) > limit) throw std::runtime_error("classic fused step: block too large");
  cuda_check(
      cudaFuncSetAttribute(loss_grad_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(limit)),
      "classic fused step: shared memory");
}

namespace {
int loss_grad_blocks(const Batch& batch, int wpb) {
  if (wpb < 1 || wpb > 64) throw std::runtime_error("classic fused step: windows per block out of range");
  return (batch.batch + wpb - 1) / wpb;
}
void launch_loss_grad_kernel(const Batch& batch, const StepState& state, int wpb, cudaStream_t s) {
  const int blocks = loss_grad_blocks(batch, wpb);
  const auto smem = static_cast<size_t>(block_smem_bytes(wpb, batch.balls));
  loss_grad_kernel<<<blocks, kThreads, smem, s>>>(batch, wpb, state);
  cuda_check(cudaGetLastError(), "classic fused step: loss_grad kernel");
}
constexpr int kUpdateBlocks = (kParams + 1 + kUpdateThreads - 1) / kUpdateThreads;
}  // namespace

void launch_loss_grad(const Batch& batch, const StepState& state, int wpb, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  launch_loss_grad_kernel(batch, state, wpb, s);
  reduce_kernel<<<(kParams + 1 + 255) / 256, 256, 0, s>>>(state.partial, loss_grad_blocks(batch, wpb), state.grad,
                                                          state.loss);
  cuda_check(cudaGetLastError(), "classic fused step: reduce kernel");
}

void launch_update(const UpdateConfig& config, const StepState& state, void* stream) {
  update_kernel<false>
      <<<kUpdateBlocks, kUpdateThreads, 0, static_cast<cudaStream_t>(stream)>>>(config, state, nullptr, 0);
  cuda_check(cudaGetLastError(), "classic fused step: update kernel");
}

void launch_step(const Batch& batch, const UpdateConfig& config, const StepState& state, int wpb, void* stream) {
  if (config.max_grad_norm > 0.0f) {  // the norm needs the whole reduced gradient first
    launch_loss_grad(batch, state, wpb, stream);
    launch_update(config, state, stream);
    return;
  }
  auto s = static_cast<cudaStream_t>(stream);
  launch_loss_grad_kernel(batch, state, wpb, s);
  update_kernel<true>
      <<<kUpdateBlocks, kUpdateThreads, 0, s>>>(config, state, state.partial, loss_grad_blocks(batch, wpb));
  cuda_check(cudaGetLastError(), "classic fused step: update kernel");
}

}  // namespace npe::model::fused
