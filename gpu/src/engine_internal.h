// gpu/src/engine_internal.h (private): what the CPU reference and the CUDA backend share on the
// host side: the spec turned into kernel parameters, the grid's dimensions, recording.
#pragma once

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "npe/core/error.h"
#include "npe/core/parallel.h"
#include "npe/gpu/engine.h"
#include "physics.h"

namespace npe::gpu::detail {

// Kernel form of the obstacles (cos/sin of box angles precomputed in double).
template <class T>
std::vector<ObstacleK<T>> kernel_obstacles(const WorldSpec& spec);

// Substep parameters; `obstacles` must point at kernel_obstacles(spec) in the memory the
// step runs in (host or device).
template <class T>
StepParams<T> step_params(const WorldSpec& spec, const ObstacleK<T>* obstacles);

// Grid dimensions: cell side = largest diameter, enlarged only when the box would otherwise
// have more than max(4 N + 16, 1024) cells per scene (sparse worlds of tiny balls).
template <class T>
GridK<T> grid_params(const WorldSpec& spec);
int64_t grid_cells(const WorldSpec& spec);  // nx * ny * num_scenes

// Writes body b's state (and mass when rec.fields == 5) at frame `frame`.
template <class T>
NPE_HD void record_body(const Recorder<T>& rec, int frame, int64_t ball, int64_t scene, T x, T y, T vx, T vy, T m) {
  T* o = rec.out + frame * rec.frame + ball * rec.ball_stride + scene * rec.scene;
  o[0] = x * rec.scale[0];
  o[rec.field] = y * rec.scale[1];
  o[2 * rec.field] = vx * rec.scale[2];
  o[3 * rec.field] = vy * rec.scale[3];
  if (rec.fields == 5) o[4 * rec.field] = m * rec.scale[4];
}

// Throws npe::Error when `state` does not hold spec.num_bodies() bodies.
template <class T>
void check_state(const WorldSpec& spec, const WorldState<T>& state, const char* who);

}  // namespace npe::gpu::detail
