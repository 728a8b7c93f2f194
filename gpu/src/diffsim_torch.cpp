// The differentiable simulator as PyTorch operators (TORCH_LIBRARY namespace "npe"), CPU and
// CUDA, float32 and float64, with autograd registered in C++ so that C++ and Python callers share
// one path:
//   npe::simulate           the rollout; its Autograd kernel records the adjoint below
//   npe::simulate_forward   the rollout plus what the adjoint needs (checkpoints, contact words)
//   npe::simulate_backward  the hand-written adjoint (npe/gpu/diffsim.h)
// Tensors are turned into the engine layout ([field][ball][scene]) and back here. Nothing waits
// for the device: no value is read back, CUDA work is queued on PyTorch's current stream and the
// obstacles are copied there from pinned memory. Fake (meta) kernels, for torch.compile, are
// registered by the Python package (python/npe/_ops.py), which must be kept in step with the
// shapes below.
#include "npe/gpu/diffsim_torch.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

#include "engine_internal.h"
#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"

#ifdef NPE_CUDA_OPS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace npe::gpu {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptTensor = c10::optional<Tensor>;

std::string shape(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t d = 0; d < sizes.size(); ++d) s += (d ? ", " : "") + std::to_string(sizes[d]);
  return s + "]";
}

void expect_shape(const Tensor& t, c10::IntArrayRef want, const char* name, const char* what) {
  TORCH_CHECK_VALUE(t.sizes() == want, "npe.simulate: ", name, ": expected shape ", shape(want), " (", what,
                    "), found ", shape(t.sizes()));
}

// One call's spec and rollout, checked. `x0` [S, N, 4] fixes S, N, the dtype and the device.
struct Call {
  WorldSpec spec;
  DiffRollout rollout;
};

Call prepare(const Tensor& x0, const Tensor& mass, const Tensor& radius, const Tensor& restitution,
             const OptTensor& controls, c10::ArrayRef<double> world, c10::ArrayRef<double> obstacles, int64_t substeps,
             int64_t frames, int64_t checkpoint_every) {
  TORCH_CHECK_VALUE(x0.dim() == 3 && x0.size(2) == 4,
                    "npe.simulate: initial_state: expected shape [scenes, balls, 4] (x, y in px, vx, vy in px/s), "
                    "found ",
                    shape(x0.sizes()));
  const auto dtype = x0.scalar_type();
  TORCH_CHECK_TYPE(dtype == torch::kFloat32 || dtype == torch::kFloat64,
                   "npe.simulate: initial_state: expected float32 or float64, found ", dtype);
  const int64_t S = x0.size(0), N = x0.size(1);
  TORCH_CHECK_VALUE(S >= 1 && N >= 1, "npe.simulate: initial_state: expected at least one scene and one ball, found ",
                    shape(x0.sizes()));
  const std::pair<const Tensor*, const char*> args[] = {{&mass, "mass"},
                                                        {&radius, "radius"},
                                                        {&restitution, "restitution"},
                                                        {controls ? &*controls : nullptr, "controls"}};
  for (const auto& [t, name] : args) {
    if (!t) continue;
    TORCH_CHECK_TYPE(t->scalar_type() == dtype, "npe.simulate: ", name, ": expected ", dtype,
                     " like initial_state, found ", t->scalar_type());
    TORCH_CHECK_VALUE(t->device() == x0.device(), "npe.simulate: ", name, ": expected a tensor on ", x0.device(),
                      " like initial_state, found one on ", t->device());
  }
  expect_shape(mass, {S, N}, "mass", "scenes, balls");
  expect_shape(radius, {S, N}, "radius", "scenes, balls; px");
  expect_shape(restitution, {S}, "restitution", "scenes");
  TORCH_CHECK_VALUE(frames >= 1 && frames <= (int64_t{1} << 30), "npe.simulate: frames: expected 1 to 2^30, found ",
                    frames);
  if (controls) expect_shape(*controls, {S, frames, N, 2}, "controls", "scenes, frames, balls, 2; mass px/s^2");
  TORCH_CHECK_VALUE(world.size() == 7,
                    "npe.simulate: world: expected 7 numbers (width, height, contact_omega, contact_ramp, gravity_x, "
                    "gravity_y, frame_dt), found ",
                    world.size());
  TORCH_CHECK_VALUE(obstacles.size() % 7 == 0,
                    "npe.simulate: obstacles: expected 7 numbers per obstacle (kind 0 capsule / 1 box, ax, ay, bx, by, "
                    "radius, angle), found ",
                    obstacles.size());
  TORCH_CHECK_VALUE(substeps >= 1 && substeps <= (int64_t{1} << 24),
                    "npe.simulate: substeps: expected 1 to 2^24 substeps per frame, found ", substeps);
  TORCH_CHECK_VALUE(checkpoint_every >= 0 && checkpoint_every <= (int64_t{1} << 30),
                    "npe.simulate: checkpoint_every: expected 0 (one state per frame) to 2^30 substeps, found ",
                    checkpoint_every);
  Call c;
  WorldSpec& s = c.spec;
  s.num_scenes = S;
  s.num_balls = N;
  s.width = world[0], s.height = world[1], s.contact_omega = world[2], s.contact_ramp = world[3];
  s.gravity_x = world[4], s.gravity_y = world[5], s.frame_dt = world[6];
  s.substeps = static_cast<int>(substeps);
  for (size_t k = 0; k < obstacles.size(); k += 7) {
    const double* o = obstacles.data() + k;
    TORCH_CHECK_VALUE(o[0] == 0.0 || o[0] == 1.0, "npe.simulate: obstacles[", k / 7,
                      "]: expected kind 0 (capsule) or 1 (box), found ", o[0]);
    Obstacle x;
    x.kind = o[0] == 0.0 ? Obstacle::Kind::kCapsule : Obstacle::Kind::kBox;
    x.ax = o[1], x.ay = o[2], x.bx = o[3], x.by = o[4], x.radius = o[5], x.angle = o[6];
    s.obstacles.push_back(x);
  }
  // The simulator takes radii, masses and restitution from the tensors; the spec's stand-ins
  // (one unit-radius ball, elastic) only let the engine's own checks of the box, the contact law
  // and the obstacles run.
  s.radius.assign(static_cast<size_t>(s.num_bodies()), 0.0);
  s.mass.assign(static_cast<size_t>(s.num_bodies()), 1.0);
  c.rollout.frames = static_cast<int>(frames);
  c.rollout.checkpoint_every = static_cast<int>(checkpoint_every);
  // the backward pass's scratch holds checkpoint_every substeps: no more than the rollout has
  TORCH_CHECK_VALUE(checkpoint_every <= frames * substeps,
                    "npe.simulate: checkpoint_every: expected 0 (one state per frame) to frames * substeps = ",
                    frames * substeps, " substeps, found ", checkpoint_every);
  try {
    WorldSpec probe = s;
    probe.num_scenes = probe.num_balls = 1;
    probe.radius.assign(1, std::min(1.0, 0.25 * std::min(s.width, s.height)));
    probe.mass.assign(1, 1.0);
    validate(probe);
    validate_diff(s, c.rollout, x0.is_cuda() ? kDiffMaxBallsCuda : kDiffMaxBallsCpu);
  } catch (const Error& e) {
    TORCH_CHECK_VALUE(false, "npe.simulate: ", e.what());
  }
  return c;
}

// [S, N, F] -> engine layout [F][N][S]; [S, frames, N, F] <-> [frames][F][N][S]
Tensor to_engine(const Tensor& t) { return t.permute({2, 1, 0}).contiguous(); }
Tensor seq_to_engine(const Tensor& t) { return t.permute({1, 3, 2, 0}).contiguous(); }
Tensor seq_from_engine(const Tensor& t) { return t.permute({3, 0, 2, 1}); }

// The obstacles in the kernels' form, on the tensors' device (CUDA: copied from pinned memory on
// the current stream, without waiting). Undefined when there are none or on the CPU.
template <class T>
Tensor device_obstacles(const WorldSpec& spec, const torch::Device& device) {
  if (spec.obstacles.empty() || !device.is_cuda()) return {};
  const auto host = detail::kernel_obstacles<T>(spec);
  const int64_t bytes = static_cast<int64_t>(host.size() * sizeof(host[0]));
  Tensor pinned = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
  std::memcpy(pinned.data_ptr(), host.data(), static_cast<size_t>(bytes));
  return pinned.to(device, /*non_blocking=*/true);
}

void* current_stream(const torch::Device& device) {
#ifdef NPE_CUDA_OPS
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
#else
  (void)device;
  TORCH_CHECK(false, "npe.simulate: npe was built without CUDA");
#endif
}

struct DeviceGuard {
#ifdef NPE_CUDA_OPS
  c10::cuda::OptionalCUDAGuard guard;
  explicit DeviceGuard(const torch::Device& d) {
    if (d.is_cuda()) guard.set_device(d);
  }
#else
  explicit DeviceGuard(const torch::Device&) {}
#endif
};

// The inputs in the engine layout (initial state [4][N][S], masses and radii [N][S], controls
// [frames][2][N][S]), the restitution and its dashpot constant [S], and the obstacles on the
// device; `slope` (dc/de) when asked for.
struct EngineInputs {
  Tensor init, mass, radius, controls, restitution, damping, slope, obstacles;

  EngineInputs(const WorldSpec& spec, const Tensor& x0, const Tensor& m, const Tensor& r, const Tensor& e,
               const OptTensor& u, bool with_slope)
      : init(to_engine(x0)),
        mass(m.t().contiguous()),
        radius(r.t().contiguous()),
        controls(u ? seq_to_engine(*u) : Tensor()),
        restitution(e.contiguous()),
        damping(torch::empty({spec.num_scenes}, x0.options())),
        slope(with_slope ? torch::empty({spec.num_scenes}, x0.options()) : Tensor()) {}

  // Computes the dashpot constants (and slopes) and returns the simulator's view of the inputs.
  template <class T>
  DiffInputs<T> prepare(const WorldSpec& spec, void* stream) {
    T* sl = slope.defined() ? slope.data_ptr<T>() : nullptr;
    if (init.is_cuda()) {
      obstacles = device_obstacles<T>(spec, init.device());
      dashpot_cuda(restitution.data_ptr<T>(), damping.data_ptr<T>(), sl, spec.num_scenes, spec.contact_omega, stream);
    } else {
      dashpot_cpu(restitution.data_ptr<T>(), damping.data_ptr<T>(), sl, spec.num_scenes, spec.contact_omega);
    }
    return {init.data_ptr<T>(),
            mass.data_ptr<T>(),
            radius.data_ptr<T>(),
            damping.data_ptr<T>(),
            controls.defined() ? controls.data_ptr<T>() : nullptr,
            obstacles.defined() ? obstacles.data_ptr() : nullptr};
  }
};

// The forward rollout. `for_backward`: also the checkpoints and contact words the adjoint needs;
// otherwise one checkpoint and no words (the engine's plain rollout, npe.advance).
std::tuple<Tensor, Tensor, Tensor> forward_impl(const Tensor& x0, const Tensor& mass, const Tensor& radius,
                                                const Tensor& restitution, const OptTensor& controls,
                                                c10::ArrayRef<double> world, c10::ArrayRef<double> obstacles,
                                                int64_t substeps, int64_t frames, int64_t k, bool for_backward) {
  Call c = prepare(x0, mass, radius, restitution, controls, world, obstacles, substeps, frames, k);
  const WorldSpec& spec = c.spec;
  DiffRollout& r = c.rollout;
  if (!for_backward) {
    const int64_t total = r.substeps_total(spec);
    r.checkpoint_every = total <= std::numeric_limits<int>::max() ? static_cast<int>(total) : 0;
  }
  const DeviceGuard guard(x0.device());
  const auto opts = x0.options();
  Tensor traj = torch::empty({frames + 1, 4, spec.num_balls, spec.num_scenes}, opts);
  Tensor ckpt = torch::empty({r.num_checkpoints(spec), 4, spec.num_bodies()}, opts);
  // the contact words: uint32 bits kept in an int32 tensor
  Tensor words = torch::empty({for_backward ? r.num_contact_words(spec) : 0}, opts.dtype(torch::kInt32));
  auto* words_ptr = for_backward ? reinterpret_cast<uint32_t*>(words.data_ptr<int32_t>()) : nullptr;
  EngineInputs a(spec, x0, mass, radius, restitution, controls, false);
  void* stream = x0.is_cuda() ? current_stream(x0.device()) : nullptr;
  AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "npe::simulate", [&] {
    const DiffInputs<scalar_t> in = a.prepare<scalar_t>(spec, stream);
    if (x0.is_cuda())
      diff_forward_cuda(spec, r, in, traj.data_ptr<scalar_t>(), ckpt.data_ptr<scalar_t>(), words_ptr, stream);
    else
      diff_forward_cpu(spec, r, in, traj.data_ptr<scalar_t>(), ckpt.data_ptr<scalar_t>(), words_ptr, 0);
  });
  return {seq_from_engine(traj), ckpt, words};
}

Tensor simulate_kernel(const Tensor& x0, const Tensor& mass, const Tensor& radius, const Tensor& restitution,
                       const OptTensor& controls, c10::ArrayRef<double> world, c10::ArrayRef<double> obstacles,
                       int64_t substeps, int64_t frames, int64_t k) {
  return std::get<0>(
      forward_impl(x0, mass, radius, restitution, controls, world, obstacles, substeps, frames, k, false));
}

std::tuple<Tensor, Tensor, Tensor> simulate_forward_kernel(const Tensor& x0, const Tensor& mass, const Tensor& radius,
                                                           const Tensor& restitution, const OptTensor& controls,
                                                           c10::ArrayRef<double> world, c10::ArrayRef<double> obstacles,
                                                           int64_t substeps, int64_t frames, int64_t k) {
  return forward_impl(x0, mass, radius, restitution, controls, world, obstacles, substeps, frames, k, true);
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> simulate_backward_kernel(
    const Tensor& traj_grad, const Tensor& x0, const Tensor& mass, const Tensor& radius, const Tensor& restitution,
    const OptTensor& controls, const Tensor& ckpt, const Tensor& words, c10::ArrayRef<double> world,
    c10::ArrayRef<double> obstacles, int64_t substeps, int64_t frames, int64_t k) {
  Call c = prepare(x0, mass, radius, restitution, controls, world, obstacles, substeps, frames, k);
  const WorldSpec& spec = c.spec;
  const DiffRollout& r = c.rollout;
  const int64_t S = spec.num_scenes, N = spec.num_balls;
  expect_shape(traj_grad, {S, frames + 1, N, 4}, "trajectory_grad", "scenes, frames + 1, balls, 4");
  expect_shape(ckpt, {r.num_checkpoints(spec), 4, S * N}, "checkpoints", "from npe::simulate_forward");
  expect_shape(words, {r.num_contact_words(spec)}, "contact_words", "from npe::simulate_forward");
  TORCH_CHECK_TYPE(traj_grad.scalar_type() == x0.scalar_type() && ckpt.scalar_type() == x0.scalar_type() &&
                       words.scalar_type() == torch::kInt32,
                   "npe.simulate_backward: expected trajectory_grad and checkpoints of ", x0.scalar_type(),
                   " and int32 contact words, found ", traj_grad.scalar_type(), ", ", ckpt.scalar_type(), ", ",
                   words.scalar_type());
  for (const Tensor* t : {&traj_grad, &ckpt, &words})
    TORCH_CHECK_VALUE(t->device() == x0.device(), "npe.simulate_backward: expected every tensor on ", x0.device(),
                      ", found one on ", t->device());
  const DeviceGuard guard(x0.device());
  const auto opts = x0.options();
  const Tensor traj_bar = seq_to_engine(traj_grad);  // [S, F + 1, N, 4] -> [F + 1][4][N][S]
  EngineInputs a(spec, x0, mass, radius, restitution, controls, true);
  const bool has_controls = a.controls.defined();
  Tensor g_init = torch::empty({4, N, S}, opts), g_mass = torch::empty({N, S}, opts),
         g_radius = torch::empty({N, S}, opts), g_damping = torch::empty({S}, opts),
         g_ctrl = torch::empty({has_controls ? frames : 0, 2, N, S}, opts);
  const Tensor wc = words.contiguous(), ck = ckpt.contiguous();  // kept alive for the kernels
  const auto* w = reinterpret_cast<const uint32_t*>(wc.data_ptr<int32_t>());
  void* stream = x0.is_cuda() ? current_stream(x0.device()) : nullptr;
  AT_DISPATCH_FLOATING_TYPES(x0.scalar_type(), "npe::simulate_backward", [&] {
    const DiffInputs<scalar_t> in = a.prepare<scalar_t>(spec, stream);
    const DiffGrads<scalar_t> g{g_init.data_ptr<scalar_t>(), g_mass.data_ptr<scalar_t>(), g_radius.data_ptr<scalar_t>(),
                                g_damping.data_ptr<scalar_t>(), has_controls ? g_ctrl.data_ptr<scalar_t>() : nullptr};
    if (x0.is_cuda()) {
      Tensor scratch = torch::empty({static_cast<int64_t>(r.resolved_k(spec)) * 4 * spec.num_bodies()}, opts);
      diff_backward_cuda(spec, r, in, ck.data_ptr<scalar_t>(), w, traj_bar.data_ptr<scalar_t>(), g,
                         scratch.data_ptr<scalar_t>(), stream);
    } else {
      diff_backward_cpu(spec, r, in, ck.data_ptr<scalar_t>(), w, traj_bar.data_ptr<scalar_t>(), g, 0);
    }
  });
  // back to the callers' layouts; the restitution's gradient through dc/de
  return {g_init.permute({2, 1, 0}), g_mass.t(), g_radius.t(), g_damping * a.slope,
          has_controls ? seq_from_engine(g_ctrl) : g_ctrl.view({0})};
}

const auto& forward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("npe::simulate_forward", "")
                             .typed<decltype(simulate_forward_kernel)>();
  return op;
}
const auto& backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("npe::simulate_backward", "")
                             .typed<decltype(simulate_backward_kernel)>();
  return op;
}
const auto& simulate_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("npe::simulate", "").typed<decltype(simulate_kernel)>();
  return op;
}

// Autograd: forward through npe::simulate_forward, backward through npe::simulate_backward, both
// called through the dispatcher so that torch.compile traces them as opaque operators.
struct SimulateFunction : public torch::autograd::Function<SimulateFunction> {
  // `controls` is a placeholder (x0) when `has_controls` is false: autograd::Function takes no
  // undefined inputs, and under torch.compile its sizes are symbolic (no numel() test).
  static variable_list forward(AutogradContext* ctx, const Tensor& x0, const Tensor& mass, const Tensor& radius,
                               const Tensor& restitution, const Tensor& controls, bool has_controls,
                               std::vector<double> world, std::vector<double> obstacles, int64_t substeps,
                               int64_t frames, int64_t k) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const OptTensor ctrl = has_controls ? OptTensor(controls) : c10::nullopt;
    auto [traj, ckpt, words] = forward_op().call(x0, mass, radius, restitution, ctrl, world, obstacles, substeps,
                                                 frames, k);
    ctx->save_for_backward({x0, mass, radius, restitution, controls, ckpt, words});
    ctx->saved_data["has_controls"] = has_controls;
    ctx->saved_data["world"] = world;
    ctx->saved_data["obstacles"] = obstacles;
    ctx->saved_data["substeps"] = substeps;
    ctx->saved_data["frames"] = frames;
    ctx->saved_data["k"] = k;
    return {traj};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& x0 = saved[0];
    const bool has_controls = ctx->saved_data["has_controls"].toBool();
    const int64_t frames = ctx->saved_data["frames"].toInt();
    const Tensor traj_grad = grad_out[0].defined()
                                 ? grad_out[0]
                                 : at::zeros_symint({x0.sym_size(0), frames + 1, x0.sym_size(1), 4}, x0.options());
    const auto world = ctx->saved_data["world"].toDoubleVector();
    const auto obstacles = ctx->saved_data["obstacles"].toDoubleVector();
    const OptTensor ctrl = has_controls ? OptTensor(saved[4]) : c10::nullopt;
    auto [g_x0, g_mass, g_radius, g_e, g_ctrl] = backward_op().call(
        traj_grad, x0, saved[1], saved[2], saved[3], ctrl, saved[5], saved[6], world, obstacles,
        ctx->saved_data["substeps"].toInt(), frames, ctx->saved_data["k"].toInt());
    return {g_x0,     g_mass,   g_radius, g_e,     has_controls ? g_ctrl : Tensor(), Tensor(), Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor simulate_autograd(const Tensor& x0, const Tensor& mass, const Tensor& radius, const Tensor& restitution,
                         const OptTensor& controls, c10::ArrayRef<double> world, c10::ArrayRef<double> obstacles,
                         int64_t substeps, int64_t frames, int64_t k) {
  bool needs_grad = false;
  for (const Tensor* t : {&x0, &mass, &radius, &restitution}) needs_grad |= t->requires_grad();
  if (controls) needs_grad |= controls->requires_grad();
  if (!needs_grad || !torch::GradMode::is_enabled()) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return simulate_op().call(x0, mass, radius, restitution, controls, world, obstacles, substeps, frames, k);
  }
  return SimulateFunction::apply(x0, mass, radius, restitution, controls ? *controls : x0, controls.has_value(),
                                 world.vec(), obstacles.vec(), substeps, frames, k)[0];
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(npe, m) {
  const char* args =
      "(Tensor initial_state, Tensor mass, Tensor radius, Tensor restitution, Tensor? controls, float[] world, "
      "float[] obstacles, int substeps, int frames, int checkpoint_every=0)";
  m.def((std::string("simulate") + args + " -> Tensor").c_str());
  m.def((std::string("simulate_forward") + args + " -> (Tensor trajectory, Tensor checkpoints, Tensor contact_words)")
            .c_str());
  m.def(
      "simulate_backward(Tensor trajectory_grad, Tensor initial_state, Tensor mass, Tensor radius, Tensor "
      "restitution, Tensor? controls, Tensor checkpoints, Tensor contact_words, float[] world, float[] obstacles, int "
      "substeps, int frames, int checkpoint_every) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(npe, CPU, m) {
  m.impl("simulate", &simulate_kernel);
  m.impl("simulate_forward", &simulate_forward_kernel);
  m.impl("simulate_backward", &simulate_backward_kernel);
}

#ifdef NPE_CUDA_OPS
TORCH_LIBRARY_IMPL(npe, CUDA, m) {
  m.impl("simulate", &simulate_kernel);
  m.impl("simulate_forward", &simulate_forward_kernel);
  m.impl("simulate_backward", &simulate_backward_kernel);
}
#endif

// simulate's gradient through the adjoint; the other two have none of their own (a double backward
// through simulate raises when it reaches simulate_backward instead of returning zeros)
TORCH_LIBRARY_IMPL(npe, Autograd, m) {
  m.impl("simulate", &simulate_autograd);
  m.impl("simulate_forward", torch::autograd::autogradNotImplementedFallback());
  m.impl("simulate_backward", torch::autograd::autogradNotImplementedFallback());
}

std::vector<double> simulate_world(const WorldSpec& s) {
  return {s.width, s.height, s.contact_omega, s.contact_ramp, s.gravity_x, s.gravity_y, s.frame_dt};
}

std::vector<double> simulate_obstacles(const WorldSpec& s) {
  std::vector<double> v;
  for (const Obstacle& o : s.obstacles) {
    const double row[7] = {o.kind == Obstacle::Kind::kCapsule ? 0.0 : 1.0, o.ax, o.ay, o.bx, o.by, o.radius, o.angle};
    v.insert(v.end(), row, row + 7);
  }
  return v;
}

torch::Tensor simulate_unchecked(const WorldSpec& spec, const torch::Tensor& initial_state, const SimParams& params,
                                 const torch::Tensor& controls, int frames, int checkpoint_every) {
  const OptTensor ctrl = controls.defined() ? OptTensor(controls) : c10::nullopt;
  return simulate_op().call(initial_state, params.mass, params.radius, params.restitution, ctrl, simulate_world(spec),
                            simulate_obstacles(spec), spec.substeps, frames, checkpoint_every);
}

torch::Tensor simulate(const WorldSpec& spec, const torch::Tensor& initial_state, const SimParams& params,
                       const torch::Tensor& controls, int frames, int checkpoint_every) {
  for (auto [t, name] : {std::pair<const torch::Tensor*, const char*>{&initial_state, "initial_state"},
                         {&params.mass, "params.mass"},
                         {&params.radius, "params.radius"},
                         {&params.restitution, "params.restitution"}})
    if (!t->defined()) throw Error(std::string(name) + ": expected a tensor, found none");
  try {
    {
      // The C++ API checks values (the operator does not: it reads nothing back from the device).
      torch::NoGradGuard g;
      if (params.restitution.sizes() == initial_state.sizes().slice(0, 1) &&
          (!(params.restitution > 0).all().item<bool>() || !(params.restitution <= 1).all().item<bool>()))
        throw Error("params.restitution: expected values in (0, 1]");
      if (params.mass.numel() > 0 && !(params.mass > 0).all().item<bool>())
        throw Error("params.mass: expected positive masses");
      if (params.radius.numel() > 0 && !(params.radius > 0).all().item<bool>())
        throw Error("params.radius: expected positive radii");
    }
    const OptTensor ctrl = controls.defined() ? OptTensor(controls) : c10::nullopt;
    return simulate_op().call(initial_state, params.mass, params.radius, params.restitution, ctrl, simulate_world(spec),
                              simulate_obstacles(spec), spec.substeps, frames, checkpoint_every);
  } catch (const c10::Error& e) {
    // the operator names its arguments; this API's are params.mass, params.radius, ...
    std::string m = e.what_without_backtrace();
    const std::string op = "npe.simulate: ";
    if (m.rfind(op, 0) == 0) m = m.substr(op.size());
    for (const char* p : {"mass", "radius", "restitution"})
      if (m.rfind(std::string(p) + ":", 0) == 0) m = "params." + m;
    throw Error(m);
  }
}

}  // namespace npe::gpu
