#include "npe/rollout/rollout.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/core/interrupt.h"

namespace npe::rollout {
using datagen::kStateDim;
using datagen::Trajectories;

Predictor constant_velocity() {
  return [](const float*, const float* cur, int64_t scenes, int64_t n, float* v) {
    for (int64_t i = 0; i < scenes * n; ++i) {
      v[2 * i] = cur[i * kStateDim + 2];
      v[2 * i + 1] = cur[i * kStateDim + 3];
    }
  };
}

Trajectories rollout(const Trajectories& truth, int64_t scenes, int steps, double step_scale,
                     const Predictor& predict) {
  if (steps < 1) throw FieldError("rollout_steps", fmt::format(": expected >= 1, found {}", steps));
  if (steps > truth.timesteps - 2)
    throw FieldError("rollout_steps", fmt::format(" {}: needs {} frames per scene, the dataset has {}", steps,
                                                  int64_t{steps} + 2, truth.timesteps));
  if (scenes < 1 || scenes > truth.scenes)
    throw FieldError("num_scenes",
                     fmt::format(": expected 1 to {} (test scenes available), found {}", truth.scenes, scenes));
  const int64_t N = truth.num_balls, T = steps + 2, per_frame = N * kStateDim;
  Trajectories out;
  out.scenes = scenes;
  out.timesteps = T;
  out.num_balls = N;
  out.data.resize(static_cast<size_t>(scenes * T * per_frame));
  for (int64_t s = 0; s < scenes; ++s)
    for (int t = 0; t < 2; ++t) std::copy(truth.frame(s, t), truth.frame(s, t) + per_frame, out.frame(s, t));

  // Frames k-1 and k of every scene, contiguous, as the predictor expects.
  std::vector<float> prev(scenes * per_frame), cur(scenes * per_frame), v(scenes * N * 2);
  for (int k = 1; k <= steps; ++k) {
    throw_if_interrupted(fmt::format("stopped at rollout step {} of {}", k, steps));  // SIGINT/SIGTERM
    for (int64_t s = 0; s < scenes; ++s) {
      std::copy(out.frame(s, k - 1), out.frame(s, k - 1) + per_frame, prev.data() + s * per_frame);
      std::copy(out.frame(s, k), out.frame(s, k) + per_frame, cur.data() + s * per_frame);
    }
    predict(prev.data(), cur.data(), scenes, N, v.data());
    for (int64_t s = 0; s < scenes; ++s) {
      const float* c = out.frame(s, k);
      float* nx = out.frame(s, k + 1);
      for (int64_t b = 0; b < N; ++b) {
        if (!(c[b * kStateDim + 4] > 0)) {  // an absent slot stays all-zero
          std::fill(nx + b * kStateDim, nx + (b + 1) * kStateDim, 0.0f);
          continue;
        }
        const float vx = v[(s * N + b) * 2], vy = v[(s * N + b) * 2 + 1];
        nx[b * kStateDim + 0] = static_cast<float>(c[b * kStateDim + 0] + vx * step_scale);
        nx[b * kStateDim + 1] = static_cast<float>(c[b * kStateDim + 1] + vy * step_scale);
        nx[b * kStateDim + 2] = vx;
        nx[b * kStateDim + 3] = vy;
        nx[b * kStateDim + 4] = c[b * kStateDim + 4];
      }
    }
  }
  return out;
}

StepMetrics rollout_metrics(const Trajectories& truth, const Trajectories& pred, double pos_scale, double min_speed) {
  if (pred.scenes > truth.scenes || pred.num_balls != truth.num_balls || pred.timesteps > truth.timesteps)
    throw Error("rollout_metrics: the rollout does not match the ground truth's shape");
  const int steps = static_cast<int>(pred.timesteps) - 2;
  StepMetrics m;
  m.cosine.assign(steps, 0.0);
  m.rel_mag_error.assign(steps, 0.0);
  m.pos_error_px.assign(steps, 0.0);
  m.velocity_count.assign(steps, 0);
  m.energy_drift.assign(steps, 0.0);
  // Twice the kinetic energy of a frame (the mass feature is proportional to the mass, and the
  // drift is a ratio); absent slots have mass 0.
  auto energy = [&](const float* f) {
    double e = 0;
    for (int64_t b = 0; b < pred.num_balls; ++b) {
      const float* x = f + b * kStateDim;
      e += static_cast<double>(x[4]) * (static_cast<double>(x[2]) * x[2] + static_cast<double>(x[3]) * x[3]);
    }
    return e;
  };
  double e1 = 0;
  for (int64_t s = 0; s < pred.scenes; ++s) e1 += energy(pred.frame(s, 1));
  for (int k = 1; k <= steps; ++k) {
    double cos_sum = 0, rel_sum = 0, pos_sum = 0;
    int64_t nv = 0, np = 0;
    for (int64_t s = 0; s < pred.scenes; ++s) {
      const float* g = truth.frame(s, k + 1);
      const float* p = pred.frame(s, k + 1);
      for (int64_t b = 0; b < pred.num_balls; ++b) {
        if (!(g[b * kStateDim + 4] > 0)) continue;  // absent slot
        ++np;
        const double gx = g[b * kStateDim + 2], gy = g[b * kStateDim + 3];
        const double px = p[b * kStateDim + 2], py = p[b * kStateDim + 3];
        const double dx = g[b * kStateDim] - p[b * kStateDim], dy = g[b * kStateDim + 1] - p[b * kStateDim + 1];
        pos_sum += std::sqrt(dx * dx + dy * dy) * pos_scale;
        const double gn = std::sqrt(gx * gx + gy * gy), pn = std::sqrt(px * px + py * py);
        if (gn < min_speed) continue;
        cos_sum += pn > 0 ? (gx * px + gy * py) / (gn * pn) : 0.0;
        rel_sum += std::abs(gn - pn) / gn;
        ++nv;
      }
    }
    m.cosine[k - 1] = nv ? cos_sum / nv : NAN;
    m.rel_mag_error[k - 1] = nv ? rel_sum / nv : NAN;
    m.pos_error_px[k - 1] = np ? pos_sum / static_cast<double>(np) : NAN;
    m.velocity_count[k - 1] = nv;
    double e = 0;
    for (int64_t s = 0; s < pred.scenes; ++s) e += energy(pred.frame(s, k + 1));
    m.energy_drift[k - 1] = e1 > 0 ? e / e1 - 1 : NAN;
  }
  return m;
}

std::vector<uint8_t> touches_another_ball(const datagen::Trajectories& truth, int64_t scene, double radius,
                                          double step_scale, double slack) {
  const int64_t N = truth.balls_in(scene);  // absent slots (mixed counts) touch nothing
  std::vector<uint8_t> hit(truth.num_balls, 0);
  const double reach = 2 * radius + slack;
  for (int64_t t = 0; t + 1 < truth.timesteps; ++t) {
    const float* f = truth.frame(scene, t);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = i + 1; j < N; ++j) {
        const float* a = f + i * datagen::kStateDim;
        const float* b = f + j * datagen::kStateDim;
        const double px = b[0] - a[0], py = b[1] - a[1];
        const double dx = (b[2] - a[2]) * step_scale, dy = (b[3] - a[3]) * step_scale;
        // closest approach of p + s d over s in [0, 1]
        const double dd = dx * dx + dy * dy;
        const double s = dd > 0 ? std::clamp(-(px * dx + py * dy) / dd, 0.0, 1.0) : 0.0;
        const double cx = px + s * dx, cy = py + s * dy;
        if (cx * cx + cy * cy > reach * reach) continue;
        // and both velocities change over the frame (a near miss, or a contact due after the
        // last frame, changes neither)
        const float* a1 = truth.frame(scene, t + 1) + i * datagen::kStateDim;
        const float* b1 = truth.frame(scene, t + 1) + j * datagen::kStateDim;
        auto changed = [](const float* u, const float* w) { return std::hypot(w[2] - u[2], w[3] - u[3]) > 1e-4; };
        if (changed(a, a1) && changed(b, b1)) hit[i] = hit[j] = 1;
      }
  }
  return hit;
}

}  // namespace npe::rollout
