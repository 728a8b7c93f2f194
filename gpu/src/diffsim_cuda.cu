// The differentiable simulator on CUDA: one thread per scene runs the per-scene forward and
// adjoint sweeps of adjoint.h, the scene's state and adjoint in registers (or local memory), the
// checkpoints and the backward pass's recomputed segment in global memory, coalesced across
// scenes. No atomics: each thread writes only its own scene's gradients.
#include <cuda_runtime.h>

#include <string>

#include "diffsim_internal.h"
#include "engine_internal.h"
#include "npe/datagen/io.h"
#include "npe/gpu/diffsim.h"

namespace npe::gpu {
namespace {

using namespace detail;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

constexpr int kThreads = 128;

template <int N, class T>
__global__ void __launch_bounds__(kThreads) diff_forward_kernel(DiffArrays<T> a, StepParams<T> p) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= a.S) return;
  T x[N], y[N], vx[N], vy[N], r[N], m[N], im[N], ux[N], uy[N], fx[N], fy[N];
  const SceneLocal<T> l{x, y, vx, vy, r, m, im, ux, uy, fx, fy};
  diff_scene_forward(FixedCount<N>{}, a, p, s, l);
}

// Minimum resident blocks per SM asked of the compiler for the backward kernel, which caps its
// registers at 65536 / (128 threads x blocks). Uncapped, the 4-ball float32 kernel takes 157 to
// 168 registers, 3 blocks fit (occupancy 18.75%) and Nsight Compute finds it latency bound (SM
// 17%, DRAM 10% of peak, 14 cycles per issued instruction). On an H200, 2^17 four-ball scenes,
// K = 64 (scripts/device_tune_backward.sh): forward + backward 19.6 G body-steps/s uncapped,
// 24.4 G at 4 blocks (128 registers, 64 B spilled), 21.8 G at 6, 26.7 G at 8 (float32); float64
// 12.0, 13.0, 8.1, 8.0 G. 4 improves both precisions. -DNPE_DIFF_BACKWARD_MIN_BLOCKS=... to tune.
#ifndef NPE_DIFF_BACKWARD_MIN_BLOCKS
#define NPE_DIFF_BACKWARD_MIN_BLOCKS 4
#endif

template <int N, class T>
__global__ void __launch_bounds__(kThreads, NPE_DIFF_BACKWARD_MIN_BLOCKS) diff_backward_kernel(DiffArrays<T> a, StepParams<T> p) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= a.S) return;
  T x[N], y[N], vx[N], vy[N], r[N], m[N], im[N], ux[N], uy[N], fx[N], fy[N];
  T ax[N], ay[N], avx[N], avy[N], rb[N], mb[N], ubx[N], uby[N], gx[N], gy[N];
  const SceneLocal<T> l{x, y, vx, vy, r, m, im, ux, uy, fx, fy};
  const SceneAdjoint<T> j{ax, ay, avx, avy, rb, mb, ubx, uby, gx, gy};
  diff_scene_backward(FixedCount<N>{}, a, p, s, l, j);
}

// Obstacles in device memory for the duration of one call.
template <class T>
struct DeviceObstacles {
  ObstacleK<T>* p = nullptr;
  DeviceObstacles(const WorldSpec& spec, cudaStream_t st) {
    const auto h = kernel_obstacles<T>(spec);
    if (h.empty()) return;
    check(cudaMalloc(&p, h.size() * sizeof(ObstacleK<T>)), "cudaMalloc (obstacles)");
    check(cudaMemcpyAsync(p, h.data(), h.size() * sizeof(ObstacleK<T>), cudaMemcpyHostToDevice, st), "obstacles");
    check(cudaStreamSynchronize(st), "obstacles (synchronize)");
  }
  ~DeviceObstacles() {
    if (p) cudaFree(p);
  }
};

template <class T, bool kBackward>
void launch(const WorldSpec& spec, const DiffArrays<T>& a, cudaStream_t st) {
  std::string why;
  if (!cuda_available(&why)) throw Error("differentiable simulator on CUDA: " + why);
  const DeviceObstacles<T> obs(spec, st);
  const StepParams<T> p = step_params<T>(spec, obs.p);
  const int blocks = static_cast<int>((a.S + kThreads - 1) / kThreads);
  switch (spec.num_balls) {
#define NPE_CASE(K)                                                                  \
  case K:                                                                            \
    if (kBackward) diff_backward_kernel<K, T><<<blocks, kThreads, 0, st>>>(a, p);    \
    else diff_forward_kernel<K, T><<<blocks, kThreads, 0, st>>>(a, p);               \
    break;
    NPE_CASE(1) NPE_CASE(2) NPE_CASE(3) NPE_CASE(4) NPE_CASE(5) NPE_CASE(6) NPE_CASE(7) NPE_CASE(8)
#undef NPE_CASE
    default: throw Error("differentiable simulator on CUDA: unsupported ball count " + std::to_string(spec.num_balls));
  }
  check(cudaGetLastError(), kBackward ? "diff_backward_kernel" : "diff_forward_kernel");
}


}  // namespace

template <class T>
void diff_forward_cuda(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, T* traj, T* ckpt,
                       void* stream) {
  validate_diff(spec, r, kDiffMaxBallsCuda);
  DiffArrays<T> a = diff_arrays(spec, r, in);
  a.traj = traj;
  a.ckpt = ckpt;
  launch<T, false>(spec, a, static_cast<cudaStream_t>(stream));
}

template <class T>
void diff_backward_cuda(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, const T* ckpt,
                        const T* traj_bar, const DiffGrads<T>& g, T* scratch, void* stream) {
  validate_diff(spec, r, kDiffMaxBallsCuda);
  if (!scratch) throw Error("diff_backward_cuda: the scratch buffer is required");
  DiffArrays<T> a = diff_backward_arrays(spec, r, in, ckpt, traj_bar, g, "diff_backward_cuda");
  a.scratch = scratch;
  launch<T, true>(spec, a, static_cast<cudaStream_t>(stream));
}

template void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, float*, float*, void*);
template void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, double*, double*, void*);
template void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, const float*,
                                 const float*, const DiffGrads<float>&, float*, void*);
template void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, const double*,
                                 const double*, const DiffGrads<double>&, double*, void*);

}  // namespace npe::gpu
