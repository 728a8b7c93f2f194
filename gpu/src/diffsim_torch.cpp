// The differentiable simulator as a torch::autograd::Function: tensors are turned into the
// engine layout ([field][ball][scene]), the CPU or CUDA sweeps of diffsim.h run, and the
// gradients are turned back.
#include "npe/gpu/diffsim_torch.h"

#include <string>

#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"

namespace npe::gpu {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

std::string shape(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t d = 0; d < sizes.size(); ++d) s += (d ? ", " : "") + std::to_string(sizes[d]);
  return s + "]";
}

void expect_shape(const torch::Tensor& t, c10::IntArrayRef want, const char* name) {
  if (!t.defined()) throw Error(std::string(name) + ": expected a tensor, found none");
  if (t.sizes() != want)
    throw Error(std::string(name) + ": expected shape " + shape(want) + ", found " + shape(t.sizes()));
}

// [S, N, F] -> engine layout [F][N][S] (contiguous)
torch::Tensor to_engine(const torch::Tensor& t) { return t.permute({2, 1, 0}).contiguous(); }

// [S, frames, N, F] <-> [frames][F][N][S]
torch::Tensor seq_to_engine(const torch::Tensor& t) { return t.permute({1, 3, 2, 0}).contiguous(); }
torch::Tensor seq_from_engine(const torch::Tensor& t) { return t.permute({3, 0, 2, 1}); }

// c = 2 zeta(e) omega with zeta(e) = -ln e / sqrt(pi^2 + ln^2 e) (engine.h damping_ratio), in
// torch ops so that autograd carries the gradient from c back to the restitution e. Computed in
// float64 on the CPU whatever e's device (S values): CUDA's log rounds differently, and CPU and
// CUDA rollouts must start from the same c to give the same bits.
torch::Tensor dashpot_tensor(const torch::Tensor& e, double omega) {
  const auto l = torch::log(e.to(torch::kCPU, torch::kFloat64));
  return (-l / torch::sqrt(M_PI * M_PI + l * l) * (2.0 * omega)).to(e.device(), e.scalar_type());
}

// What backward needs of the spec, as values autograd can keep: box, omega, gravity, dt, ramp (a double
// tensor), substeps, sizes, and the obstacles as a [K, 7] double tensor.
void save_spec(AutogradContext* ctx, const WorldSpec& s) {
  ctx->saved_data["specd"] = torch::tensor(
      {s.width, s.height, s.contact_omega, s.gravity_x, s.gravity_y, s.frame_dt, s.contact_ramp}, torch::kFloat64);
  ctx->saved_data["substeps"] = static_cast<int64_t>(s.substeps);
  ctx->saved_data["S"] = s.num_scenes;
  ctx->saved_data["N"] = s.num_balls;
  torch::Tensor ob = torch::zeros({static_cast<int64_t>(s.obstacles.size()), 7}, torch::kFloat64);
  for (size_t k = 0; k < s.obstacles.size(); ++k) {
    const Obstacle& o = s.obstacles[k];
    const double v[7] = {o.kind == Obstacle::Kind::kCapsule ? 0.0 : 1.0, o.ax, o.ay, o.bx, o.by, o.radius, o.angle};
    for (int j = 0; j < 7; ++j) ob[static_cast<int64_t>(k)][j] = v[j];
  }
  ctx->saved_data["obstacles"] = ob;
}
WorldSpec load_spec(AutogradContext* ctx) {
  WorldSpec s;
  const auto d = ctx->saved_data["specd"].toTensor();
  const double* v = d.data_ptr<double>();
  s.width = v[0], s.height = v[1], s.contact_omega = v[2], s.gravity_x = v[3], s.gravity_y = v[4], s.frame_dt = v[5],
  s.contact_ramp = v[6];
  s.substeps = static_cast<int>(ctx->saved_data["substeps"].toInt());
  s.num_scenes = ctx->saved_data["S"].toInt();
  s.num_balls = ctx->saved_data["N"].toInt();
  s.radius.assign(static_cast<size_t>(s.num_bodies()), 1.0);
  s.mass.assign(static_cast<size_t>(s.num_bodies()), 1.0);
  const auto ob = ctx->saved_data["obstacles"].toTensor();
  for (int64_t k = 0; k < ob.size(0); ++k) {
    const double* o = ob[k].data_ptr<double>();
    Obstacle x;
    x.kind = o[0] == 0.0 ? Obstacle::Kind::kCapsule : Obstacle::Kind::kBox;
    x.ax = o[1], x.ay = o[2], x.bx = o[3], x.by = o[4], x.radius = o[5], x.angle = o[6];
    s.obstacles.push_back(x);
  }
  return s;
}

struct Simulate : public torch::autograd::Function<Simulate> {
  // inputs in the engine layout: init [4][N][S], mass/radius [N][S], damping [S], controls
  // [frames][2][N][S] or an empty tensor
  static tensor_list forward(AutogradContext* ctx, torch::Tensor init, torch::Tensor mass, torch::Tensor radius,
                             torch::Tensor damping, torch::Tensor controls, const WorldSpec& spec, int64_t frames,
                             int64_t k) {
    DiffRollout r;
    r.frames = static_cast<int>(frames);
    r.checkpoint_every = static_cast<int>(k);
    const int64_t n = spec.num_bodies();
    auto opts = init.options();
    torch::Tensor traj = torch::empty({frames + 1, 4, spec.num_balls, spec.num_scenes}, opts);
    torch::Tensor ckpt = torch::empty({r.num_checkpoints(spec), 4, n}, opts);
    // the contact words, uint32 bits kept in an int32 tensor
    torch::Tensor words = torch::empty({r.num_contact_words(spec)}, opts.dtype(torch::kInt32));
    auto* words_ptr = reinterpret_cast<uint32_t*>(words.data_ptr<int32_t>());
    const bool has_controls = controls.numel() > 0;
    AT_DISPATCH_FLOATING_TYPES(init.scalar_type(), "npe::gpu::simulate", [&] {
      const DiffInputs<scalar_t> in{init.data_ptr<scalar_t>(), mass.data_ptr<scalar_t>(), radius.data_ptr<scalar_t>(),
                                    damping.data_ptr<scalar_t>(),
                                    has_controls ? controls.data_ptr<scalar_t>() : nullptr};
      if (init.is_cuda())
        diff_forward_cuda(spec, r, in, traj.data_ptr<scalar_t>(), ckpt.data_ptr<scalar_t>(), words_ptr, nullptr);
      else
        diff_forward_cpu(spec, r, in, traj.data_ptr<scalar_t>(), ckpt.data_ptr<scalar_t>(), words_ptr, 0);
    });
    ctx->save_for_backward({init, mass, radius, damping, controls, ckpt, words});
    save_spec(ctx, spec);
    ctx->saved_data["frames"] = frames;
    ctx->saved_data["k"] = k;
    return {traj};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &init = saved[0], &mass = saved[1], &radius = saved[2], &damping = saved[3],
                        &controls = saved[4], &ckpt = saved[5], &words = saved[6];
    const auto* words_ptr = reinterpret_cast<const uint32_t*>(words.data_ptr<int32_t>());
    const WorldSpec spec = load_spec(ctx);
    DiffRollout r;
    r.frames = static_cast<int>(ctx->saved_data["frames"].toInt());
    r.checkpoint_every = static_cast<int>(ctx->saved_data["k"].toInt());
    const torch::Tensor traj_bar = grad_out[0].defined()
                                       ? grad_out[0].contiguous()
                                       : torch::zeros({r.frames + 1, 4, spec.num_balls, spec.num_scenes},
                                                      init.options());
    torch::Tensor g_init = torch::empty_like(init), g_mass = torch::empty_like(mass),
                  g_radius = torch::empty_like(radius), g_damping = torch::empty_like(damping),
                  g_controls = torch::empty_like(controls);
    const bool has_controls = controls.numel() > 0;
    AT_DISPATCH_FLOATING_TYPES(init.scalar_type(), "npe::gpu::simulate backward", [&] {
      const DiffInputs<scalar_t> in{init.data_ptr<scalar_t>(), mass.data_ptr<scalar_t>(), radius.data_ptr<scalar_t>(),
                                    damping.data_ptr<scalar_t>(),
                                    has_controls ? controls.data_ptr<scalar_t>() : nullptr};
      const DiffGrads<scalar_t> g{g_init.data_ptr<scalar_t>(), g_mass.data_ptr<scalar_t>(),
                                  g_radius.data_ptr<scalar_t>(), g_damping.data_ptr<scalar_t>(),
                                  has_controls ? g_controls.data_ptr<scalar_t>() : nullptr};
      if (init.is_cuda()) {
        torch::Tensor scratch = torch::empty({static_cast<int64_t>(r.resolved_k(spec)) * 4 * spec.num_bodies()},
                                             init.options());
        diff_backward_cuda(spec, r, in, ckpt.data_ptr<scalar_t>(), words_ptr, traj_bar.data_ptr<scalar_t>(), g,
                           scratch.data_ptr<scalar_t>(), nullptr);
      } else {
        diff_backward_cpu(spec, r, in, ckpt.data_ptr<scalar_t>(), words_ptr, traj_bar.data_ptr<scalar_t>(), g, 0);
      }
    });
    return {g_init,          g_mass,          g_radius,       g_damping, has_controls ? g_controls : torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor simulate(const WorldSpec& spec_in, const torch::Tensor& initial_state, const SimParams& params,
                       const torch::Tensor& controls, int frames, int checkpoint_every) {
  if (!initial_state.defined() || initial_state.dim() != 3)
    throw Error("initial_state: expected a tensor [scenes, balls, 4], found " +
                (initial_state.defined() ? shape(initial_state.sizes()) : std::string("none")));
  const int64_t S = initial_state.size(0), N = initial_state.size(1);
  expect_shape(initial_state, {S, N, 4}, "initial_state");
  expect_shape(params.mass, {S, N}, "params.mass");
  expect_shape(params.radius, {S, N}, "params.radius");
  expect_shape(params.restitution, {S}, "params.restitution");
  if (frames < 1) throw Error("frames: expected at least 1, found " + std::to_string(frames));
  if (controls.defined()) expect_shape(controls, {S, frames, N, 2}, "controls");
  const auto dtype = initial_state.scalar_type();
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
    throw Error(std::string("initial_state: expected float32 or float64, found ") + c10::toString(dtype));
  const auto device = initial_state.device();
  for (auto [t, name] : {std::pair<const torch::Tensor*, const char*>{&params.mass, "params.mass"},
                         {&params.radius, "params.radius"},
                         {&params.restitution, "params.restitution"},
                         {&controls, "controls"}}) {
    if (!t->defined()) continue;
    if (t->scalar_type() != dtype || t->device() != device)
      throw Error(std::string(name) + ": expected " + c10::toString(dtype) + " on " + device.str() +
                  " like initial_state, found " + c10::toString(t->scalar_type()) + " on " + t->device().str());
  }
  {
    torch::NoGradGuard g;
    if (!(params.restitution > 0).all().item<bool>() || !(params.restitution <= 1).all().item<bool>())
      throw Error("params.restitution: expected values in (0, 1]");
    if (!(params.mass > 0).all().item<bool>()) throw Error("params.mass: expected positive masses");
    if (!(params.radius > 0).all().item<bool>()) throw Error("params.radius: expected positive radii");
  }
  WorldSpec spec = spec_in;
  spec.num_scenes = S;
  spec.num_balls = N;
  spec.radius.assign(static_cast<size_t>(S * N), 1.0);  // unused by the simulator (params carry them)
  spec.mass.assign(static_cast<size_t>(S * N), 1.0);
  DiffRollout r;
  r.frames = frames;
  r.checkpoint_every = checkpoint_every;
  validate_diff(spec, r, device.is_cuda() ? kDiffMaxBallsCuda : kDiffMaxBallsCpu);
  const torch::Tensor damping = dashpot_tensor(params.restitution, spec.contact_omega);
  const torch::Tensor ctrl = controls.defined() ? seq_to_engine(controls) : torch::empty({0}, initial_state.options());
  const torch::Tensor traj = Simulate::apply(to_engine(initial_state), params.mass.t().contiguous(),
                                             params.radius.t().contiguous(), damping.contiguous(), ctrl, spec,
                                             static_cast<int64_t>(frames), static_cast<int64_t>(checkpoint_every))[0];
  return seq_from_engine(traj);  // [frames + 1][4][N][S] -> [S, frames + 1, N, 4]
}

}  // namespace npe::gpu
