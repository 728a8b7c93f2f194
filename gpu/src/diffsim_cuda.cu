// The differentiable simulator on CUDA: the forward sweep of adjoint.h runs one thread per scene
// (the scene's state in registers); the backward sweep one lane per ball (LaneTeam), its ball's
// state and adjoints in registers, the scene's shared through shared memory. Checkpoints, contact
// words and the backward pass's recomputed segment live in global memory, coalesced across scenes;
// the warp's lanes vote (__any_sync) on whether a substep had a contact, so that contact-free
// substeps skip the exchange and the scratch round trip warp-uniformly. No atomics: each lane
// writes only its own ball's gradients, ball 0 its scene's dashpot gradient.
#include <cuda_runtime.h>
#include "npe/core/cuda_check.h"

#include <string>

#include "diffsim_internal.h"
#include "engine_internal.h"
#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"

namespace npe::gpu {
namespace {

using namespace detail;


constexpr int kThreads = 128;

template <int N, class T>
__global__ void __launch_bounds__(kThreads) diff_forward_kernel(DiffArrays<T> a, StepParams<T> p) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= a.S) return;
  T x[N], y[N], vx[N], vy[N], r[N], m[N], im[N], ux[N], uy[N], fx[N], fy[N];
  uint32_t words[N];
  const SceneLocal<T> l{x, y, vx, vy, r, m, im, ux, uy, fx, fy, words};
  diff_scene_forward(FixedCount<N>{}, a, p, s, l);
}

// The backward sweep's team on CUDA (adjoint.h): one lane per ball, 32 / N scenes per warp (the
// remaining 32 mod N lanes idle). The scene's state and force adjoints are exchanged through the
// warp's shared memory, laid out [field][ball][scene] so that the lanes of one load hit distinct
// banks; __syncwarp orders a substep's writes before its reads.
template <int N, class T>
struct LaneTeam {
  static constexpr int kScenesPerWarp = 32 / N;
  static constexpr int kField = N * kScenesPerWarp;  // entries of one field
  static constexpr int kWarpShared = 14 * kField;    // two buffers of 6 fields, then r and m
  BallAdjoint<T> b;
  T* sh;  // the warp's area, offset by the lane's scene
  int i;
  unsigned mask;
  template <class F>
  __device__ __forceinline__ void each(F f) {
    f(b, i);
  }
  template <class F>
  __device__ __forceinline__ bool any(F f) {
    return __any_sync(mask, f(b, i));
  }
  __device__ __forceinline__ SceneView<T> view(int k) const {
    T* f = sh + k * 6 * kField;
    T* c = sh + 12 * kField;
    return {f, f + kField, f + 2 * kField, f + 3 * kField, f + 4 * kField, f + 5 * kField,
            c, c + kField, kScenesPerWarp};
  }
  __device__ __forceinline__ void sync() const { __syncwarp(mask); }
};

// Minimum resident blocks per SM asked of the compiler for the backward kernel (caps its
// registers at 65536 / (128 threads x blocks)); -DNPE_DIFF_BACKWARD_MIN_BLOCKS=... to tune
// (scripts/device_tune_backward.sh).
#ifndef NPE_DIFF_BACKWARD_MIN_BLOCKS
#define NPE_DIFF_BACKWARD_MIN_BLOCKS 1
#endif

template <int N, class T>
__global__ void __launch_bounds__(kThreads, NPE_DIFF_BACKWARD_MIN_BLOCKS)
    diff_backward_kernel(DiffArrays<T> a, StepParams<T> p) {
  {
    using Team = LaneTeam<N, T>;
    __shared__ T shared[kThreads / 32][Team::kWarpShared];
    const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
    const int local = lane / N;
    const int64_t s = (static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + warp) * Team::kScenesPerWarp + local;
    const bool active = local < Team::kScenesPerWarp && s < a.S;
    const unsigned mask = __ballot_sync(0xffffffffu, active);
    if (!active) return;
    Team team;
    team.sh = shared[warp] + local;
    team.i = lane - local * N;
    team.mask = mask;
    diff_scene_backward(FixedCount<N>{}, a, p, s, team);
  }
}

// Obstacles in device memory for the duration of one call.
template <class T>
struct DeviceObstacles {
  ObstacleK<T>* p = nullptr;
  DeviceObstacles(const WorldSpec& spec, cudaStream_t st) {
    const auto h = kernel_obstacles<T>(spec);
    if (h.empty()) return;
    cuda_check(cudaMalloc(&p, h.size() * sizeof(ObstacleK<T>)), "cudaMalloc (obstacles)");
    cuda_check(cudaMemcpyAsync(p, h.data(), h.size() * sizeof(ObstacleK<T>), cudaMemcpyHostToDevice, st), "obstacles");
    cuda_check(cudaStreamSynchronize(st), "obstacles (synchronize)");
  }
  ~DeviceObstacles() {
    if (p) cudaFree(p);
  }
};

template <class T>
__global__ void dashpot_kernel(const T* e, T* damping, T* slope, int64_t n, double omega) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dashpot_item(e, damping, slope, i, omega);
}

template <class T, bool kBackward>
void launch(const WorldSpec& spec, const DiffArrays<T>& a, const void* device_obstacles, cudaStream_t st) {
  std::string why;
  if (!cuda_available(&why)) throw Error("differentiable simulator on CUDA: " + why);
  // Obstacles given on the device need no upload (and no synchronisation).
  const DeviceObstacles<T> obs(device_obstacles ? WorldSpec{} : spec, st);
  const auto* obstacles = device_obstacles ? static_cast<const ObstacleK<T>*>(device_obstacles) : obs.p;
  const StepParams<T> p = step_params<T>(spec, obstacles);
  const int blocks = static_cast<int>((a.S + kThreads - 1) / kThreads);
  auto backward_blocks = [&](int n) {
    const int64_t per_block = (kThreads / 32) * (32 / n);
    return static_cast<int>((a.S + per_block - 1) / per_block);
  };
  switch (spec.num_balls) {
#define NPE_CASE(K)                                                              \
  case K:                                                                        \
    if (kBackward)                                                               \
      diff_backward_kernel<K, T><<<backward_blocks(K), kThreads, 0, st>>>(a, p); \
    else                                                                         \
      diff_forward_kernel<K, T><<<blocks, kThreads, 0, st>>>(a, p);              \
    break;
    NPE_CASE(1)
    NPE_CASE(2)
    NPE_CASE(3)
    NPE_CASE(4)
    NPE_CASE(5)
    NPE_CASE(6)
    NPE_CASE(7)
    NPE_CASE(8)
    NPE_CASE(9)
    NPE_CASE(10)
    NPE_CASE(11)
    NPE_CASE(12)
    NPE_CASE(13)
    NPE_CASE(14)
    NPE_CASE(15)
    NPE_CASE(16)
#undef NPE_CASE
    default: throw Error("differentiable simulator on CUDA: unsupported ball count " + std::to_string(spec.num_balls));
  }
  cuda_check(cudaGetLastError(), kBackward ? "diff_backward_kernel" : "diff_forward_kernel");
}


}  // namespace

template <class T>
void diff_forward_cuda(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, T* traj, T* ckpt,
                       uint32_t* contacts, void* stream) {
  validate_diff(spec, r, kDiffMaxBallsCuda);
  DiffArrays<T> a = diff_arrays(spec, r, in);
  a.traj = traj;
  a.ckpt = ckpt;
  a.contacts = contacts;
  launch<T, false>(spec, a, in.device_obstacles, static_cast<cudaStream_t>(stream));
}

template <class T>
void diff_backward_cuda(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, const T* ckpt,
                        const uint32_t* contacts, const T* traj_bar, const DiffGrads<T>& g, T* scratch, void* stream) {
  validate_diff(spec, r, kDiffMaxBallsCuda);
  if (!scratch) throw Error("diff_backward_cuda: the scratch buffer is required");
  DiffArrays<T> a = diff_backward_arrays(spec, r, in, ckpt, contacts, traj_bar, g, "diff_backward_cuda");
  a.scratch = scratch;
  launch<T, true>(spec, a, in.device_obstacles, static_cast<cudaStream_t>(stream));
}

template <class T>
void dashpot_cuda(const T* e, T* damping, T* slope, int64_t n, double omega, void* stream) {
  if (n <= 0) return;
  dashpot_kernel<T>
      <<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
          e, damping, slope, n, omega);
  cuda_check(cudaGetLastError(), "dashpot_kernel");
}
template void dashpot_cuda(const float*, float*, float*, int64_t, double, void*);
template void dashpot_cuda(const double*, double*, double*, int64_t, double, void*);

template void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, float*, float*,
                                uint32_t*, void*);
template void diff_forward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, double*, double*,
                                uint32_t*, void*);
template void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, const float*,
                                 const uint32_t*, const float*, const DiffGrads<float>&, float*, void*);
template void diff_backward_cuda(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, const double*,
                                 const uint32_t*, const double*, const DiffGrads<double>&, double*, void*);

}  // namespace npe::gpu
