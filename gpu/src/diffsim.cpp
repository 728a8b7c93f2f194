// The differentiable simulator on the CPU: the per-scene forward and adjoint sweeps of adjoint.h
// looped over scenes on host threads (each scene by one thread: the same bits for any count).
#include "npe/gpu/diffsim.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "diffsim_internal.h"
#include "engine_internal.h"
#include "npe/core/error.h"
#include "npe/core/parallel.h"

namespace npe::gpu {

int64_t DiffRollout::num_checkpoints(const WorldSpec& spec) const {
  const int64_t k = resolved_k(spec);
  return (substeps_total(spec) + k - 1) / k;
}

int64_t DiffRollout::num_contact_words(const WorldSpec& spec) const {
  return (substeps_total(spec) + 31) / 32 * spec.num_bodies();
}

void validate_diff(const WorldSpec& s, const DiffRollout& r, int max_balls) {
  if (s.num_scenes < 1) throw Error(fmt::format("num_scenes: expected at least 1, found {}", s.num_scenes));
  if (s.num_balls < 1 || s.num_balls > max_balls)
    throw Error(fmt::format("num_balls: the differentiable simulator takes 1 to {} balls per scene on this "
                            "backend, found {}",
                            max_balls, s.num_balls));
  if (!(s.width > 0) || !(s.height > 0)) throw Error("box: expected a positive width and height");
  if (!(s.contact_omega > 0 && std::isfinite(s.contact_omega)))
    throw Error(fmt::format("contact_omega: expected a positive stiffness in 1/s, found {}", s.contact_omega));
  if (!(s.contact_ramp >= 0 && std::isfinite(s.contact_ramp)))
    throw Error(fmt::format("contact_ramp: expected a ramp >= 0 px, found {}", s.contact_ramp));
  if (s.substeps < 1) throw Error(fmt::format("substeps: expected at least 1, found {}", s.substeps));
  if (s.contact_omega * s.substep() > 1.0)
    throw Error(
        fmt::format("substeps: omega * h = {:.3g}, expected <= 1 (more substeps)", s.contact_omega * s.substep()));
  if (s.obstacles.size() > static_cast<size_t>(kMaxObstacles))
    throw Error(fmt::format("obstacles: expected at most {}, found {}", kMaxObstacles, s.obstacles.size()));
  if (r.frames < 1) throw Error(fmt::format("frames: expected at least 1, found {}", r.frames));
  if (r.checkpoint_every < 0)
    throw Error(fmt::format("checkpoint_every: expected >= 0 substeps (0 = one frame), found {}", r.checkpoint_every));
  if (r.substeps_total(s) > (int64_t{1} << 40)) throw Error("frames * substeps: expected at most 2^40 substeps");
}

double dashpot(double e, double omega) {
  if (!(e > 0 && e <= 1)) throw Error(fmt::format("restitution: expected a value in (0, 1], found {}", e));
  return detail::dashpot_constant(e, omega);
}

double dashpot_derivative(double e, double omega) {
  if (!(e > 0 && e <= 1)) throw Error(fmt::format("restitution: expected a value in (0, 1], found {}", e));
  return detail::dashpot_slope(e, omega);
}

template <class T>
void dashpot_cpu(const T* e, T* damping, T* slope, int64_t n, double omega) {
  for (int64_t i = 0; i < n; ++i) detail::dashpot_item(e, damping, slope, i, omega);
}
template void dashpot_cpu(const float*, float*, float*, int64_t, double);
template void dashpot_cpu(const double*, double*, double*, int64_t, double);

namespace {

using namespace detail;


// Local arrays of one scene for the forward sweep (CPU: vectors sized by the runtime ball count).
template <class T>
struct Locals {
  std::vector<T> v;
  SceneLocal<T> l;
  std::vector<uint32_t> words;
  explicit Locals(int n) : v(static_cast<size_t>(11) * n), words(static_cast<size_t>(n)) {
    T* p = v.data();
    auto take = [&] {
      T* q = p;
      p += n;
      return q;
    };
    l = {take(), take(), take(), take(), take(), take(), take(), take(), take(), take(), take(), words.data()};
  }
};

// The backward sweep's team on the CPU: one thread owns every ball of the scene (adjoint.h).
template <class T>
struct CpuTeam {
  std::vector<BallAdjoint<T>> balls;
  std::vector<T> shared;  // two buffers of 6 fields, then r and m; n entries each
  int n;
  explicit CpuTeam(int n_) : balls(static_cast<size_t>(n_)), shared(static_cast<size_t>(14) * n_), n(n_) {}
  template <class F>
  void each(F f) {
    for (int i = 0; i < n; ++i) f(balls[static_cast<size_t>(i)], i);
  }
  template <class F>
  bool any(F f) {
    bool r = false;
    for (int i = 0; i < n; ++i) r |= f(balls[static_cast<size_t>(i)], i);
    return r;
  }
  SceneView<T> view(int k) {
    T* b = shared.data() + static_cast<size_t>(k) * 6 * n;
    T* c = shared.data() + static_cast<size_t>(12) * n;
    return {b, b + n, b + 2 * n, b + 3 * n, b + 4 * n, b + 5 * n, c, c + n, 1};
  }
  void sync() {}
};

}  // namespace

template <class T>
void diff_forward_cpu(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, T* traj, T* ckpt,
                      uint32_t* contacts, int threads) {
  validate_diff(spec, r, kDiffMaxBallsCpu);
  DiffArrays<T> a = diff_arrays(spec, r, in);
  a.traj = traj;
  a.ckpt = ckpt;
  a.contacts = contacts;
  const auto obstacles = kernel_obstacles<T>(spec);
  const StepParams<T> p = step_params<T>(spec, obstacles.data());
  const int n = static_cast<int>(spec.num_balls);
  parallel_for(spec.num_scenes, threads, [&](int64_t s0, int64_t s1) {
    Locals<T> loc(n);
    for (int64_t s = s0; s < s1; ++s) diff_scene_forward(n, a, p, s, loc.l);
  });
}

template <class T>
void diff_backward_cpu(const WorldSpec& spec, const DiffRollout& r, const DiffInputs<T>& in, const T* ckpt,
                       const uint32_t* contacts, const T* traj_bar, const DiffGrads<T>& g, int threads) {
  validate_diff(spec, r, kDiffMaxBallsCpu);
  DiffArrays<T> a = diff_backward_arrays(spec, r, in, ckpt, contacts, traj_bar, g, "diff_backward_cpu");
  // one segment of states per scene, in the same layout as on the GPU (NaN until written: a
  // state read before it is stored shows in the gradients)
  std::vector<T> scratch(static_cast<size_t>(a.k) * 4 * spec.num_bodies(), std::numeric_limits<T>::quiet_NaN());
  a.scratch = scratch.data();
  const auto obstacles = kernel_obstacles<T>(spec);
  const StepParams<T> p = step_params<T>(spec, obstacles.data());
  const int n = static_cast<int>(spec.num_balls);
  parallel_for(spec.num_scenes, threads, [&](int64_t s0, int64_t s1) {
    CpuTeam<T> team(n);
    for (int64_t s = s0; s < s1; ++s) diff_scene_backward(n, a, p, s, team);
  });
}

template void diff_forward_cpu(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, float*, float*,
                               uint32_t*, int);
template void diff_forward_cpu(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, double*, double*,
                               uint32_t*, int);
template void diff_backward_cpu(const WorldSpec&, const DiffRollout&, const DiffInputs<float>&, const float*,
                                const uint32_t*, const float*, const DiffGrads<float>&, int);
template void diff_backward_cpu(const WorldSpec&, const DiffRollout&, const DiffInputs<double>&, const double*,
                                const uint32_t*, const double*, const DiffGrads<double>&, int);

}  // namespace npe::gpu
