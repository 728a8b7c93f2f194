// The CPU reference of the classic NPE's hand-written training step (classic_fused.h): the same
// per-item functions as the CUDA kernels (classic_fused.cu), in loops, summed in their order.
#include "classic_fused.h"

#include <algorithm>
#include <vector>

namespace npe::model::fused {
namespace {

// One layer's weight and bias in the flat parameters.
const float* W(const float* params, int l) { return params + weight_offset(l); }
const float* Bias(const float* params, int l) { return params + bias_offset(l); }

// Adds dz (rows of `dz_stride`, at `dz_at`) x input (rows of `in_stride`, at `in_at`) over the
// rows, in row order, to the block's gradient of layer l: dW[o, i] = sum_r dz[r, o] x[r, i],
// db[o] = sum_r dz[r, o].
void layer_grad(int l, const std::vector<float>& rows, int count, int stride, int dz_at, int in_at, float* out) {
  const int n_out = layer_out(l), n_in = layer_in(l);
  for (int o = 0; o < n_out; ++o) {
    for (int i = 0; i < n_in; ++i) {
      float acc = 0.0f;
      for (int r = 0; r < count; ++r) acc = fmaf(rows[r * stride + dz_at + o], rows[r * stride + in_at + i], acc);
      out[weight_offset(l) + o * n_in + i] = acc;
    }
    float acc = 0.0f;
    for (int r = 0; r < count; ++r) acc += rows[r * stride + dz_at + o];
    out[bias_offset(l) + o] = acc;
  }
}

// The block of windows [w0, w0 + nw) of the batch: its gradient sum into `out` [kParams], its
// loss sum and present-ball count into out[kParams], out[kParams + 1].
void block_loss_grad(const Batch& a, int64_t step, int w0, int nw, const float* P, float* out) {
  const int N = a.balls;
  std::vector<const float*> prev(nw), cur(nw), next(nw);
  for (int k = 0; k < nw; ++k) {
    const int64_t w = batch_window(a, step, w0 + k);
    prev[k] = window_frame(a, w, 0), cur[k] = window_frame(a, w, 1), next[k] = window_frame(a, w, 2);
  }
  const int cap_f = nw * N, cap_p = nw * N * (N - 1);
  std::vector<int> fw(cap_f), fb(cap_f), pbegin(cap_f + 1), pf(std::max(cap_p, 1)), pj(std::max(cap_p, 1));
  const BlockRows br = build_rows(cur.data(), nw, N, a.r2, fw.data(), fb.data(), pbegin.data(), pf.data(), pj.data());
  const int nf = br.focus_count, np = br.pair_count;
  std::vector<float> foc(static_cast<size_t>(std::max(nf, 1)) * kFocFloats, 0.0f);
  std::vector<float> pair(static_cast<size_t>(std::max(np, 1)) * kPairFloats, 0.0f);
  auto foc_row = [&](int r) { return &foc[r * kFocFloats]; };
  auto Pr = [&](int r) { return &pair[r * kPairFloats]; };
  auto state = [&](const std::vector<const float*>& frame, int r, int ball) { return frame[fw[r]] + 5 * ball; };

  // forward: features and the input layers
  for (int r = 0; r < nf; ++r)
    focus_features(state(prev, r, fb[r]), state(cur, r, fb[r]), a.mean, a.std, foc_row(r) + kFocF);
  for (int r = 0; r < np; ++r) {
    const int f = pf[r];
    context_features(state(prev, f, fb[f]), state(cur, f, fb[f]), state(prev, f, pj[r]), state(cur, f, pj[r]), a.mean,
                     a.std, Pr(r) + kPairC);
  }
  for (int r = 0; r < nf; ++r)
    for (int u = 0; u < kIn; ++u)
      foc_row(r)[kFocf + u] = relu(dense_unit<kFeat>(W(P, kFocusIn), Bias(P, kFocusIn), foc_row(r) + kFocF, u));
  for (int r = 0; r < np; ++r) {
    for (int u = 0; u < kIn; ++u) {
      Pr(r)[kPairH0 + u] = relu(dense_unit<kFeat>(W(P, kFocusIn), Bias(P, kFocusIn), foc_row(pf[r]) + kFocF, u));
      Pr(r)[kPairH0 + kIn + u] = relu(dense_unit<kFeat>(W(P, kContextIn), Bias(P, kContextIn), Pr(r) + kPairC, u));
    }
  }
  // encoder
  for (int l = 0; l < kEncLayers; ++l)
    for (int r = 0; r < np; ++r)
      for (int o = 0; o < kHidden; ++o)
        Pr(r)[kPairH1 + l * kHidden + o] = relu(
            dense_unit<kHidden>(W(P, kEnc0 + l), Bias(P, kEnc0 + l), Pr(r) + kPairH0 + l * kHidden, o));
  // sum over the neighbourhood, decoder
  constexpr int kH5 = kPairH1 + (kEncLayers - 1) * kHidden;
  for (int r = 0; r < nf; ++r) {
    for (int u = 0; u < kHidden; ++u) {
      float s = 0.0f;
      for (int q = pbegin[r]; q < pbegin[r + 1]; ++q) s += Pr(q)[kH5 + u];
      foc_row(r)[kFocD0 + u] = s;
    }
    for (int k = 0; k < kFeat; ++k) foc_row(r)[kFocD0 + kHidden + k] = foc_row(r)[kFocF + k];
  }
  for (int r = 0; r < nf; ++r)
    for (int o = 0; o < kHidden; ++o)
      foc_row(r)[kFocD1 + o] = relu(dense_unit<kHidden + kFeat>(W(P, kDec0), Bias(P, kDec0), foc_row(r) + kFocD0, o));
  for (int l = 1; l < kDecLayers - 1; ++l)
    for (int r = 0; r < nf; ++r)
      for (int o = 0; o < kHidden; ++o)
        foc_row(r)[kFocD1 + l * kHidden + o] = relu(
            dense_unit<kHidden>(W(P, kDec0 + l), Bias(P, kDec0 + l), foc_row(r) + kFocD1 + (l - 1) * kHidden, o));
  constexpr int kD4 = kFocD1 + (kDecLayers - 2) * kHidden;
  for (int r = 0; r < nf; ++r)
    for (int o = 0; o < kOut; ++o)
      foc_row(r)[kFocOut + o] = dense_unit<kHidden>(W(P, kLayers - 1), Bias(P, kLayers - 1), foc_row(r) + kD4, o);
  // loss and its gradient with respect to the head's output (times D)
  float loss = 0.0f;
  for (int r = 0; r < nf; ++r) {
    loss += velocity_loss(state(cur, r, fb[r]), state(next, r, fb[r]), foc_row(r) + kFocOut, a.dv_std,
                          foc_row(r) + kFocGA);
  }
  out[kParams] = loss;
  out[kParams + 1] = static_cast<float>(nf);

  // backward: decoder (head, 3 hidden layers, the first layer), gradients alternating GA, GB
  const int dec_in[kDecLayers] = {kFocD0, kFocD1, kFocD1 + kHidden, kFocD1 + 2 * kHidden, kD4};
  int dz = kFocGA, dx = kFocGB;
  for (int l = kDecLayers - 1; l >= 0; --l) {
    const int layer = kDec0 + l;
    layer_grad(layer, foc, nf, kFocFloats, dz, dec_in[l], out);
    for (int r = 0; r < nf; ++r) {
      for (int i = 0; i < kHidden; ++i) {
        const float* w = W(P, layer);
        float g;
        if (l == kDecLayers - 1)
          g = relu_grad(dense_input_grad<kOut, kHidden>(w, foc_row(r) + dz, i), foc_row(r)[dec_in[l] + i]);
        else if (l > 0)
          g = relu_grad(dense_input_grad<kHidden, kHidden>(w, foc_row(r) + dz, i), foc_row(r)[dec_in[l] + i]);
        else
          g = dense_input_grad<kHidden, kHidden + kFeat>(w, foc_row(r) + dz, i);  // dS: the sum is linear
        foc_row(r)[dx + i] = g;
      }
    }
    std::swap(dz, dx);
  }
  // now foc_row(r) + dz holds dS of focus row r; encoder: from its last layer to the first
  for (int q = 0; q < np; ++q)
    for (int u = 0; u < kHidden; ++u) Pr(q)[kPairGA + u] = relu_grad(foc_row(pf[q])[dz + u], Pr(q)[kH5 + u]);
  int pdz = kPairGA, pdx = kPairGB;
  for (int l = kEncLayers - 1; l >= 0; --l) {
    const int layer = kEnc0 + l, in = kPairH0 + l * kHidden;
    layer_grad(layer, pair, np, kPairFloats, pdz, in, out);
    for (int q = 0; q < np; ++q) {
      if (l > 0) {
        for (int i = 0; i < kHidden; ++i)
          Pr(q)[pdx + i] = relu_grad(dense_input_grad<kHidden, kHidden>(W(P, layer), Pr(q) + pdz, i), Pr(q)[in + i]);
      } else {  // the context half of h0
        for (int i = 0; i < kIn; ++i)
          Pr(q)[pdx + i] = relu_grad(dense_input_grad<kHidden, kHidden>(W(P, layer), Pr(q) + pdz, kIn + i),
                                     Pr(q)[in + kIn + i]);
      }
    }
    if (l > 0) std::swap(pdz, pdx);
  }
  // pdz: encoder layer 1's output gradient; pdx: the context input layer's output gradient
  for (int r = 0; r < nf; ++r)
    for (int o = 0; o < kHidden; ++o) {
      float s = 0.0f;
      for (int q = pbegin[r]; q < pbegin[r + 1]; ++q) s += Pr(q)[pdz + o];
      foc_row(r)[kFocDZ + o] = s;
    }
  for (int r = 0; r < nf; ++r)
    for (int u = 0; u < kIn; ++u)
      foc_row(r)[kFocDf + u] = relu_grad(dense_input_grad<kHidden, kHidden>(W(P, kEnc0), foc_row(r) + kFocDZ, u),
                                         foc_row(r)[kFocf + u]);
  layer_grad(kContextIn, pair, np, kPairFloats, pdx, kPairC, out);
  layer_grad(kFocusIn, foc, nf, kFocFloats, kFocDf, kFocF, out);
}

}  // namespace

float classic_loss_grad_cpu(const Batch& a, int64_t step, int wpb, const float* params, float* grad) {
  const int blocks = (a.batch + wpb - 1) / wpb;
  std::vector<float> partial(static_cast<size_t>(blocks) * (kParams + 2));
  for (int b = 0; b < blocks; ++b)
    block_loss_grad(a, step, b * wpb, std::min(wpb, a.batch - b * wpb), params,
                    &partial[static_cast<size_t>(b) * (kParams + 2)]);
  // the reduction: in block order, then / D
  float count = 0.0f, loss = 0.0f;
  for (int b = 0; b < blocks; ++b) count += partial[static_cast<size_t>(b) * (kParams + 2) + kParams + 1];
  const float D = std::max(1.0f, 2.0f * count);
  for (int p = 0; p < kParams + 1; ++p) {
    float s = 0.0f;
    for (int b = 0; b < blocks; ++b) s += partial[static_cast<size_t>(b) * (kParams + 2) + p];
    if (p < kParams)
      grad[p] = s / D;
    else
      loss = s / D;
  }
  return loss;
}

}  // namespace npe::model::fused
