// npe/gpu/engine.h: npe's batched 2-D ball-world engine: a CPU reference (float64 and float32,
// multi-threaded) and CUDA kernels that run the same __host__ __device__ physics.
//
// Model: semi-implicit (symplectic) Euler; penalty contacts along analytic signed-distance
// normals (ball-ball, the four walls, capsule and oriented-box obstacles); a spring per unit of
// effective mass (omega^2) and an optional dashpot for restitution below 1. gpu/README.md gives
// the equations, the error analysis and the benchmark.
//
// Layout: structure of arrays. Per-body arrays are [num_balls][num_scenes] flattened, body
// b = ball * num_scenes + scene, so that consecutive scenes of one ball are adjacent (coalesced
// when a CUDA thread handles a scene). Units: px, s, mass units.
//
// Determinism: the CPU reference gives the same bits for any thread count; the CUDA kernels use
// no floating-point atomics (the grid broad phase sorts each cell's list), so a run repeats bit
// for bit; CPU float32 and CUDA float32 agree bit for bit (no fused multiply-add on either side).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "npe/gpu/obstacles.h"

namespace npe::gpu {

enum class BroadPhase {
  kAuto,      // all pairs up to kAllPairsMaxBalls balls per scene, the grid beyond
  kAllPairs,  // every pair of balls of a scene: N (N - 1) / 2 tests per substep
  kGrid,      // uniform grid, cell side = largest diameter, counting sort by cell
};
constexpr int kAllPairsMaxBalls = 32;
constexpr int kFusedMaxBalls = 8;  // CUDA: scenes of up to 8 balls run one thread per scene

// The static description of a batch of independent scenes (or of one large world:
// num_scenes = 1). Kept apart from the dynamic WorldState, as in MuJoCo's mjModel / mjData.
struct WorldSpec {
  int64_t num_scenes = 1;
  int64_t num_balls = 4;
  double width = 800.0, height = 600.0;     // box, px: walls at x = 0, width and y = 0, height
  std::vector<double> radius;               // [num_balls * num_scenes] px (body b = ball * num_scenes + scene)
  std::vector<double> mass;                 // [num_balls * num_scenes] mass units, > 0
  double restitution = 1.0;                 // normal restitution of every contact, (0, 1]; 1 = no dashpot
  double contact_omega = 200.0;             // contact spring per unit effective mass: k = m_eff omega^2, 1/s
  double contact_ramp = 0.15;               // px of penetration over which the contact switches on smoothly
                                            // (C1 force, see gpu/src/physics.h); 0 = linear law, kink at onset
  double gravity_x = 0.0, gravity_y = 0.0;  // px/s^2
  double frame_dt = 0.1;                    // s between recorded frames
  int substeps = 64;                        // physics substeps per frame: h = frame_dt / substeps
  std::vector<Obstacle> obstacles;          // static, at most kMaxObstacles
  BroadPhase broad_phase = BroadPhase::kAuto;

  int64_t num_bodies() const { return num_balls * num_scenes; }
  double substep() const { return frame_dt / substeps; }
  // The broad phase kAuto resolves to for this spec.
  BroadPhase resolved_broad_phase() const;
};
constexpr int kMaxObstacles = 64;

// Throws npe::Error naming the field (and the flag where one exists), expected and found:
// sizes, array lengths, non-positive or non-finite radii and masses, restitution outside (0, 1],
// a substep that does not resolve the contact (omega h > 1), absurd grid sizes, bad obstacles.
void validate(const WorldSpec& spec);

// Dashpot constant zeta of a linear spring-dashpot with restitution e in (0, 1]:
// zeta = -ln e / sqrt(pi^2 + ln^2 e) (0 for e = 1).
double damping_ratio(double restitution);

// Contact stiffness and substeps from the largest approach speed (px/s) and the smallest radius:
// omega = v / (penetration * r) keeps the peak penetration v / omega under `penetration` * r,
// and substeps = ceil(frame_dt omega steps_per_contact / pi) resolves each contact (duration
// pi / omega) with at least `steps_per_contact` substeps; the onset ramp is a quarter of the
// peak penetration at that speed, ramp = penetration * r / 4. For npe-datagen's default world
// (approach speed 2 * 60 px/s, r = 60 px, 1%, 10 steps): omega = 200 /s, 64 substeps per 0.1 s,
// ramp 0.15 px.
struct ContactChoice {
  double omega;
  int substeps;
  double ramp;
};
ContactChoice choose_contact(double max_approach_speed, double min_radius, double frame_dt, double penetration = 0.01,
                             int steps_per_contact = 10);

// The dynamic state: positions (px) and velocities (px/s), [num_balls * num_scenes] each.
template <class T>
struct WorldState {
  std::vector<T> x, y, vx, vy;
  WorldState() = default;
  explicit WorldState(int64_t bodies) : x(bodies), y(bodies), vx(bodies), vy(bodies) {}
  int64_t size() const { return static_cast<int64_t>(x.size()); }
};

// Where recorded frames go: field f (0 x, 1 y, 2 vx, 3 vy, 4 mass) of ball `ball` of scene
// `scene` at frame t is written to out[t*frame + ball*ball_stride + scene*scene + f*field],
// multiplied by scale[f]. `fields` is 4 (state) or 5 (state and mass). `out` is host memory
// for the CPU reference and device memory for CudaWorld.
template <class T>
struct Recorder {
  T* out = nullptr;
  int64_t frame = 0, ball_stride = 0, scene = 0, field = 0;
  int fields = 4;
  T scale[5] = {1, 1, 1, 1, 1};
};

// The engine's own layout, [frames][4][num_balls][num_scenes]: every store coalesced.
template <class T>
Recorder<T> engine_layout(T* out, const WorldSpec& spec);
// npe's dataset layout, [num_scenes][frames][num_balls][5], normalised: x / pos_scale,
// v / vel_scale, mass.
template <class T>
Recorder<T> dataset_layout(T* out, const WorldSpec& spec, int frames, double pos_scale, double vel_scale);

// CPU reference. advance_cpu runs `frames` frames of spec.substeps substeps each and, when
// rec.out is set, records the state after frame k at frame index first_frame + k. Scenes (and,
// for the grid, bodies) are spread over `threads` threads (0 = all cores); the result does not
// depend on the thread count. Throws npe::Error when the state's size does not match the spec.
template <class T>
void advance_cpu(const WorldSpec& spec, WorldState<T>& state, int frames, const Recorder<T>& rec, int first_frame,
                 int threads = 0);
template <class T>
void record_cpu(const WorldSpec& spec, const WorldState<T>& state, const Recorder<T>& rec, int frame);

// Ball-ball pairs in contact (overlapping) in `state`, found with the given broad phase, as
// (body_i, body_j) with i < j, sorted. Both broad phases return the same set (tested).
std::vector<std::pair<int64_t, int64_t>> contact_pairs_cpu(const WorldSpec& spec, const WorldState<double>& state,
                                                           BroadPhase broad_phase);

// True when a CUDA device can be used; otherwise false and `why` says why (built without CUDA,
// no device, driver error).
bool cuda_available(std::string* why = nullptr);
// The CUDA device's name and its measured device-to-device copy bandwidth (bytes read plus
// written per second, from a 1 GiB cudaMemcpy), for benchmark reports.
std::string cuda_device_name();
double cuda_copy_bandwidth();

// A batch of scenes resident on the GPU. All state lives in device memory; nothing returns to
// the host until state() or a copy of recorded frames is asked for. Calls are ordered on the
// world's own CUDA stream. Throws npe::Error on invalid specs and on CUDA errors (naming the
// call), and when built without CUDA.
template <class T>
class CudaWorld {
 public:
  explicit CudaWorld(const WorldSpec& spec);
  ~CudaWorld();
  CudaWorld(const CudaWorld&) = delete;
  CudaWorld& operator=(const CudaWorld&) = delete;

  const WorldSpec& spec() const;
  // Host -> device (returns once copied).
  void set_state(const WorldState<T>& state);
  // Replaces the masses ([num_bodies], as in WorldSpec::mass), e.g. for the next chunk of a
  // dataset.
  void set_masses(const std::vector<double>& mass);
  // Device -> host (synchronises the stream).
  WorldState<T> state() const;
  // As advance_cpu; rec.out must be device memory (or null for no recording).
  void advance(int frames, const Recorder<T>& rec, int first_frame);
  void record(const Recorder<T>& rec, int frame);
  // Ball-ball contact pairs in the current state found on the device (as contact_pairs_cpu).
  std::vector<std::pair<int64_t, int64_t>> contact_pairs(BroadPhase broad_phase);
  // Benchmark helper: `warmup` untimed runs, then `repeats` runs timed with CUDA events, each
  // starting from `state` (uploaded outside the timed region) and calling advance(frames, rec,
  // 0). Returns the seconds of each timed run.
  std::vector<double> time_advance(const WorldState<T>& state, int frames, const Recorder<T>& rec, int warmup,
                                   int repeats);
  // Waits for all work queued on the world's stream.
  void synchronize() const;
  // The world's stream (a cudaStream_t), for callers that queue their own copies.
  void* stream() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Waits for all work queued on `stream` (a cudaStream_t; null = the default stream).
void synchronize_stream(void* stream);

// Device buffers and pinned host buffers (RAII), for callers that record on the GPU.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes);  // cudaMalloc; throws npe::Error naming the size
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // Asynchronous copy to pinned host memory on `stream` (a cudaStream_t).
  void copy_to_host_async(void* host, size_t bytes, void* stream) const;
  // Copy from host memory on `stream`; returns once copied.
  void copy_from_host(const void* host, size_t bytes, void* stream);
  void fill_nan();  // poisons the buffer (tests: every element must be written)

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t bytes);  // cudaMallocHost
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

}  // namespace npe::gpu
