// The modern NPE's loss and gradient on CUDA (modern_fused.h): bfloat16 tensor-core products
// (nvcuda::wmma, 16 x 16 x 16 tiles, float32 accumulation) inside hand-written kernels that keep
// LayerNorm, GELU, the residual and the column sums around them in float32.
//
// Residual blocks (the bulk of the work) run over tiles of 64 rows on persistent thread blocks
// of 8 warps, one per multiprocessor, which stage both weight matrices in shared memory as
// bfloat16 once:
//   forward:   LN(x) -> Y (bf16) -> H = Y W1^T -> G = GELU(H + b1) (bf16) -> out = x + G W2^T + b2;
//   backward:  recomputes Y, H; dG = dout W2; dH = dG GELU'(H + b1); dY = dH W1; dx = dout +
//              LN'(dY); writes Y, G, dH and dout in bf16 for the weight gradients and its
//              column sums (LN weight and bias, b1, b2) as one partial per thread block;
//   weights:   dW2 = dout^T G and dW1 = dH^T Y over fixed row ranges, one partial per range.
// The small layers (the input layers, the sum over pairs, the final LayerNorm and head with the
// loss) run on CUDA cores in float32, 32 rows per thread block.
#include "modern_fused.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include "npe/core/cuda_check.h"
#include <mma.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace npe::model::fused {
namespace {
using namespace nvcuda;
using bf16 = __nv_bfloat16;

constexpr int D = kModernWidth, H = kModernHidden;
constexpr int kInFeat = 2 * kFeat;  // enc_in's input: focus and context features
constexpr int kDecIn = D + kFeat;   // dec_in's input: the sum over pairs and the focus features
constexpr int TM = 64;              // rows of a residual block's tile
constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int LDD = D + 8, LDH = H + 8, LDF = H + 4;  // shared-memory row strides (elements)
constexpr int kColSums = 2 * D + H + D;               // per block: LN weight, LN bias, b1, b2
constexpr int kWFloats = D * H;                       // one weight matrix of a block
constexpr int kRangeRows = 64;                        // rows a weight-gradient stage reads
constexpr int kChunk = 32;                            // rows per stage of the small layers
constexpr int kEncInW = D * (kInFeat + 1);            // enc_in's weight and bias (2016)
constexpr int kDecInW = D * (kDecIn + 1);             // dec_in's weight and bias (10272)
constexpr int kHeadPartial = 4 * D + 2 + 1;           // final LN weight, bias, head weight, bias, loss
constexpr float kLnEps = 1e-5f;
static_assert(D == 96 && H == 2 * D, "the tilings below are written for d = 96, h = 192");
static_assert(D % 32 == 0, "a warp's lane holds d / 32 columns of a row");
constexpr int kLaneCols = D / 32;
constexpr int kRowsPerWarp = TM / kWarps;  // rows of a tile a warp normalises
static_assert(kChunk * D % kThreads == 0, "the small layers' loops have whole trips");
static_assert(kChunk == 32, "a chunk's rows are one warp's lanes (dec_in_kernel's ballot)");


// ---- shared memory of the residual blocks' kernels (bytes; every tile 32-byte aligned) -----
constexpr int64_t kW1Bytes = int64_t{H} * LDD * 2, kW2Bytes = int64_t{D} * LDH * 2;
constexpr int64_t kYBytes = int64_t{TM} * LDD * 2, kGBytes = int64_t{TM} * LDH * 2, kFBytes = int64_t{TM} * LDF * 4;
constexpr int64_t kPrmBytes = int64_t{2 * D + H + D} * 4;
// forward: W1 | W2 | Y | G | Acc (float) | ln_w ln_b b1 b2
constexpr int64_t kFwdW2 = kW1Bytes, kFwdY = kFwdW2 + kW2Bytes, kFwdG = kFwdY + kYBytes, kFwdAcc = kFwdG + kGBytes;
constexpr int64_t kFwdPrm = kFwdAcc + kFBytes, kFwdSmem = kFwdPrm + kPrmBytes;
// backward: W1 | W2 | Y | dout (bf16) | dH (bf16) | H, GELU'(H), dH, dY (float) | ln_w ln_b b1 b2
constexpr int64_t kBwdW2 = kW1Bytes, kBwdY = kBwdW2 + kW2Bytes, kBwdD = kBwdY + kYBytes, kBwdDH = kBwdD + kYBytes;
constexpr int64_t kBwdF = kBwdDH + kGBytes, kBwdPrm = kBwdF + kFBytes, kBwdSmem = kBwdPrm + kPrmBytes;
static_assert(kFwdY % 32 == 0 && kFwdG % 32 == 0 && kFwdAcc % 32 == 0 && kBwdD % 32 == 0 && kBwdDH % 32 == 0 &&
                  kBwdF % 32 == 0,
              "wmma tiles need 32-byte aligned shared memory");
constexpr int64_t kDecInFwdSmem = (int64_t{D} * (kDecIn + 1) + int64_t{kChunk} * (kDecIn + 1)) * 4;

// ---- per-item maths -----------------------------------------------------------------------

// GELU (the exact one, libtorch's default) and its derivative.
__device__ __forceinline__ float gelu(float h) { return 0.5f * h * (1.0f + erff(h * 0.70710678118654752f)); }
// Both from one erf: h Phi(h) into *g, GELU'(h) = Phi(h) + h phi(h) returned.
__device__ __forceinline__ float gelu_and_grad(float h, float* g) {
  const float cdf = 0.5f * (1.0f + erff(h * 0.70710678118654752f));
  *g = h * cdf;
  return cdf + h * (0.39894228040143268f * expf(-0.5f * h * h));
}
__device__ __forceinline__ float gelu_grad(float h) {
  float unused;
  return gelu_and_grad(h, &unused);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// LayerNorm statistics of a row held by a warp (lane: columns lane + 32 k): mean and
// 1 / sqrt(biased variance + eps).
struct RowStats {
  float mean, rstd;
};
__device__ __forceinline__ RowStats row_stats(const float (&v)[kLaneCols]) {
  float s = 0.0f;
  for (int k = 0; k < kLaneCols; ++k) s += v[k];
  const float mean = warp_sum(s) * (1.0f / D);
  float q = 0.0f;
  for (int k = 0; k < kLaneCols; ++k) q += (v[k] - mean) * (v[k] - mean);
  return {mean, rsqrtf(warp_sum(q) * (1.0f / D) + kLnEps)};
}

// Input of encoder row r (focus ball i, context ball j of window w): [F_i, C_ij] [20], and the
// neighbourhood mask of the pair.
__device__ void pair_input(const Batch& a, int64_t step, int r, float* in, float* mask) {
  const int P = a.balls - 1, q = r / P, k = r % P, w = q / a.balls, i = q % a.balls, j = k + (k >= i ? 1 : 0);
  const int64_t window = batch_window(a, step, w);
  const float* prev = window_frame(a, window, 0);
  const float* cur = window_frame(a, window, 1);
  focus_features(prev + 5 * i, cur + 5 * i, a.mean, a.std, in);
  context_features(prev + 5 * i, cur + 5 * i, prev + 5 * j, cur + 5 * j, a.mean, a.std, in + kFeat);
  if (mask) *mask = in_neighbourhood(cur + 5 * i, cur + 5 * j, a.r2) ? 1.0f : 0.0f;
}

// The gradient flowing into an encoder block's output: a tensor [rows, d], or, for the last
// encoder block, the decoder's gradient of the sum over pairs broadcast to the pairs and masked.
struct GradIn {
  const float* dout = nullptr;  // [rows, d], or
  const float* dsum = nullptr;  // [rows / pairs, d] with
  const float* mask = nullptr;  // [rows]
  int pairs = 1;
};
__device__ __forceinline__ float grad_at(const GradIn& g, int r, int c) {
  return g.dout ? g.dout[static_cast<size_t>(r) * D + c] : g.dsum[static_cast<size_t>(r / g.pairs) * D + c] * g.mask[r];
}

struct BlockW {
  const float *ln_w, *ln_b, *w1, *b1, *w2, *b2;
};
BlockW block_w(const ModernBlock& b) { return {b.ln_w, b.ln_b, b.w1, b.b1, b.w2, b.b2}; }

// A weight float32 [Rows, Cols] (16-byte aligned) into shared memory with row stride ld, as T
// (bfloat16 or float): 16-byte loads, all of a thread's issued before the first store.
template <int Rows, int Cols, typename T>
__device__ __forceinline__ void stage(const float* __restrict__ src, T* dst, int ld) {
  constexpr int n4 = Rows * Cols / 4, per = (n4 + kThreads - 1) / kThreads;
  static_assert(Rows * Cols % 4 == 0, "16-byte loads");
  float4 v[per];
#pragma unroll
  for (int k = 0; k < per; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < n4) v[k] = reinterpret_cast<const float4*>(src)[i];
  }
#pragma unroll
  for (int k = 0; k < per; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i >= n4) continue;
    const float e[4] = {v[k].x, v[k].y, v[k].z, v[k].w};
    for (int t = 0; t < 4; ++t) {
      const int f = 4 * i + t;
      if constexpr (std::is_same_v<T, bf16>)
        dst[(f / Cols) * ld + f % Cols] = __float2bfloat16(e[t]);
      else
        dst[(f / Cols) * ld + f % Cols] = e[t];
    }
  }
}

// The rows a warp normalises in a tile (warp + 8 j), lane columns lane + 32 k, of a [rows, d]
// tensor read as value(r, c); zeros past the last row. All loads are issued before any is used.
template <typename Value>
__device__ __forceinline__ void load_rows_of(Value value, int r0, int rows, float (&v)[kRowsPerWarp][kLaneCols]) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < kRowsPerWarp; ++j) {
    const int r = r0 + warp + j * kWarps;
#pragma unroll
    for (int k = 0; k < kLaneCols; ++k) v[j][k] = r < rows ? value(r, lane + 32 * k) : 0.0f;
  }
}
__device__ __forceinline__ void load_rows(const float* __restrict__ src, int r0, int rows,
                                          float (&v)[kRowsPerWarp][kLaneCols]) {
  load_rows_of([&](int r, int c) { return src[static_cast<size_t>(r) * D + c]; }, r0, rows, v);
}
// The gradient's rows (GradIn): a tensor's, or the broadcast sum's.
__device__ __forceinline__ void load_grad_rows(const GradIn& g, int r0, int rows, float (&v)[kRowsPerWarp][kLaneCols]) {
  if (g.dout) return load_rows(g.dout, r0, rows, v);
  load_rows_of([&](int r, int c) { return grad_at(g, r, c); }, r0, rows, v);
}

// A residual block's parameters in shared memory, as both its kernels hold them: W1 [h][LDD]
// and W2 [d][LDH] in bf16, and `prm` = ln_w [d] | ln_b [d] | b1 [h] | b2 [d] in float32.
__device__ __forceinline__ void stage_block(const BlockW& p, bf16* W1s, bf16* W2s, float* prm) {
  stage<H, D>(p.w1, W1s, LDD);
  stage<D, H>(p.w2, W2s, LDH);
  for (int i = threadIdx.x; i < D; i += kThreads)
    prm[i] = p.ln_w[i], prm[D + i] = p.ln_b[i], prm[2 * D + H + i] = p.b2[i];
  for (int i = threadIdx.x; i < H; i += kThreads) prm[2 * D + i] = p.b1[i];
  __syncthreads();
}

// ---- tensor-core products of a 64-row tile ------------------------------------------------

using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// acc = A [64, K] (bf16, row-major, stride lda) times B [K, 2 NF 16], where B(k, n) is
// Bs[n ldb + k] (col_major: a weight stored [n][k], used transposed) or Bs[k ldb + n]
// (row_major: a weight stored [k][n]). Warp w computes rows 16 (w % 4) and the NF column tiles
// from 16 NF (w / 4).
template <int K, int NF, typename LayoutB>
__device__ __forceinline__ void tile_product(const bf16* A, int lda, const bf16* Bs, int ldb, FragC (&acc)[NF]) {
  const int warp = threadIdx.x >> 5, m0 = (warp & 3) * 16, nb = (warp >> 2) * NF * 16;
  for (int f = 0; f < NF; ++f) wmma::fill_fragment(acc[f], 0.0f);
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
    wmma::load_matrix_sync(a, A + m0 * lda + k0, lda);
#pragma unroll
    for (int f = 0; f < NF; ++f) {
      const int n0 = nb + f * 16;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LayoutB> b;
      if constexpr (std::is_same_v<LayoutB, wmma::col_major>)
        wmma::load_matrix_sync(b, Bs + n0 * ldb + k0, ldb);
      else
        wmma::load_matrix_sync(b, Bs + k0 * ldb + n0, ldb);
      wmma::mma_sync(acc[f], a, b, acc[f]);
    }
  }
}
template <int NF>
__device__ __forceinline__ void store_tile(float* C, int ldc, FragC (&acc)[NF]) {
  const int warp = threadIdx.x >> 5, m0 = (warp & 3) * 16, nb = (warp >> 2) * NF * 16;
  for (int f = 0; f < NF; ++f) wmma::store_matrix_sync(C + m0 * ldc + nb + f * 16, acc[f], ldc, wmma::mem_row_major);
}
static_assert(TM == 4 * 16 && kWarps == 8, "tile_product: 4 row tiles x 2 column groups of warps");

// ---- kernels ------------------------------------------------------------------------------

// Register tile of the small layers' products: thread t takes rows 2 (t / 16) and 2 (t / 16) + 1
// of a chunk of 32 and units t % 16 + 16 j (j < 6) of d = 96 (shared-memory loads broadcast
// across the 16 lanes of a row pair, or consecutive).
constexpr int kTileUnits = D / 16;
static_assert(kChunk == 2 * kThreads / 16 && D % 16 == 0, "the small layers' register tile");

// acc[h][j] += sum over k < K of a(k, h) b(k, j): the tile's two rows (h) by its six units (j).
template <int K, typename A, typename B>
__device__ __forceinline__ void tile_2x6(A a, B b, float (&acc)[2][kTileUnits]) {
  for (int k = 0; k < K; ++k) {
    const float a0 = a(k, 0), a1 = a(k, 1);
#pragma unroll
    for (int j = 0; j < kTileUnits; ++j) {
      const float w = b(k, j);
      acc[0][j] = fmaf(w, a0, acc[0][j]), acc[1][j] = fmaf(w, a1, acc[1][j]);
    }
  }
}

// enc_in: x0 = GELU(W_in [F, C] + b_in) for 32 encoder rows per thread block; the mask and the
// features [rows, 20] (kept for the backward pass).
__global__ void __launch_bounds__(kThreads)
    enc_in_kernel(Batch a, const int64_t* step_p, const float* __restrict__ W, const float* __restrict__ b, int rows,
                  float* __restrict__ x0, float* __restrict__ mask, float* __restrict__ feat) {
  __shared__ float Ws[kInFeat][D];  // transposed: [i][u]
  __shared__ float In[kChunk][kInFeat];
  for (int i = threadIdx.x; i < D * kInFeat; i += kThreads) Ws[i % kInFeat][i / kInFeat] = W[i];
  const int r0 = blockIdx.x * kChunk;
  if (threadIdx.x < kChunk) {
    const int r = r0 + threadIdx.x;
    if (r < rows) {
      pair_input(a, *step_p, r, In[threadIdx.x], mask + r);
      for (int i = 0; i < kInFeat; ++i) feat[static_cast<size_t>(r) * kInFeat + i] = In[threadIdx.x][i];
    } else {
      for (int i = 0; i < kInFeat; ++i) In[threadIdx.x][i] = 0.0f;
    }
  }
  __syncthreads();
  const int rg = 2 * (threadIdx.x / 16), cg = threadIdx.x % 16;
  float z[2][kTileUnits] = {};
  tile_2x6<kInFeat>([&](int i, int h) { return In[rg + h][i]; }, [&](int i, int j) { return Ws[i][cg + 16 * j]; }, z);
  for (int h = 0; h < 2; ++h) {
    const int r = r0 + rg + h;
    if (r >= rows) break;
#pragma unroll
    for (int j = 0; j < kTileUnits; ++j) {
      const int u = cg + 16 * j;
      x0[static_cast<size_t>(r) * D + u] = gelu(z[h][j] + b[u]);
    }
  }
}

// A residual block's forward pass over its rows (tiles of 64 on persistent thread blocks).
__global__ void __launch_bounds__(kThreads)
    block_forward_kernel(const float* __restrict__ x, float* __restrict__ out, int rows, BlockW p) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* W1s = reinterpret_cast<bf16*>(smem);
  bf16* W2s = reinterpret_cast<bf16*>(smem + kFwdW2);
  bf16* Ys = reinterpret_cast<bf16*>(smem + kFwdY);
  bf16* Gs = reinterpret_cast<bf16*>(smem + kFwdG);
  float* Acc = reinterpret_cast<float*>(smem + kFwdAcc);
  float* lnw = reinterpret_cast<float*>(smem + kFwdPrm);
  const float *lnb = lnw + D, *b1 = lnb + D, *b2 = b1 + H;
  stage_block(p, W1s, W2s, lnw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tiles = (rows + TM - 1) / TM;
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int r0 = tile * TM;
    float xv[kRowsPerWarp][kLaneCols];  // the warp's rows of x, kept for the residual
    load_rows(x, r0, rows, xv);
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {  // Y = LN(x), a warp per row
      const int lr = warp + j * kWarps;
      const RowStats s = row_stats(xv[j]);
      for (int k = 0; k < kLaneCols; ++k) {
        const int c = lane + 32 * k;
        Ys[lr * LDD + c] = __float2bfloat16(r0 + lr < rows ? (xv[j][k] - s.mean) * s.rstd * lnw[c] + lnb[c] : 0.0f);
      }
    }
    __syncthreads();
    {
      FragC acc[6];
      tile_product<D, 6, wmma::col_major>(Ys, LDD, W1s, LDD, acc);  // Y W1^T
      store_tile(Acc, LDF, acc);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < TM * H; i += kThreads) {
      const int lr = i / H, c = i % H;
      Gs[lr * LDH + c] = __float2bfloat16(gelu(Acc[lr * LDF + c] + b1[c]));
    }
    __syncthreads();
    {
      FragC acc[3];
      tile_product<H, 3, wmma::col_major>(Gs, LDH, W2s, LDH, acc);  // G W2^T
      store_tile(Acc, LDF, acc);
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
      const int lr = warp + j * kWarps, r = r0 + lr;
      if (r >= rows) break;
      for (int k = 0; k < kLaneCols; ++k) {
        const int c = lane + 32 * k;
        out[static_cast<size_t>(r) * D + c] = xv[j][k] + (Acc[lr * LDF + c] + b2[c]);
      }
    }
    __syncthreads();
  }
}

// A residual block's backward pass over its rows: dx, the bf16 operands of the weight
// gradients (Y, G, dH, dout: [rows, d], [rows, h], [rows, h], [rows, d]) and this thread
// block's column sums `colsum` [kColSums].
__global__ void __launch_bounds__(kThreads)
    block_backward_kernel(const float* __restrict__ x, GradIn g, float* __restrict__ dx, int rows, BlockW p,
                          bf16* __restrict__ Yg, bf16* __restrict__ Gg, bf16* __restrict__ DHg, bf16* __restrict__ Dg,
                          float* __restrict__ colsum) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* W1s = reinterpret_cast<bf16*>(smem);
  bf16* W2s = reinterpret_cast<bf16*>(smem + kBwdW2);
  bf16* Ys = reinterpret_cast<bf16*>(smem + kBwdY);
  bf16* Ds = reinterpret_cast<bf16*>(smem + kBwdD);
  bf16* DHs = reinterpret_cast<bf16*>(smem + kBwdDH);
  float* Fs = reinterpret_cast<float*>(smem + kBwdF);
  float* lnw = reinterpret_cast<float*>(smem + kBwdPrm);
  const float *lnb = lnw + D, *b1 = lnb + D;
  stage_block(p, W1s, W2s, lnw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tiles = (rows + TM - 1) / TM;
  float s_lnw[kLaneCols] = {}, s_lnb[kLaneCols] = {}, s_b2[kLaneCols] = {}, s_b1 = 0.0f;
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int r0 = tile * TM;
    // 1. Y = LN(x) again, and dout in bf16 (zeros past the last row); the warp's rows of x, their
    //    statistics and dout stay in registers for step 7
    float xv[kRowsPerWarp][kLaneCols], dv[kRowsPerWarp][kLaneCols], mean[kRowsPerWarp], rstd[kRowsPerWarp];
    load_rows(x, r0, rows, xv);
    load_grad_rows(g, r0, rows, dv);
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
      const int lr = warp + j * kWarps, r = r0 + lr;
      const RowStats s = row_stats(xv[j]);
      mean[j] = s.mean, rstd[j] = s.rstd;
      for (int k = 0; k < kLaneCols; ++k) {
        const int c = lane + 32 * k;
        const bf16 y = __float2bfloat16(r < rows ? (xv[j][k] - s.mean) * s.rstd * lnw[c] + lnb[c] : 0.0f);
        const bf16 d = __float2bfloat16(dv[j][k]);
        Ys[lr * LDD + c] = y, Ds[lr * LDD + c] = d;
        if (r < rows) Yg[static_cast<size_t>(r) * D + c] = y, Dg[static_cast<size_t>(r) * D + c] = d;
      }
    }
    __syncthreads();
    // 2. H = Y W1^T
    FragC acc[6];
    tile_product<D, 6, wmma::col_major>(Ys, LDD, W1s, LDD, acc);
    store_tile(Fs, LDF, acc);
    __syncthreads();
    // 3. G = GELU(H + b1) to global; Fs <- GELU'(H + b1)
    for (int i = threadIdx.x; i < TM * H; i += kThreads) {
      const int lr = i / H, c = i % H;
      float gv;
      const float gp = gelu_and_grad(Fs[lr * LDF + c] + b1[c], &gv);
      if (r0 + lr < rows) Gg[static_cast<size_t>(r0 + lr) * H + c] = __float2bfloat16(gv);
      Fs[lr * LDF + c] = gp;
    }
    __syncthreads();
    // 4. dH = (dout W2) GELU'(H + b1), element by element in the accumulator fragments: the
    //    product's fragment and one loaded from GELU' are of the same type, whose elements map to
    //    the tile through store_matrix_sync alike (loading is storing's inverse), so element e of
    //    both is the same (row, column)
    tile_product<D, 6, wmma::row_major>(Ds, LDD, W2s, LDH, acc);
    {
      const int m0 = (warp & 3) * 16, nb = (warp >> 2) * 6 * 16;
      for (int f = 0; f < 6; ++f) {
        FragC gp;
        float* at = Fs + m0 * LDF + nb + f * 16;
        wmma::load_matrix_sync(gp, at, LDF, wmma::mem_row_major);
        for (int e = 0; e < gp.num_elements; ++e) acc[f].x[e] *= gp.x[e];
        wmma::store_matrix_sync(at, acc[f], LDF, wmma::mem_row_major);
      }
    }
    __syncthreads();
    // 5. dH in bf16 (shared and global); b1's column sums in float32
    if (threadIdx.x < H) {
      const int c = threadIdx.x;
      for (int lr = 0; lr < TM; ++lr) {
        const float v = Fs[lr * LDF + c];
        s_b1 += v;
        const bf16 h = __float2bfloat16(v);
        DHs[lr * LDH + c] = h;
        if (r0 + lr < rows) DHg[static_cast<size_t>(r0 + lr) * H + c] = h;
      }
    }
    __syncthreads();
    // 6. dY = dH W1
    {
      FragC acc3[3];
      tile_product<H, 3, wmma::row_major>(DHs, LDH, W1s, LDD, acc3);
      store_tile(Fs, LDF, acc3);
    }
    __syncthreads();
    // 7. LayerNorm's backward, the residual, and the column sums of the LN parameters and b2
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
      const int lr = warp + j * kWarps, r = r0 + lr;
      if (r >= rows) break;
      float xh[kLaneCols], gk[kLaneCols], s1 = 0.0f, s2 = 0.0f;
      for (int k = 0; k < kLaneCols; ++k) {
        const int c = lane + 32 * k;
        xh[k] = (xv[j][k] - mean[j]) * rstd[j];
        const float dy = Fs[lr * LDF + c];
        s_lnw[k] += dy * xh[k], s_lnb[k] += dy;
        gk[k] = dy * lnw[c];
        s1 += gk[k], s2 += gk[k] * xh[k];
      }
      s1 = warp_sum(s1) * (1.0f / D), s2 = warp_sum(s2) * (1.0f / D);
      for (int k = 0; k < kLaneCols; ++k) {
        const int c = lane + 32 * k;
        s_b2[k] += dv[j][k];
        dx[static_cast<size_t>(r) * D + c] = dv[j][k] + rstd[j] * (gk[k] - s1 - xh[k] * s2);
      }
    }
    __syncthreads();
  }
  // the column sums: each warp's lanes, then the warps in order
  float* red = Fs;  // [warps][3][d]
  for (int k = 0; k < kLaneCols; ++k) {
    const int c = lane + 32 * k;
    red[(warp * 3 + 0) * D + c] = s_lnw[k], red[(warp * 3 + 1) * D + c] = s_lnb[k],
                             red[(warp * 3 + 2) * D + c] = s_b2[k];
  }
  __syncthreads();
  float* out = colsum + static_cast<size_t>(blockIdx.x) * kColSums;
  for (int i = threadIdx.x; i < 3 * D; i += kThreads) {
    float s = 0.0f;
    for (int w = 0; w < kWarps; ++w) s += red[w * 3 * D + i];
    const int which = i / D, c = i % D;
    out[(which == 0 ? 0 : which == 1 ? D : 2 * D + H) + c] = s;
  }
  if (threadIdx.x < H) out[2 * D + threadIdx.x] = s_b1;
}

// C [M, N] = sum over rows of A[r, :]^T B[r, :] (bf16 [rows, M] and [rows, N]) for the rows
// [blockIdx.x chunk, + chunk), into `out` [M, N] (float32, row-major).
template <int M, int N>
__device__ __forceinline__ void weight_grad(const bf16* __restrict__ A, const bf16* __restrict__ B, int rows, int chunk,
                                            bf16* sm, float* __restrict__ out) {
  constexpr int LA = M + 8, LB = N + 8, FN = N / 16, F = (M / 16) * FN / kWarps;
  static_assert((M / 16) * FN % kWarps == 0, "the output tiles split evenly over the warps");
  bf16* As = sm;
  bf16* Bs = sm + kRangeRows * LA;
  const int warp = threadIdx.x >> 5;
  FragC acc[F];
  for (int f = 0; f < F; ++f) wmma::fill_fragment(acc[f], 0.0f);
  const int begin = blockIdx.x * chunk, end = min(rows, begin + chunk);
  // 16-byte copies; the next stage's are loaded into registers while this stage's products run
  constexpr int NA = kRangeRows * M / 8 / kThreads, NB = kRangeRows * N / 8 / kThreads;
  static_assert(kRangeRows * M % (8 * kThreads) == 0 && kRangeRows * N % (8 * kThreads) == 0, "whole copies");
  uint4 ra[NA], rb[NB];
  auto fetch = [&](int r0) {
#pragma unroll
    for (int k = 0; k < NA; ++k) {
      const int i = threadIdx.x + k * kThreads, r = r0 + i / (M / 8);
      ra[k] = r < end ? reinterpret_cast<const uint4*>(A + static_cast<size_t>(r) * M)[i % (M / 8)]
                      : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int k = 0; k < NB; ++k) {
      const int i = threadIdx.x + k * kThreads, r = r0 + i / (N / 8);
      rb[k] = r < end ? reinterpret_cast<const uint4*>(B + static_cast<size_t>(r) * N)[i % (N / 8)]
                      : make_uint4(0, 0, 0, 0);
    }
  };
  if (begin < end) fetch(begin);
  for (int r0 = begin; r0 < end; r0 += kRangeRows) {
#pragma unroll
    for (int k = 0; k < NA; ++k) {
      const int i = threadIdx.x + k * kThreads;
      *reinterpret_cast<uint4*>(As + (i / (M / 8)) * LA + (i % (M / 8)) * 8) = ra[k];
    }
#pragma unroll
    for (int k = 0; k < NB; ++k) {
      const int i = threadIdx.x + k * kThreads;
      *reinterpret_cast<uint4*>(Bs + (i / (N / 8)) * LB + (i % (N / 8)) * 8) = rb[k];
    }
    __syncthreads();
    if (r0 + kRangeRows < end) fetch(r0 + kRangeRows);
#pragma unroll
    for (int k0 = 0; k0 < kRangeRows; k0 += 16) {
#pragma unroll
      for (int f = 0; f < F; ++f) {
        const int t = warp * F + f, m0 = (t / FN) * 16, n0 = (t % FN) * 16;
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> a;  // (m, k) = A[k][m]
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
        wmma::load_matrix_sync(a, As + k0 * LA + m0, LA);
        wmma::load_matrix_sync(b, Bs + k0 * LB + n0, LB);
        wmma::mma_sync(acc[f], a, b, acc[f]);
      }
    }
    __syncthreads();
  }
  for (int f = 0; f < F; ++f) {
    const int t = warp * F + f, m0 = (t / FN) * 16, n0 = (t % FN) * 16;
    wmma::store_matrix_sync(out + m0 * N + n0, acc[f], N, wmma::mem_row_major);
  }
}

// A block's weight gradients over row ranges: blockIdx.y 0: dW2 = dout^T G [d, h], 1: dW1 =
// dH^T Y [h, d]; `part` [2][ranges][d h].
__global__ void __launch_bounds__(kThreads)
    weight_grad_kernel(const bf16* __restrict__ Dg, const bf16* __restrict__ Gg, const bf16* __restrict__ DHg,
                       const bf16* __restrict__ Yg, int rows, int chunk, float* __restrict__ part) {
  __shared__ __align__(128) bf16 sm[kRangeRows * (D + 8 + H + 8)];
  if (blockIdx.y == 0)
    weight_grad<D, H>(Dg, Gg, rows, chunk, sm, part + static_cast<size_t>(blockIdx.x) * kWFloats);
  else
    weight_grad<H, D>(DHg, Yg, rows, chunk, sm, part + static_cast<size_t>(gridDim.x + blockIdx.x) * kWFloats);
}

// dec_in: z = [sum over the pairs of m x_E, F] (kept for the backward), its pre-activation and
// y0 = GELU(W_dec z + b_dec), 32 focus rows per thread block; `counts` [gridDim.x]: present balls.
__global__ void __launch_bounds__(kThreads)
    dec_in_kernel(Batch a, const int64_t* step_p, const float* __restrict__ W, const float* __restrict__ b,
                  const float* __restrict__ xE, const float* __restrict__ mask, int rows, float* __restrict__ z_out,
                  float* __restrict__ pre_out, float* __restrict__ y0, float* __restrict__ counts) {
  extern __shared__ __align__(128) unsigned char smem[];
  float* Ws = reinterpret_cast<float*>(smem);  // [d][107]: the weight row, then the bias
  float* Z = Ws + D * (kDecIn + 1);            // [32][107]
  stage<D, kDecIn>(W, Ws, kDecIn + 1);
  for (int u = threadIdx.x; u < D; u += kThreads) Ws[u * (kDecIn + 1) + kDecIn] = b[u];
  const int r0 = blockIdx.x * kChunk, P = a.balls - 1;
#pragma unroll
  for (int t = 0; t < kChunk * D / kThreads; ++t) {
    const int o = threadIdx.x + t * kThreads, rr = o / D, u = o % D, q = r0 + rr;
    float s = 0.0f;
    if (q < rows)
      for (int k = 0; k < P; ++k)
        s += xE[(static_cast<size_t>(q) * P + k) * D + u] * mask[static_cast<size_t>(q) * P + k];
    Z[rr * (kDecIn + 1) + u] = s;
  }
  if (threadIdx.x < kChunk) {
    const int q = r0 + threadIdx.x;
    bool present = false;
    float* F = Z + threadIdx.x * (kDecIn + 1) + D;
    if (q < rows) {
      const int w = q / a.balls, i = q % a.balls;
      const int64_t window = batch_window(a, *step_p, w);
      const float* prev = window_frame(a, window, 0);
      const float* cur = window_frame(a, window, 1);
      focus_features(prev + 5 * i, cur + 5 * i, a.mean, a.std, F);
      present = cur[5 * i + 4] > 0.0f;
    } else {
      for (int k = 0; k < kFeat; ++k) F[k] = 0.0f;
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, present);
    if (threadIdx.x == 0) counts[blockIdx.x] = static_cast<float>(__popc(ballot));
  }
  __syncthreads();
  {
    const int rg = 2 * (threadIdx.x / 16), cg = threadIdx.x % 16;
    float zz[2][kTileUnits] = {};
    tile_2x6<kDecIn>([&](int i, int h) { return Z[(rg + h) * (kDecIn + 1) + i]; },
                     [&](int i, int j) { return Ws[(cg + 16 * j) * (kDecIn + 1) + i]; }, zz);
    for (int h = 0; h < 2; ++h) {
      const int q = r0 + rg + h;
      if (q >= rows) break;
#pragma unroll
      for (int j = 0; j < kTileUnits; ++j) {
        const int u = cg + 16 * j;
        const float pre = zz[h][j] + Ws[u * (kDecIn + 1) + kDecIn];
        pre_out[static_cast<size_t>(q) * D + u] = pre;
        y0[static_cast<size_t>(q) * D + u] = gelu(pre);
      }
    }
  }
  for (int o = threadIdx.x; o < kChunk * kDecIn; o += kThreads) {
    const int rr = o / kDecIn, i = o % kDecIn, q = r0 + rr;
    if (q < rows) z_out[static_cast<size_t>(q) * kDecIn + i] = Z[rr * (kDecIn + 1) + i];
  }
}

// The final LayerNorm, the head, the loss and their backward, a warp per focus row, 32 rows per
// thread block: dyD [rows, d]; `part` [kHeadPartial]: the block's sums of the gradients of the
// final LN's weight and bias, the head's weight and bias, and of the loss terms (times D).
__global__ void __launch_bounds__(kThreads)
    head_kernel(Batch a, const int64_t* step_p, bool residual_velocity, const float* __restrict__ yD,
                const float* __restrict__ nw, const float* __restrict__ nb, const float* __restrict__ hw,
                const float* __restrict__ hb, const float* __restrict__ counts, int count_parts, int rows,
                float* __restrict__ dyD, float* __restrict__ part, float* __restrict__ dscale) {
  __shared__ float Dn;
  __shared__ float red[kWarps][kHeadPartial];
  if (threadIdx.x == 0) {
    float c = 0.0f;
    for (int k = 0; k < count_parts; ++k) c += counts[k];
    Dn = fmaxf(1.0f, 2.0f * c);  // masked_velocity_mse's (2 present).clamp_min(1)
    if (blockIdx.x == 0) *dscale = Dn;
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t step = *step_p;
  float s_nw[kLaneCols] = {}, s_nb[kLaneCols] = {}, s_h0[kLaneCols] = {}, s_h1[kLaneCols] = {};
  float s_b0 = 0.0f, s_b1 = 0.0f, s_loss = 0.0f;
  for (int lr = warp; lr < kChunk; lr += kWarps) {
    const int q = blockIdx.x * kChunk + lr;
    if (q >= rows) break;
    float v[kLaneCols], xh[kLaneCols], yh[kLaneCols];
    for (int k = 0; k < kLaneCols; ++k) v[k] = yD[static_cast<size_t>(q) * D + lane + 32 * k];
    const RowStats s = row_stats(v);
    float o0 = 0.0f, o1 = 0.0f;
    for (int k = 0; k < kLaneCols; ++k) {
      const int c = lane + 32 * k;
      xh[k] = (v[k] - s.mean) * s.rstd;
      yh[k] = xh[k] * nw[c] + nb[c];
      o0 += hw[c] * yh[k], o1 += hw[D + c] * yh[k];
    }
    o0 = warp_sum(o0) + hb[0], o1 = warp_sum(o1) + hb[1];
    const int w = q / a.balls, i = q % a.balls;
    const int64_t window = batch_window(a, step, w);
    const float* cur = window_frame(a, window, 1) + 5 * i;
    const float* next = window_frame(a, window, 2) + 5 * i;
    float d0 = 0.0f, d1 = 0.0f;
    if (cur[4] > 0.0f) {  // present
      const float p0 = residual_velocity ? cur[2] + o0 * a.std[2] : o0 * a.std[2] + a.mean[2];
      const float p1 = residual_velocity ? cur[3] + o1 * a.std[3] : o1 * a.std[3] + a.mean[3];
      const float e0 = p0 - next[2], e1 = p1 - next[3];
      s_loss += e0 * e0 + e1 * e1;
      d0 = 2.0f * e0 * a.std[2] / Dn, d1 = 2.0f * e1 * a.std[3] / Dn;
    }
    s_b0 += d0, s_b1 += d1;
    float gk[kLaneCols], s1 = 0.0f, s2 = 0.0f;
    for (int k = 0; k < kLaneCols; ++k) {
      const int c = lane + 32 * k;
      s_h0[k] += d0 * yh[k], s_h1[k] += d1 * yh[k];
      const float dyh = hw[c] * d0 + hw[D + c] * d1;
      s_nw[k] += dyh * xh[k], s_nb[k] += dyh;
      gk[k] = dyh * nw[c];
      s1 += gk[k], s2 += gk[k] * xh[k];
    }
    s1 = warp_sum(s1) * (1.0f / D), s2 = warp_sum(s2) * (1.0f / D);
    for (int k = 0; k < kLaneCols; ++k)
      dyD[static_cast<size_t>(q) * D + lane + 32 * k] = s.rstd * (gk[k] - s1 - xh[k] * s2);
  }
  for (int k = 0; k < kLaneCols; ++k) {
    const int c = lane + 32 * k;
    red[warp][c] = s_nw[k], red[warp][D + c] = s_nb[k], red[warp][2 * D + c] = s_h0[k], red[warp][3 * D + c] = s_h1[k];
  }
  if (lane == 0) red[warp][4 * D] = s_b0, red[warp][4 * D + 1] = s_b1, red[warp][4 * D + 2] = s_loss;
  __syncthreads();
  for (int i = threadIdx.x; i < kHeadPartial; i += kThreads) {
    float s = 0.0f;
    for (int w = 0; w < kWarps; ++w) s += red[w][i];
    part[static_cast<size_t>(blockIdx.x) * kHeadPartial + i] = s;
  }
}

// dec_in's backward over chunks of 32 focus rows: dpre = dy0 GELU'(pre), dS = W_dec[:, :d]^T
// dpre [rows, d], and this thread block's sums of dpre z^T and dpre: `part` [kDecInW] (the
// weight [d, d + 10], then the bias). The weight gradient's register tile: units o = t / 16 +
// 16 a (a < 6) by inputs i = t % 16 + 16 b (b < 7; i = d + 10 is the bias's input 1).
constexpr int kDecInCols = 112;  // z, 1, zeros: 16 x 7
constexpr int64_t kDecInSmem = (int64_t{D} * (kDecIn + 1) + int64_t{kChunk} * kDecInCols + int64_t{kChunk} * (D + 1)) *
                               4;
__global__ void __launch_bounds__(kThreads)
    dec_in_backward_kernel(const float* __restrict__ W, const float* __restrict__ dy0, const float* __restrict__ pre,
                           const float* __restrict__ z, int rows, float* __restrict__ dS, float* __restrict__ part) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int LW = kDecIn + 1, LZ = kDecInCols, LP = D + 1;
  float* Ws = reinterpret_cast<float*>(smem);  // [d][107] (the weight only)
  float* Zs = Ws + D * LW;                     // [32][112]: z, 1 (the bias's input), zeros
  float* dP = Zs + kChunk * LZ;                // [32][d + 1]
  stage<D, kDecIn>(W, Ws, LW);
  const int og = threadIdx.x / 16, ig = threadIdx.x % 16, rg = 2 * og;
  constexpr int kB = kDecInCols / 16;
  float acc[kTileUnits][kB] = {};
  const int chunks = (rows + kChunk - 1) / kChunk;
  for (int ch = blockIdx.x; ch < chunks; ch += gridDim.x) {
    const int r0 = ch * kChunk;
#pragma unroll
    for (int t = 0; t < kChunk * D / kThreads; ++t) {
      const int o = threadIdx.x + t * kThreads, rr = o / D, u = o % D, q = r0 + rr;
      dP[rr * LP + u] = q < rows ? dy0[static_cast<size_t>(q) * D + u] * gelu_grad(pre[static_cast<size_t>(q) * D + u])
                                 : 0.0f;
    }
#pragma unroll
    for (int t = 0; t < kChunk * LZ / kThreads; ++t) {
      const int o = threadIdx.x + t * kThreads, rr = o / LZ, i = o % LZ, q = r0 + rr;
      Zs[o] = q < rows && i <= kDecIn ? (i < kDecIn ? z[static_cast<size_t>(q) * kDecIn + i] : 1.0f) : 0.0f;
    }
    __syncthreads();
    {  // dS for rows rg, rg + 1, units ig + 16 j
      float ds[2][kTileUnits] = {};
      tile_2x6<D>([&](int k, int h) { return dP[(rg + h) * LP + k]; },
                  [&](int k, int j) { return Ws[k * LW + ig + 16 * j]; }, ds);
      for (int h = 0; h < 2; ++h) {
        const int q = r0 + rg + h;
        if (q >= rows) break;
#pragma unroll
        for (int j = 0; j < kTileUnits; ++j) dS[static_cast<size_t>(q) * D + ig + 16 * j] = ds[h][j];
      }
    }
    for (int rr = 0; rr < kChunk; ++rr) {  // the weight gradient's tile
      float pv[kTileUnits], zv[kB];
#pragma unroll
      for (int a2 = 0; a2 < kTileUnits; ++a2) pv[a2] = dP[rr * LP + og + 16 * a2];
#pragma unroll
      for (int b2 = 0; b2 < kB; ++b2) zv[b2] = Zs[rr * LZ + ig + 16 * b2];
#pragma unroll
      for (int a2 = 0; a2 < kTileUnits; ++a2)
#pragma unroll
        for (int b2 = 0; b2 < kB; ++b2) acc[a2][b2] = fmaf(pv[a2], zv[b2], acc[a2][b2]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int a2 = 0; a2 < kTileUnits; ++a2)
#pragma unroll
    for (int b2 = 0; b2 < kB; ++b2) {
      const int o = og + 16 * a2, i = ig + 16 * b2;
      if (i <= kDecIn)
        part[static_cast<size_t>(blockIdx.x) * kDecInW + (i < kDecIn ? o * kDecIn + i : D * kDecIn + o)] = acc[a2][b2];
    }
}

// enc_in's backward over chunks of 32 encoder rows: dpre = dx0 GELU'(pre) (pre recomputed from
// the cached features, as enc_in_kernel computes it), and this thread block's sums of dpre
// [F, C]^T and dpre: `part` [kEncInW]. Weight-gradient tile: units t / 16 + 16 a by inputs
// t % 16 + 16 b (b < 2; input 20 is the bias's 1).
__global__ void __launch_bounds__(kThreads)
    enc_in_backward_kernel(const float* __restrict__ W, const float* __restrict__ b, const float* __restrict__ feat,
                           int rows, GradIn g, float* __restrict__ part) {
  constexpr int LI = 32;  // features, 1, zeros
  __shared__ float Ws[kInFeat][D];
  __shared__ float In[kChunk][LI];
  __shared__ float dP[kChunk][D + 1];
  for (int i = threadIdx.x; i < D * kInFeat; i += kThreads) Ws[i % kInFeat][i / kInFeat] = W[i];
  const int og = threadIdx.x / 16, ig = threadIdx.x % 16, rg = 2 * og;
  float acc[kTileUnits][2] = {};
  const int chunks = (rows + kChunk - 1) / kChunk;
  for (int ch = blockIdx.x; ch < chunks; ch += gridDim.x) {
    const int r0 = ch * kChunk;
#pragma unroll
    for (int t = 0; t < kChunk * LI / kThreads; ++t) {
      const int o = threadIdx.x + t * kThreads, rr = o / LI, i = o % LI, r = r0 + rr;
      In[rr][i] = r < rows && i <= kInFeat ? (i < kInFeat ? feat[static_cast<size_t>(r) * kInFeat + i] : 1.0f) : 0.0f;
    }
    __syncthreads();
    {                               // dP for rows rg, rg + 1, units ig + 16 j
      float z[2][kTileUnits] = {};  // as enc_in_kernel
      tile_2x6<kInFeat>([&](int i, int h) { return In[rg + h][i]; }, [&](int i, int j) { return Ws[i][ig + 16 * j]; },
                        z);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = r0 + rg + h;
#pragma unroll
        for (int j = 0; j < kTileUnits; ++j) {
          const int u = ig + 16 * j;
          dP[rg + h][u] = r < rows ? grad_at(g, r, u) * gelu_grad(z[h][j] + b[u]) : 0.0f;
        }
      }
    }
    __syncthreads();
    for (int rr = 0; rr < kChunk; ++rr) {
      float pv[kTileUnits];
#pragma unroll
      for (int a2 = 0; a2 < kTileUnits; ++a2) pv[a2] = dP[rr][og + 16 * a2];
      const float in0 = In[rr][ig], in1 = In[rr][ig + 16];
#pragma unroll
      for (int a2 = 0; a2 < kTileUnits; ++a2)
        acc[a2][0] = fmaf(pv[a2], in0, acc[a2][0]), acc[a2][1] = fmaf(pv[a2], in1, acc[a2][1]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int a2 = 0; a2 < kTileUnits; ++a2)
    for (int b2 = 0; b2 < 2; ++b2) {
      const int o = og + 16 * a2, i = ig + 16 * b2;
      if (i <= kInFeat)
        part[static_cast<size_t>(blockIdx.x) * kEncInW + (i < kInFeat ? o * kInFeat + i : D * kInFeat + o)] =
            acc[a2][b2];
    }
}

// One gradient as the sum of its partials: dst[e] = sum over p of src[p stride + e], in a fixed
// order (reduce_kernel).
struct Segment {
  float* dst;
  const float* src;
  int n, parts, stride;
};
constexpr int kFixedSegments = 8;  // enc_in, dec_in, final_norm, head: weight and bias each
constexpr int kMaxSegments = kFixedSegments + 6 * 2 * kModernMaxBlocks;
constexpr int kMaxSegmentLength = kWFloats;

// A thread block takes 256 consecutive entries of a segment: thread (column c of 64, group k of
// 4) sums, for entries 4 c .. 4 c + 3, the partials k, k + 4, ... in order (16-byte loads), and
// the four groups' sums are added in group order.
constexpr int kReduceEntries = 256;
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(const Segment* __restrict__ segments, const float* __restrict__ head_part, int head_parts,
                  const float* __restrict__ dscale, float* __restrict__ loss) {
  __shared__ float4 part_sums[4][kThreads / 4];
  const Segment s = segments[blockIdx.y];  // segments: the launch's first
  const int c = threadIdx.x % (kThreads / 4), k = threadIdx.x / (kThreads / 4);
  const int e = blockIdx.x * kReduceEntries + 4 * c;
  if (blockIdx.x * kReduceEntries >= s.n) return;
  float4 t = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const bool whole = e + 3 < s.n && s.stride % 4 == 0 && reinterpret_cast<uintptr_t>(s.src) % 16 == 0;
  if (whole) {
#pragma unroll 4
    for (int p = k; p < s.parts; p += 4) {
      const float4 v = *reinterpret_cast<const float4*>(s.src + static_cast<size_t>(p) * s.stride + e);
      t.x += v.x, t.y += v.y, t.z += v.z, t.w += v.w;
    }
  } else {
    float u[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int p = k; p < s.parts; p += 4)
      for (int q = 0; q < 4; ++q)
        if (e + q < s.n) u[q] += s.src[static_cast<size_t>(p) * s.stride + e + q];
    t = make_float4(u[0], u[1], u[2], u[3]);
  }
  part_sums[k][c] = t;
  __syncthreads();
  if (k == 0) {
    float4 r = part_sums[0][c];
    for (int g = 1; g < 4; ++g) {
      const float4 v = part_sums[g][c];
      r.x += v.x, r.y += v.y, r.z += v.z, r.w += v.w;
    }
    const float out[4] = {r.x, r.y, r.z, r.w};
    for (int q = 0; q < 4; ++q)
      if (e + q < s.n) s.dst[e + q] = out[q];
  }
  if (loss && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) {
    float t0 = 0.0f;
    for (int p = 0; p < head_parts; ++p) t0 += head_part[static_cast<size_t>(p) * kHeadPartial + kHeadPartial - 1];
    loss[0] = t0 / *dscale;
    loss[1] = *dscale;
  }
}

// ---- the plan: grids and the workspace's buffers -------------------------------------------

struct Plan {
  int P = 0, Re = 0, Rd = 0, E = 0, Dd = 0;
  int grid_e = 0, grid_d = 0;                                // persistent residual-block kernels
  int ranges_e = 0, chunk_e = 0, ranges_d = 0, chunk_d = 0;  // weight gradients
  int grid_enc_in = 0, grid_enc_in_bwd = 0, grid_dec_in = 0, grid_dec_in_bwd = 0, grid_head = 0;
  int segments = 0;
  // byte offsets into the workspace
  int64_t seg = 0, x = 0, y = 0, mask = 0, feat = 0, z = 0, pre = 0, counts = 0, dscale = 0, dx = 0, dy = 0, dS = 0;
  int64_t Yb = 0, Gb = 0, DHb = 0, Db = 0, cols_e = 0, cols_d = 0, w_e = 0, w_d = 0, enc_in_part = 0;
  int64_t dec_in_part = 0, head_part = 0, bytes = 0;
};

Plan make_plan(const ModernShape& s) {
  Plan p;
  p.P = s.balls - 1;
  p.Rd = s.batch * s.balls;
  p.Re = p.Rd * p.P;
  p.E = s.enc_blocks, p.Dd = s.dec_blocks;
  const int sms = std::max(1, s.sms);
  auto tiles = [](int rows) { return (rows + TM - 1) / TM; };
  p.grid_e = std::max(1, std::min(tiles(p.Re), sms));
  p.grid_d = std::max(1, std::min(tiles(p.Rd), sms));
  auto ranges = [&](int rows, int* count, int* chunk) {  // about half a range per multiprocessor and matrix
    const int want = std::max(1, sms / 2);
    *chunk = std::max(kRangeRows, ((rows + want - 1) / want + kRangeRows - 1) / kRangeRows * kRangeRows);
    *count = std::max(1, (rows + *chunk - 1) / *chunk);
  };
  ranges(p.Re, &p.ranges_e, &p.chunk_e);
  ranges(p.Rd, &p.ranges_d, &p.chunk_d);
  auto chunks = [](int rows) { return std::max(1, (rows + kChunk - 1) / kChunk); };
  p.grid_enc_in = chunks(p.Re);
  p.grid_enc_in_bwd = std::min(chunks(p.Re), 2 * sms);
  p.grid_dec_in = chunks(p.Rd);
  p.grid_dec_in_bwd = std::min(chunks(p.Rd), sms);
  p.grid_head = chunks(p.Rd);
  p.segments = kFixedSegments + 6 * (p.E + p.Dd);
  int64_t at = 0;
  auto take = [&](int64_t bytes) {
    const int64_t o = at;
    at += (bytes + 255) / 256 * 256;
    return o;
  };
  const int64_t Re = p.Re, Rd = p.Rd, Rm = std::max(p.Re, p.Rd);
  p.seg = take(int64_t{kMaxSegments} * sizeof(Segment));
  p.x = take((p.E + 1) * Re * D * 4);
  p.y = take((p.Dd + 1) * Rd * D * 4);
  p.mask = take(Re * 4);
  p.feat = take(Re * kInFeat * 4);
  p.z = take(Rd * kDecIn * 4);
  p.pre = take(Rd * D * 4);
  p.counts = take(int64_t{p.grid_dec_in} * 4);
  p.dscale = take(4);
  p.dx = take(2 * Re * D * 4);
  p.dy = take(2 * Rd * D * 4);
  p.dS = take(Rd * D * 4);
  p.Yb = take(Rm * D * 2);
  p.Gb = take(Rm * H * 2);
  p.DHb = take(Rm * H * 2);
  p.Db = take(Rm * D * 2);
  p.cols_e = take(int64_t{p.E} * p.grid_e * kColSums * 4);
  p.cols_d = take(int64_t{p.Dd} * p.grid_d * kColSums * 4);
  p.w_e = take(int64_t{p.E} * 2 * p.ranges_e * kWFloats * 4);
  p.w_d = take(int64_t{p.Dd} * 2 * p.ranges_d * kWFloats * 4);
  p.enc_in_part = take(int64_t{p.grid_enc_in_bwd} * kEncInW * 4);
  p.dec_in_part = take(int64_t{p.grid_dec_in_bwd} * kDecInW * 4);
  p.head_part = take(int64_t{p.grid_head} * kHeadPartial * 4);
  p.bytes = at;
  return p;
}

template <typename T>
T* at(void* base, int64_t offset) {
  return reinterpret_cast<T*>(static_cast<unsigned char*>(base) + offset);
}

}  // namespace

const char* modern_unsupported(const ModernShape& s) {
  if (s.balls < 2) return "fewer than 2 balls (no pairs)";
  if (s.batch < 1) return "an empty batch";
  if (s.enc_blocks < 0 || s.enc_blocks > kModernMaxBlocks || s.dec_blocks < 0 || s.dec_blocks > kModernMaxBlocks)
    return "more than 16 encoder or decoder blocks";
  if (static_cast<int64_t>(s.batch) * s.balls * (s.balls - 1) * H > (int64_t{1} << 31) - 1)
    return "a batch too large for 32-bit row indices";
  if (s.smem_bytes < std::max(kFwdSmem, kBwdSmem))
    return "the device's shared memory per block is below the residual blocks' 183 KB";
  return nullptr;
}

int64_t modern_workspace_bytes(const ModernShape& shape) { return make_plan(shape).bytes; }

void modern_prepare(const ModernShape& shape, const ModernModel& m, void* work) {
  const Plan p = make_plan(shape);
  cuda_check(cudaFuncSetAttribute(block_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(kFwdSmem)),
             "modern fused step: block forward shared memory");
  cuda_check(cudaFuncSetAttribute(block_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(kBwdSmem)),
             "modern fused step: block backward shared memory");
  cuda_check(
      cudaFuncSetAttribute(dec_in_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kDecInFwdSmem)),
      "modern fused step: dec_in shared memory");
  cuda_check(cudaFuncSetAttribute(dec_in_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(kDecInSmem)),
             "modern fused step: dec_in backward shared memory");
  std::vector<Segment> seg;
  auto add = [&](float* dst, const float* src, int n, int parts, int stride) {
    seg.push_back({dst, src, n, parts, stride});
  };
  const float* enc_in = at<float>(work, p.enc_in_part);
  add(m.g_enc_in_w, enc_in, D * kInFeat, p.grid_enc_in_bwd, kEncInW);
  add(m.g_enc_in_b, enc_in + D * kInFeat, D, p.grid_enc_in_bwd, kEncInW);
  const float* dec_in = at<float>(work, p.dec_in_part);
  add(m.g_dec_in_w, dec_in, D * kDecIn, p.grid_dec_in_bwd, kDecInW);
  add(m.g_dec_in_b, dec_in + D * kDecIn, D, p.grid_dec_in_bwd, kDecInW);
  const float* head = at<float>(work, p.head_part);
  add(m.g_norm_w, head, D, p.grid_head, kHeadPartial);
  add(m.g_norm_b, head + D, D, p.grid_head, kHeadPartial);
  add(m.g_head_w, head + 2 * D, 2 * D, p.grid_head, kHeadPartial);
  add(m.g_head_b, head + 4 * D, 2, p.grid_head, kHeadPartial);
  auto blocks = [&](const ModernBlock* b, int count, const float* cols, int col_parts, const float* w, int ranges) {
    for (int k = 0; k < count; ++k) {
      const float* c = cols + static_cast<size_t>(k) * col_parts * kColSums;
      add(b[k].g_ln_w, c, D, col_parts, kColSums);
      add(b[k].g_ln_b, c + D, D, col_parts, kColSums);
      add(b[k].g_b1, c + 2 * D, H, col_parts, kColSums);
      add(b[k].g_b2, c + 2 * D + H, D, col_parts, kColSums);
      const float* wk = w + static_cast<size_t>(k) * 2 * ranges * kWFloats;
      add(b[k].g_w2, wk, kWFloats, ranges, kWFloats);
      add(b[k].g_w1, wk + static_cast<size_t>(ranges) * kWFloats, kWFloats, ranges, kWFloats);
    }
  };
  blocks(m.enc, shape.enc_blocks, at<float>(work, p.cols_e), p.grid_e, at<float>(work, p.w_e), p.ranges_e);
  blocks(m.dec, shape.dec_blocks, at<float>(work, p.cols_d), p.grid_d, at<float>(work, p.w_d), p.ranges_d);
  if (static_cast<int>(seg.size()) != p.segments) throw std::logic_error("modern fused step: segment count");
  cuda_check(cudaMemcpy(at<Segment>(work, p.seg), seg.data(), seg.size() * sizeof(Segment), cudaMemcpyHostToDevice),
             "modern fused step: copying the reduction's table");
}

void launch_modern_loss_grad(const Batch& a, const int64_t* step, const ModernShape& shape, const ModernModel& m,
                             void* work, float* loss, void* stream_ptr) {
  const Plan p = make_plan(shape);
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t eD = int64_t{p.Re} * D, dD = int64_t{p.Rd} * D;
  float* x = at<float>(work, p.x);
  float* y = at<float>(work, p.y);
  float* mask = at<float>(work, p.mask);
  float* counts = at<float>(work, p.counts);
  float* dscale = at<float>(work, p.dscale);
  float* dx = at<float>(work, p.dx);
  float* dy = at<float>(work, p.dy);
  float* dS = at<float>(work, p.dS);
  bf16 *Yb = at<bf16>(work, p.Yb), *Gb = at<bf16>(work, p.Gb), *DHb = at<bf16>(work, p.DHb), *Db = at<bf16>(work, p.Db);

  float* feat = at<float>(work, p.feat);
  const Segment* segments = at<Segment>(work, p.seg);
  // the reduction of segments [first, first + count) (the segment table: modern_prepare)
  auto reduce = [&](int first, int count, float* loss_out) {
    reduce_kernel<<<dim3((kMaxSegmentLength + kReduceEntries - 1) / kReduceEntries, count), kThreads, 0, stream>>>(
        segments + first, at<float>(work, p.head_part), p.grid_head, dscale, loss_out);
  };
  enc_in_kernel<<<p.grid_enc_in, kThreads, 0, stream>>>(a, step, m.enc_in_w, m.enc_in_b, p.Re, x, mask, feat);
  for (int k = 0; k < p.E; ++k)
    block_forward_kernel<<<p.grid_e, kThreads, kFwdSmem, stream>>>(x + k * eD, x + (k + 1) * eD, p.Re,
                                                                   block_w(m.enc[k]));
  dec_in_kernel<<<p.grid_dec_in, kThreads, kDecInFwdSmem, stream>>>(a, step, m.dec_in_w, m.dec_in_b, x + p.E * eD, mask,
                                                                    p.Rd, at<float>(work, p.z), at<float>(work, p.pre),
                                                                    y, counts);
  for (int k = 0; k < p.Dd; ++k)
    block_forward_kernel<<<p.grid_d, kThreads, kFwdSmem, stream>>>(y + k * dD, y + (k + 1) * dD, p.Rd,
                                                                   block_w(m.dec[k]));
  head_kernel<<<p.grid_head, kThreads, 0, stream>>>(a, step, m.residual_velocity, y + p.Dd * dD, m.norm_w, m.norm_b,
                                                    m.head_w, m.head_b, counts, p.grid_dec_in, p.Rd, dy,
                                                    at<float>(work, p.head_part), dscale);
  // decoder blocks, last first; the gradient alternates between the two halves of dy
  int cur = 0;
  for (int k = p.Dd - 1; k >= 0; --k) {
    GradIn g;
    g.dout = dy + cur * dD;
    block_backward_kernel<<<p.grid_d, kThreads, kBwdSmem, stream>>>(
        y + k * dD, g, dy + (1 - cur) * dD, p.Rd, block_w(m.dec[k]), Yb, Gb, DHb, Db,
        at<float>(work, p.cols_d) + static_cast<size_t>(k) * p.grid_d * kColSums);
    weight_grad_kernel<<<dim3(p.ranges_d, 2), kThreads, 0, stream>>>(
        Db, Gb, DHb, Yb, p.Rd, p.chunk_d, at<float>(work, p.w_d) + static_cast<size_t>(k) * 2 * p.ranges_d * kWFloats);
    reduce(kFixedSegments + 6 * (p.E + k), 6, nullptr);  // while the block's partial sums are in L2
    cur = 1 - cur;
  }
  dec_in_backward_kernel<<<p.grid_dec_in_bwd, kThreads, kDecInSmem, stream>>>(
      m.dec_in_w, dy + cur * dD, at<float>(work, p.pre), at<float>(work, p.z), p.Rd, dS,
      at<float>(work, p.dec_in_part));
  // encoder blocks, last first: the last one's output gradient is dS broadcast to the pairs, masked
  GradIn g;
  g.dsum = dS, g.mask = mask, g.pairs = p.P;
  cur = 0;
  for (int k = p.E - 1; k >= 0; --k) {
    block_backward_kernel<<<p.grid_e, kThreads, kBwdSmem, stream>>>(
        x + k * eD, g, dx + cur * eD, p.Re, block_w(m.enc[k]), Yb, Gb, DHb, Db,
        at<float>(work, p.cols_e) + static_cast<size_t>(k) * p.grid_e * kColSums);
    weight_grad_kernel<<<dim3(p.ranges_e, 2), kThreads, 0, stream>>>(
        Db, Gb, DHb, Yb, p.Re, p.chunk_e, at<float>(work, p.w_e) + static_cast<size_t>(k) * 2 * p.ranges_e * kWFloats);
    reduce(kFixedSegments + 6 * k, 6, nullptr);
    g = GradIn{};
    g.dout = dx + cur * eD;
    cur = 1 - cur;
  }
  enc_in_backward_kernel<<<p.grid_enc_in_bwd, kThreads, 0, stream>>>(m.enc_in_w, m.enc_in_b, feat, p.Re, g,
                                                                     at<float>(work, p.enc_in_part));
  reduce(0, kFixedSegments, loss);  // the input layers, the final LayerNorm and head; the loss
  cuda_check(cudaGetLastError(), "modern fused step: launching the step's kernels");
}

}  // namespace npe::model::fused
