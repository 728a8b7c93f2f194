// Gradient diagnostics of the control tasks (diagnostics.h).
#include "npe/control/diagnostics.h"

#include <cmath>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::control {
namespace {

using torch::Tensor;

Tensor flat_grad(const Tensor& loss, const std::vector<Tensor>& params) {
  const auto g = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/false, false, /*allow_unused=*/true);
  std::vector<Tensor> parts;
  for (size_t i = 0; i < g.size(); ++i)
    parts.push_back(g[i].defined() ? g[i].reshape(-1) : torch::zeros({params[i].numel()}, params[i].options()));
  return torch::cat(parts).to(torch::kFloat64);
}

}  // namespace

Tensor leave_one_out_centred(const Tensor& returns, int64_t group) {
  if (group < 2 || returns.dim() != 1 || returns.size(0) % group != 0)
    throw FieldError("group", fmt::format(": expected at least 2 dividing the {} returns, found {}",
                                          returns.dim() == 1 ? returns.size(0) : -1, group));
  const Tensor by_group = returns.reshape({-1, group});
  const Tensor others = (by_group.sum(1, true) - by_group) / static_cast<double>(group - 1);
  return (by_group - others).reshape(-1);
}

std::vector<HorizonGradient> gradient_vs_horizon(const TaskSpec& task, Agent& agent, const std::vector<int>& horizons,
                                                 int64_t num_envs, int batches, double gamma, uint64_t seed,
                                                 torch::Device device) {
  if (batches < 2) throw FieldError("batches", fmt::format(": expected at least 2 batches, found {}", batches));
  // every initial layout is played kSamplesPerLayout times: the score function's baseline for a
  // sample is the mean return of the layout's other samples (leave one out), which removes the
  // variance between layouts and keeps the estimate unbiased
  constexpr int64_t kSamplesPerLayout = 4;
  if (num_envs < batches * kSamplesPerLayout)
    throw FieldError("num_envs", fmt::format(": expected at least {} ({} per batch, {} batches), found {}",
                                             kSamplesPerLayout * batches, kSamplesPerLayout, batches, num_envs));
  const auto params = agent.policy_parameters();
  const torch::ScalarType dtype = params.front().scalar_type();
  const int64_t per = num_envs / batches / kSamplesPerLayout * kSamplesPerLayout;
  std::vector<HorizonGradient> out;
  for (const int k : horizons) {
    const int steps = task.kind == TaskKind::kBilliards ? 1 : k;
    std::vector<Tensor> first_order, score;
    for (int b = 0; b < batches; ++b) {
      torch::manual_seed(static_cast<int64_t>(seed + b));
      VecEnv env(task, per, device, seed + static_cast<uint64_t>(b), dtype);
      const Layouts drawn = sample_layouts(task, per / kSamplesPerLayout, env.generator(), dtype);
      Tensor obs = env.reset({drawn.position.repeat_interleave(kSamplesPerLayout, 0),
                              drawn.active.repeat_interleave(kSamplesPerLayout, 0),
                              drawn.goal.repeat_interleave(kSamplesPerLayout, 0)});
      Tensor ret = torch::zeros({per}, obs.options()), discount = torch::ones({per}, obs.options());
      Tensor alive = torch::ones({per}, obs.options());
      Tensor logp_sum = torch::zeros({per}, obs.options());
      for (int t = 0; t < steps; ++t) {
        // the policy's reparameterised sample, as Agent::sample draws it
        const auto [mean, log_std] = agent.distribution(obs);
        const Tensor u = mean + log_std.exp() * torch::randn_like(mean);
        const StepResult r = env.step(torch::tanh(u));
        ret = ret + discount * alive * r.reward;
        // the score function: d log pi / d parameters at the sample taken, state and sample held
        // fixed. Written on the Gaussian of u (the squash's Jacobian does not depend on the
        // parameters), not on tanh(u), whose inverse is lost where the action rounds to +-1.
        const auto [m0, s0] = agent.distribution(obs.detach());
        logp_sum = logp_sum + alive * (-0.5 * ((u.detach() - m0) / s0.exp()).pow(2) - s0).sum(1);
        alive = alive * (1 - (r.terminated | r.truncated).to(obs.scalar_type()));
        discount = discount * gamma;
        obs = r.obs;
      }
      first_order.push_back(flat_grad(ret.mean(), params));
      const Tensor centred = leave_one_out_centred(ret.detach(), kSamplesPerLayout);
      score.push_back(flat_grad((centred * logp_sum).mean(), params));
    }
    const Tensor g = torch::stack(first_order), s = torch::stack(score);
    const Tensor gm = g.mean(0), sm = s.mean(0);
    HorizonGradient h;
    h.horizon = k;
    h.norm = gm.norm().item<double>();
    h.variance = static_cast<double>(per) * (g - gm).pow(2).sum(1).mean().item<double>();
    h.score_norm = sm.norm().item<double>();
    auto cos = [](const Tensor& a, const Tensor& b) {
      return (a.dot(b) / (a.norm() * b.norm() + 1e-300)).item<double>();
    };
    // across halves of the batches: the two estimates from the same samples share their noise,
    // which would lift their cosine
    const int64_t half = batches / 2;
    const Tensor ga = g.slice(0, 0, half).mean(0), gb = g.slice(0, half).mean(0);
    const Tensor sa = s.slice(0, 0, half).mean(0), sb = s.slice(0, half).mean(0);
    h.cosine = 0.5 * (cos(ga, sb) + cos(gb, sa));
    h.first_order_self = cos(ga, gb);
    h.score_self = cos(sa, sb);
    out.push_back(h);
    if (task.kind == TaskKind::kBilliards) break;  // one step: every horizon is the same
  }
  return out;
}

std::vector<ShotSample> shot_landscape(const TaskSpec& task, const Layouts& layouts, double speed, int points) {
  if (task.kind != TaskKind::kBilliards) throw FieldError("task", ": the shot landscape is the billiards task's");
  if (points < 2) throw FieldError("points", fmt::format(": expected at least 2 angles, found {}", points));
  const int64_t n = layouts.position.size(0);
  const auto o = layouts.position.options();
  VecEnv env(task, n * points, layouts.position.device(), 0, layouts.position.scalar_type());
  env.reset({layouts.position.repeat_interleave(points, 0), layouts.active.repeat_interleave(points, 0),
             layouts.goal.repeat_interleave(points, 0)});
  const Tensor angle =
      (torch::arange(points, o) * (2 * M_PI / points)).repeat({n}).requires_grad_(true);  // [n * points]
  const Tensor action = torch::stack({torch::cos(angle), torch::sin(angle)}, 1) * speed;
  const StepResult r = env.step(action);
  r.reward.sum().backward();
  const Tensor rew = r.reward.detach().cpu().to(torch::kFloat64), slope = angle.grad().cpu().to(torch::kFloat64);
  const Tensor ok = r.success.cpu(), a = angle.detach().cpu().to(torch::kFloat64);
  std::vector<ShotSample> out;
  for (int64_t i = 0; i < n * points; ++i)
    out.push_back(
        {i / points, a[i].item<double>(), rew[i].item<double>(), slope[i].item<double>(), ok[i].item<bool>()});
  return out;
}

}  // namespace npe::control
