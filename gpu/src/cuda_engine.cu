// The CUDA backend. Kernels are thin: compute the index, check bounds, call the shared
// __host__ __device__ functions of physics.h / bodies.h.
//
// - Scenes of up to kFusedMaxBalls balls (all-pairs broad phase): fused_kernel<N>, one thread
//   per scene, the scene's state in registers for all substeps of all frames, frames recorded
//   with coalesced stores in the engine layout (one 128-byte line per warp per field and ball).
// - Larger scenes: one thread per body per substep, ping-pong state buffers; the grid broad
//   phase is rebuilt every substep by a counting sort (integer atomics for the counts and
//   slots, then each cell's short list sorted by body index, so the order, and therefore every
//   floating-point sum, is the same on every run).
#include <cuda_runtime.h>
#include "npe/core/cuda_check.h"

#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cmath>
#include <string>

#include "bodies.h"
#include "engine_internal.h"
#include "npe/core/error.h"

namespace npe::gpu {
namespace {

using namespace detail;


// A typed device array.
template <class X>
struct Dev {
  X* p = nullptr;
  size_t n = 0;
  Dev() = default;
  explicit Dev(size_t count) { alloc(count); }
  void alloc(size_t count) {
    release();
    n = count;
    if (count) cuda_check(cudaMalloc(&p, count * sizeof(X)), "cudaMalloc");
  }
  void release() {
    if (p) cudaFree(p);
    p = nullptr;
    n = 0;
  }
  ~Dev() { release(); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
};

template <class X>
void upload(Dev<X>& d, const std::vector<X>& h, cudaStream_t s) {
  if (d.n != h.size()) d.alloc(h.size());
  if (!h.empty()) cuda_check(cudaMemcpyAsync(d.p, h.data(), h.size() * sizeof(X), cudaMemcpyHostToDevice, s), "upload");
  cuda_check(cudaStreamSynchronize(s), "upload (synchronize)");  // h may go out of scope after return
}

constexpr int kThreads = 128;
int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

// ---- fused small-scene kernel ----------------------------------------------------------------

template <class T>
struct SceneArrays {
  T *x, *y, *vx, *vy;
  const T *r, *m, *inv_m;
  int64_t num_scenes;
};

template <int N, class T>
__global__ void __launch_bounds__(kThreads)
    fused_kernel(SceneArrays<T> a, StepParams<T> p, Recorder<T> rec, int frames, int substeps, int first_frame) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= a.num_scenes) return;
  T x[N], y[N], vx[N], vy[N], r[N], m[N], im[N], fx[N], fy[N];
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int64_t b = i * a.num_scenes + s;
    x[i] = a.x[b], y[i] = a.y[b], vx[i] = a.vx[b], vy[i] = a.vy[b];
    r[i] = a.r[b], m[i] = a.m[b], im[i] = a.inv_m[b];
  }
  for (int f = 0; f < frames; ++f) {
    for (int k = 0; k < substeps; ++k) scene_substep(FixedCount<N>{}, x, y, vx, vy, r, m, im, fx, fy, p);
    if (rec.out) {
#pragma unroll
      for (int i = 0; i < N; ++i) record_body(rec, first_frame + f, i, s, x[i], y[i], vx[i], vy[i], m[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int64_t b = i * a.num_scenes + s;
    a.x[b] = x[i], a.y[b] = y[i], a.vx[b] = vx[i], a.vy[b] = vy[i];
  }
}

template <class T>
void launch_fused(int n, const SceneArrays<T>& a, const StepParams<T>& p, const Recorder<T>& rec, int frames,
                  int substeps, int first_frame, cudaStream_t st) {
  const int grid = blocks_for(a.num_scenes);
  switch (n) {
#define NPE_CASE(K) \
  case K: fused_kernel<K, T><<<grid, kThreads, 0, st>>>(a, p, rec, frames, substeps, first_frame); break;
    NPE_CASE(1)
    NPE_CASE(2)
    NPE_CASE(3)
    NPE_CASE(4)
    NPE_CASE(5)
    NPE_CASE(6)
    NPE_CASE(7)
    NPE_CASE(8)
#undef NPE_CASE
    default: throw Error("launch_fused: unsupported ball count " + std::to_string(n));
  }
  cuda_check_launch("fused_kernel");
}

// ---- per-body kernels -------------------------------------------------------------------------

template <class T>
__global__ void cells_kernel(BodiesK<T> b, GridK<T> g, int64_t n, int* cell_of, int* rank, int* count) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int c = static_cast<int>(body_cell(b, g, i));
  cell_of[i] = c;
  rank[i] = atomicAdd(&count[c], 1);  // integer atomics: the slot order varies, fixed below
}

__global__ void scatter_kernel(int64_t n, const int* cell_of, const int* rank, const int* start, int* sorted) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  sorted[start[cell_of[i]] + rank[i]] = static_cast<int>(i);
}

// Sorts each cell's list by body index (insertion sort: cells hold a handful of balls).
__global__ void sort_cells_kernel(int64_t num_cells, const int* start, int* sorted) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= num_cells) return;
  const int b = start[c], e = start[c + 1];
  for (int k = b + 1; k < e; ++k) {
    const int v = sorted[k];
    int j = k - 1;
    while (j >= b && sorted[j] > v) {
      sorted[j + 1] = sorted[j];
      --j;
    }
    sorted[j + 1] = v;
  }
}

template <class T, bool kGrid>
__global__ void __launch_bounds__(kThreads)
    body_kernel(BodiesK<T> b, GridK<T> g, CellsK cells, StepParams<T> p, StateOutK<T> out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= b.num_balls * b.num_scenes) return;
  body_substep<T, kGrid>(b, g, cells, p, i, out);
}

template <class T>
__global__ void record_kernel(BodiesK<T> b, Recorder<T> rec, int frame) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= b.num_balls * b.num_scenes) return;
  record_body(rec, frame, i / b.num_scenes, i % b.num_scenes, b.x[i], b.y[i], b.vx[i], b.vy[i], b.m[i]);
}

// Up to kMaxPartners partners j > i of body i that overlap it.
constexpr int kMaxPartners = 32;
template <class T, bool kGrid>
__global__ void contacts_kernel(BodiesK<T> b, GridK<T> g, CellsK cells, int* count, int* partners) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= b.num_balls * b.num_scenes) return;
  int c = 0;
  auto test = [&](int64_t j) {
    T fx, fy;
    if (j > i && pair_force(b.x[i], b.y[i], b.vx[i], b.vy[i], b.r[i], b.m[i], b.x[j], b.y[j], b.vx[j], b.vy[j], b.r[j],
                            b.m[j], true, ContactLaw<T>{T(1), T(0), T(0), T(0)}, fx, fy)) {
      if (c < kMaxPartners) partners[i * kMaxPartners + c] = static_cast<int>(j);
      ++c;
    }
  };
  if (kGrid) {
    int cx, cy;
    cell_coords(g, b.x[i], b.y[i], cx, cy);
    const int64_t base = (i % b.num_scenes) * static_cast<int64_t>(g.nx) * g.ny;
    for (int yy = cy - 1; yy <= cy + 1; ++yy)
      for (int xx = cx - 1; xx <= cx + 1; ++xx) {
        if (yy < 0 || yy >= g.ny || xx < 0 || xx >= g.nx) continue;
        const int64_t cell = base + static_cast<int64_t>(yy) * g.nx + xx;
        for (int k = cells.start[cell]; k < cells.start[cell + 1]; ++k) test(cells.sorted[k]);
      }
  } else {
    for (int64_t ball = 0; ball < b.num_balls; ++ball) test(ball * b.num_scenes + i % b.num_scenes);
  }
  count[i] = c;
}

}  // namespace

// ---- CudaWorld ----------------------------------------------------------------------------------

template <class T>
struct CudaWorld<T>::Impl {
  WorldSpec spec;
  cudaStream_t stream = nullptr;
  Dev<T> x[2], y[2], vx[2], vy[2];  // ping-pong state (the fused path uses buffer 0 only)
  int cur = 0;
  Dev<T> r, m, inv_m;
  Dev<ObstacleK<T>> obstacles;
  GridK<T> grid{};
  int64_t num_cells = 0;
  Dev<int> cell_of, rank, count, start, sorted;
  Dev<unsigned char> scan_tmp;
  size_t scan_bytes = 0;

  bool fused() const {
    return spec.resolved_broad_phase() == BroadPhase::kAllPairs && spec.num_balls <= kFusedMaxBalls;
  }
  BodiesK<T> bodies() const {
    return BodiesK<T>{x[cur].p, y[cur].p, vx[cur].p, vy[cur].p, r.p, m.p, inv_m.p, spec.num_scenes, spec.num_balls};
  }
  // The grid's parameters and buffers (once).
  void alloc_grid() {
    if (sorted.p) return;
    const size_t n = static_cast<size_t>(spec.num_bodies());
    grid = grid_params<T>(spec);
    num_cells = grid_cells(spec);
    cell_of.alloc(n), rank.alloc(n), sorted.alloc(n);
    count.alloc(num_cells + 1), start.alloc(num_cells + 1);
    cuda_check(
        cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, count.p, start.p, static_cast<int>(num_cells + 1), stream),
        "cub::DeviceScan::ExclusiveSum (size)");
    scan_tmp.alloc(std::max<size_t>(scan_bytes, 1));
  }
  void build_cells() {
    const int64_t n = spec.num_bodies();
    cuda_check(cudaMemsetAsync(count.p, 0, (num_cells + 1) * sizeof(int), stream), "cudaMemsetAsync");
    cells_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(bodies(), grid, n, cell_of.p, rank.p, count.p);
    cuda_check_launch("cells_kernel");
    cuda_check(cub::DeviceScan::ExclusiveSum(scan_tmp.p, scan_bytes, count.p, start.p, static_cast<int>(num_cells + 1),
                                             stream),
               "cub::DeviceScan::ExclusiveSum");
    scatter_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, cell_of.p, rank.p, start.p, sorted.p);
    cuda_check_launch("scatter_kernel");
    sort_cells_kernel<<<blocks_for(num_cells), kThreads, 0, stream>>>(num_cells, start.p, sorted.p);
    cuda_check_launch("sort_cells_kernel");
  }
};

template <class T>
CudaWorld<T>::CudaWorld(const WorldSpec& spec) : impl_(std::make_unique<Impl>()) {
  std::string why;
  if (!cuda_available(&why)) throw Error("CudaWorld: " + why);
  validate(spec);
  Impl& I = *impl_;
  I.spec = spec;
  cuda_check(cudaStreamCreateWithFlags(&I.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const size_t n = static_cast<size_t>(spec.num_bodies());
  const int buffers = I.fused() ? 1 : 2;
  for (int k = 0; k < buffers; ++k) {
    I.x[k].alloc(n), I.y[k].alloc(n), I.vx[k].alloc(n), I.vy[k].alloc(n);
  }
  I.r.alloc(n);
  upload(I.r, std::vector<T>(spec.radius.begin(), spec.radius.end()), I.stream);
  set_masses(spec.mass);
  const auto obs = kernel_obstacles<T>(spec);
  upload(I.obstacles, obs, I.stream);
  if (spec.resolved_broad_phase() == BroadPhase::kGrid) I.alloc_grid();
}

template <class T>
CudaWorld<T>::~CudaWorld() {
  if (impl_ && impl_->stream) {
    cudaStreamSynchronize(impl_->stream);
    cudaStreamDestroy(impl_->stream);
  }
}

template <class T>
const WorldSpec& CudaWorld<T>::spec() const {
  return impl_->spec;
}

template <class T>
void CudaWorld<T>::set_state(const WorldState<T>& st) {
  Impl& I = *impl_;
  check_state(I.spec, st, "CudaWorld::set_state");
  I.cur = 0;
  upload(I.x[0], st.x, I.stream), upload(I.y[0], st.y, I.stream);
  upload(I.vx[0], st.vx, I.stream), upload(I.vy[0], st.vy, I.stream);
}

template <class T>
void CudaWorld<T>::set_masses(const std::vector<double>& mass) {
  Impl& I = *impl_;
  if (mass.size() != static_cast<size_t>(I.spec.num_bodies()))
    throw Error("CudaWorld::set_masses: expected " + std::to_string(I.spec.num_bodies()) + " masses, found " +
                std::to_string(mass.size()));
  std::vector<T> m(mass.begin(), mass.end()), im(mass.size());
  for (size_t b = 0; b < m.size(); ++b) {
    if (!(mass[b] > 0 && std::isfinite(mass[b])))
      throw Error("CudaWorld::set_masses: mass of body " + std::to_string(b) + ": expected a positive finite mass");
    im[b] = T(1) / m[b];
  }
  I.spec.mass = mass;
  upload(I.m, m, I.stream);
  upload(I.inv_m, im, I.stream);
}

template <class T>
WorldState<T> CudaWorld<T>::state() const {
  const Impl& I = *impl_;
  const int64_t n = I.spec.num_bodies();
  WorldState<T> st(n);
  const int c = I.cur;
  cuda_check(cudaMemcpyAsync(st.x.data(), I.x[c].p, n * sizeof(T), cudaMemcpyDeviceToHost, I.stream), "state");
  cuda_check(cudaMemcpyAsync(st.y.data(), I.y[c].p, n * sizeof(T), cudaMemcpyDeviceToHost, I.stream), "state");
  cuda_check(cudaMemcpyAsync(st.vx.data(), I.vx[c].p, n * sizeof(T), cudaMemcpyDeviceToHost, I.stream), "state");
  cuda_check(cudaMemcpyAsync(st.vy.data(), I.vy[c].p, n * sizeof(T), cudaMemcpyDeviceToHost, I.stream), "state");
  cuda_check(cudaStreamSynchronize(I.stream), "state (synchronize)");
  return st;
}

template <class T>
void CudaWorld<T>::advance(int frames, const Recorder<T>& rec, int first_frame) {
  Impl& I = *impl_;
  if (frames < 0) throw Error("CudaWorld::advance: expected frames >= 0, found " + std::to_string(frames));
  const StepParams<T> p = step_params<T>(I.spec, I.obstacles.p);
  if (I.fused()) {
    const SceneArrays<T> a{I.x[0].p, I.y[0].p, I.vx[0].p, I.vy[0].p, I.r.p, I.m.p, I.inv_m.p, I.spec.num_scenes};
    launch_fused<T>(static_cast<int>(I.spec.num_balls), a, p, rec, frames, I.spec.substeps, first_frame, I.stream);
    return;
  }
  const bool grid = I.spec.resolved_broad_phase() == BroadPhase::kGrid;
  const int64_t n = I.spec.num_bodies();
  for (int f = 0; f < frames; ++f) {
    for (int k = 0; k < I.spec.substeps; ++k) {
      if (grid) I.build_cells();
      const int nxt = 1 - I.cur;
      const StateOutK<T> out{I.x[nxt].p, I.y[nxt].p, I.vx[nxt].p, I.vy[nxt].p};
      const CellsK cells{I.start.p, I.sorted.p};
      if (grid)
        body_kernel<T, true><<<blocks_for(n), kThreads, 0, I.stream>>>(I.bodies(), I.grid, cells, p, out);
      else
        body_kernel<T, false><<<blocks_for(n), kThreads, 0, I.stream>>>(I.bodies(), I.grid, cells, p, out);
      cuda_check_launch("body_kernel");
      I.cur = nxt;
    }
    if (rec.out) record(rec, first_frame + f);
  }
}

template <class T>
void CudaWorld<T>::record(const Recorder<T>& rec, int frame) {
  Impl& I = *impl_;
  record_kernel<T><<<blocks_for(I.spec.num_bodies()), kThreads, 0, I.stream>>>(I.bodies(), rec, frame);
  cuda_check_launch("record_kernel");
}

template <class T>
std::vector<std::pair<int64_t, int64_t>> CudaWorld<T>::contact_pairs(BroadPhase bp) {
  Impl& I = *impl_;
  if (bp == BroadPhase::kAuto) bp = I.spec.resolved_broad_phase();
  const int64_t n = I.spec.num_bodies();
  if (bp == BroadPhase::kGrid) {
    I.alloc_grid();  // also when this world steps with all pairs
    I.build_cells();
  }
  Dev<int> count(n), partners(static_cast<size_t>(n) * kMaxPartners);
  // unused partner slots are copied back too: give them a value (-1)
  cuda_check(cudaMemsetAsync(partners.p, 0xff, partners.n * sizeof(int), I.stream), "cudaMemsetAsync");
  const CellsK cells{I.start.p, I.sorted.p};
  if (bp == BroadPhase::kGrid)
    contacts_kernel<T, true><<<blocks_for(n), kThreads, 0, I.stream>>>(I.bodies(), I.grid, cells, count.p, partners.p);
  else
    contacts_kernel<T, false><<<blocks_for(n), kThreads, 0, I.stream>>>(I.bodies(), I.grid, cells, count.p, partners.p);
  cuda_check_launch("contacts_kernel");
  std::vector<int> hc(n), hp(static_cast<size_t>(n) * kMaxPartners);
  cuda_check(cudaMemcpyAsync(hc.data(), count.p, n * sizeof(int), cudaMemcpyDeviceToHost, I.stream), "contacts");
  cuda_check(cudaMemcpyAsync(hp.data(), partners.p, hp.size() * sizeof(int), cudaMemcpyDeviceToHost, I.stream),
             "contacts");
  cuda_check(cudaStreamSynchronize(I.stream), "contacts (synchronize)");
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < n; ++i) {
    if (hc[i] > kMaxPartners)
      throw Error("CudaWorld::contact_pairs: body " + std::to_string(i) + " overlaps " + std::to_string(hc[i]) +
                  " balls, more than " + std::to_string(kMaxPartners));
    for (int k = 0; k < hc[i]; ++k) out.emplace_back(i, hp[i * kMaxPartners + k]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

template <class T>
std::vector<double> CudaWorld<T>::time_advance(const WorldState<T>& state, int frames, const Recorder<T>& rec,
                                               int warmup, int repeats) {
  Impl& I = *impl_;
  cudaEvent_t e0, e1;
  cuda_check(cudaEventCreate(&e0), "cudaEventCreate");
  cuda_check(cudaEventCreate(&e1), "cudaEventCreate");
  std::vector<double> out;
  for (int k = 0; k < warmup + repeats; ++k) {
    set_state(state);
    cuda_check(cudaEventRecord(e0, I.stream), "cudaEventRecord");
    advance(frames, rec, 0);
    cuda_check(cudaEventRecord(e1, I.stream), "cudaEventRecord");
    cuda_check(cudaEventSynchronize(e1), "cudaEventSynchronize");
    float ms = 0;
    cuda_check(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
    if (k >= warmup) out.push_back(ms * 1e-3);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return out;
}

template <class T>
void CudaWorld<T>::synchronize() const {
  cuda_check(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
}

template <class T>
void* CudaWorld<T>::stream() const {
  return impl_->stream;
}

template class CudaWorld<float>;
template class CudaWorld<double>;

// ---- device queries and buffers ---------------------------------------------------------------

bool cuda_available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) {
      if (e == cudaSuccess || e == cudaErrorNoDevice)
        *why = "no CUDA device present";
      else if (e == cudaErrorInsufficientDriver)
        *why = "no CUDA device present (no NVIDIA driver, or one older than this build's CUDA runtime)";
      else
        *why = std::string("no usable CUDA device (") + cudaGetErrorString(e) + ")";
    }
    cudaGetLastError();  // clear the sticky-free error state
    return false;
  }
  return true;
}

std::string cuda_device_name() {
  cudaDeviceProp prop{};
  cuda_check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  return prop.name;
}

double cuda_copy_bandwidth() {
  const size_t bytes = size_t{1} << 30;
  Dev<unsigned char> a(bytes), b(bytes);
  cuda_check(cudaMemset(a.p, 1, bytes), "cudaMemset");
  cudaEvent_t e0, e1;
  cuda_check(cudaEventCreate(&e0), "cudaEventCreate");
  cuda_check(cudaEventCreate(&e1), "cudaEventCreate");
  std::vector<float> ms;
  for (int k = 0; k < 12; ++k) {
    cuda_check(cudaEventRecord(e0), "cudaEventRecord");
    cuda_check(cudaMemcpy(b.p, a.p, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");
    cuda_check(cudaEventRecord(e1), "cudaEventRecord");
    cuda_check(cudaEventSynchronize(e1), "cudaEventSynchronize");
    float t = 0;
    cuda_check(cudaEventElapsedTime(&t, e0, e1), "cudaEventElapsedTime");
    if (k >= 2) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3);
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  const cudaError_t e = cudaMalloc(&ptr_, bytes);
  if (e != cudaSuccess)
    throw Error("cannot allocate " + std::to_string(bytes >> 20) + " MiB of GPU memory: " + cudaGetErrorString(e));
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}
void DeviceBuffer::copy_to_host_async(void* host, size_t bytes, void* stream) const {
  cuda_check(cudaMemcpyAsync(host, ptr_, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)),
             "cudaMemcpyAsync (device to host)");
}
void DeviceBuffer::copy_from_host(const void* host, size_t bytes, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  cuda_check(cudaMemcpyAsync(ptr_, host, bytes, cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (host to device)");
  cuda_check(cudaStreamSynchronize(st), "cudaStreamSynchronize");
}
void synchronize_stream(void* stream) {
  cuda_check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}
void DeviceBuffer::fill_nan() { cuda_check(cudaMemset(ptr_, 0xff, bytes_), "cudaMemset"); }

PinnedBuffer::PinnedBuffer(size_t bytes) {
  const cudaError_t e = cudaMallocHost(&ptr_, bytes);
  if (e != cudaSuccess)
    throw Error("cannot allocate " + std::to_string(bytes >> 20) +
                " MiB of pinned host memory: " + cudaGetErrorString(e));
}
PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

}  // namespace npe::gpu
