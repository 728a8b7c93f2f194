#include "npe/rollout/sim_rollout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/datagen/engine_world.h"

namespace npe::rollout {

using datagen::kStateDim;
using gpu::CudaWorld;
using gpu::DeviceBuffer;
using gpu::WorldSpec;
using gpu::WorldState;

WorldSpec replay_spec(const datagen::Manifest& m, int64_t num_scenes) {
  // A Box2D dataset's manifest leaves world.engine unset: the engine's settings are chosen.
  return datagen::spec_from_world(m.world, num_scenes);
}

std::string replay_unsupported(const datagen::Manifest& m) {
  if (!m.world.walls.empty())
    return "a walls world's wall layout differs per scene, and the engine takes one obstacle layout per dataset";
  if (m.world.friction != 0)
    return fmt::format("the dataset's friction is {}, and the engine's contacts are frictionless", m.world.friction);
  try {
    gpu::validate(replay_spec(m, 1));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

namespace {
// Box2D leaves touching balls overlapping by up to its linear slop (0.5 px here, 0.9 px seen) and
// balls up to that far inside a wall. Started from such a state, the penalty spring would release
// the overlap delta as a kick of about omega * delta (100 px/s for 0.5 px at omega 200 /s), so the
// replay of a rigid-body dataset first moves overlapping balls apart along the contact normal
// (inversely to their masses) and out of the walls: a few Gauss-Seidel sweeps, moving balls by
// at most the overlap (< 1 px). Velocities are untouched.
void separate_overlaps(const WorldSpec& spec, WorldState<float>& st) {
  const int64_t S = spec.num_scenes, N = spec.num_balls;
  for (int64_t s = 0; s < S; ++s)
    for (int sweep = 0; sweep < 8; ++sweep) {
      bool moved = false;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t a = i * S + s;
        const double r = spec.radius[a];
        const float x = std::clamp<float>(st.x[a], static_cast<float>(r), static_cast<float>(spec.width - r));
        const float y = std::clamp<float>(st.y[a], static_cast<float>(r), static_cast<float>(spec.height - r));
        moved |= x != st.x[a] || y != st.y[a];
        st.x[a] = x, st.y[a] = y;
        for (int64_t j = i + 1; j < N; ++j) {
          const int64_t b = j * S + s;
          const double dx = st.x[b] - st.x[a], dy = st.y[b] - st.y[a], d = std::hypot(dx, dy);
          const double overlap = spec.radius[a] + spec.radius[b] - d;
          if (!(overlap > 0) || !(d > 0)) continue;
          const double wa = spec.mass[b] / (spec.mass[a] + spec.mass[b]), wb = 1 - wa;
          st.x[a] -= static_cast<float>(dx / d * overlap * wa);
          st.y[a] -= static_cast<float>(dy / d * overlap * wa);
          st.x[b] += static_cast<float>(dx / d * overlap * wb);
          st.y[b] += static_cast<float>(dy / d * overlap * wb);
          moved = true;
        }
      }
      if (!moved) break;
    }
}
}  // namespace

datagen::Trajectories simulator_rollout(const datagen::Manifest& m, const datagen::Trajectories& truth, int64_t scenes,
                                        int steps, bool use_cuda, const std::vector<std::vector<double>>* masses) {
  if (steps < 1 || truth.timesteps < steps + 2)
    throw Error(fmt::format("simulator rollout: {} steps need {} ground-truth frames, the dataset has {}", steps,
                            steps + 2, truth.timesteps));
  if (scenes < 1 || scenes > truth.scenes)
    throw Error(fmt::format("simulator rollout: expected 1 to {} scenes, found {}", truth.scenes, scenes));
  const int64_t N = truth.num_balls;
  if (masses &&
      (static_cast<int64_t>(masses->size()) != scenes ||
       std::any_of(masses->begin(), masses->end(), [&](const auto& v) { return static_cast<int64_t>(v.size()) != N; })))
    throw Error(fmt::format("simulator rollout: masses expected [{}][{}]", scenes, N));
  WorldSpec spec = replay_spec(m, scenes);
  WorldState<float> st(N * scenes);
  const double ps = m.pos_scale(), vs = m.vel_scale();
  for (int64_t s = 0; s < scenes; ++s)
    for (int64_t i = 0; i < N; ++i) {
      const float* b = truth.frame(s, 1) + i * kStateDim;
      const int64_t k = i * scenes + s;
      st.x[k] = static_cast<float>(b[0] * ps);
      st.y[k] = static_cast<float>(b[1] * ps);
      st.vx[k] = static_cast<float>(b[2] * vs);
      st.vy[k] = static_cast<float>(b[3] * vs);
      spec.mass[k] = masses ? (*masses)[s][i] : b[4];
      if (!(spec.mass[k] > 0))
        throw Error(
            fmt::format("simulator rollout: scene {} ball {}: mass expected > 0, found {}", s, i, spec.mass[k]));
    }
  if (m.engine != "npe-gpu") separate_overlaps(spec, st);  // the engine's own frames may be mid-contact
  datagen::Trajectories out;
  out.scenes = scenes;
  out.timesteps = steps + 2;
  out.num_balls = N;
  const size_t per_frame = static_cast<size_t>(N) * kStateDim, per_scene = per_frame * out.timesteps;
  out.data.assign(per_scene * scenes, 0.0f);
  for (int64_t s = 0; s < scenes; ++s) std::memcpy(out.frame(s, 0), truth.frame(s, 0), 2 * per_frame * sizeof(float));
  // frames 2..steps+1 are recorded by the engine at frame index k (frame 1 is the start)
  if (use_cuda) {
    CudaWorld<float> world(spec);
    world.set_state(st);
    DeviceBuffer frames(per_scene * scenes * sizeof(float));
    world.advance(steps, gpu::dataset_layout(static_cast<float*>(frames.get()), spec, out.timesteps, ps, vs), 2);
    std::vector<float> host(per_scene * scenes);
    frames.copy_to_host_async(host.data(), host.size() * sizeof(float), world.stream());
    world.synchronize();
    for (int64_t s = 0; s < scenes; ++s)
      std::memcpy(out.frame(s, 2), host.data() + per_scene * s + 2 * per_frame, steps * per_frame * sizeof(float));
  } else {
    gpu::advance_cpu(spec, st, steps, gpu::dataset_layout(out.data.data(), spec, out.timesteps, ps, vs), 2);
  }
  return out;
}

std::vector<double> simulator_window_errors(const datagen::Manifest& m, const datagen::Trajectories& truth,
                                            bool use_cuda) {
  // every window becomes a one-frame rollout: a Trajectories of 3 frames (t-1, t, t+1) per window
  const int64_t W = truth.windows(), N = truth.num_balls;
  if (W < 1) throw Error("simulator window errors: the split has no windows");
  datagen::Trajectories win;
  win.scenes = W;
  win.timesteps = 3;
  win.num_balls = N;
  const size_t per_frame = static_cast<size_t>(N) * kStateDim;
  win.data.resize(per_frame * 3 * W);
  for (int64_t s = 0, w = 0; s < truth.scenes; ++s)
    for (int64_t t = 1; t + 1 < truth.timesteps; ++t, ++w)
      std::memcpy(win.frame(w, 0), truth.frame(s, t - 1), 3 * per_frame * sizeof(float));
  const datagen::Trajectories pred = simulator_rollout(m, win, W, 1, use_cuda);
  std::vector<double> errors(static_cast<size_t>(W));
  for (int64_t w = 0; w < W; ++w) {
    double sum = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int f = 2; f < 4; ++f) {
        const double d = pred.frame(w, 2)[i * kStateDim + f] - win.frame(w, 2)[i * kStateDim + f];
        sum += d * d;
      }
    errors[static_cast<size_t>(w)] = sum / static_cast<double>(N * 2);
  }
  return errors;
}

double simulator_window_mse(const datagen::Manifest& m, const datagen::Trajectories& truth, bool use_cuda) {
  const std::vector<double> e = simulator_window_errors(m, truth, use_cuda);
  return std::accumulate(e.begin(), e.end(), 0.0) / static_cast<double>(e.size());
}

}  // namespace npe::rollout
