#include "npe/rollout/sysid.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "npe/core/io.h"
#include "npe/core/json.h"
#include "npe/gpu/diffsim.h"
#include "npe/gpu/diffsim_torch.h"
#include "npe/rollout/sim_rollout.h"
#include "npe/rollout/rollout.h"

namespace npe::rollout {

using datagen::kStateDim;
using gpu::WorldSpec;
using gpu::kDiffMaxBallsCpu;
using gpu::kDiffMaxBallsCuda;
using gpu::simulate;
using gpu::validate_diff;

double SysIdResult::classify(double m) const {
  double best = mass_choices.empty() ? m : mass_choices[0];
  for (double c : mass_choices)
    if (std::abs(std::log(m / c)) < std::abs(std::log(m / best))) best = c;
  return best;
}

SysIdResult::Summary SysIdResult::summary() const {
  Summary s;
  std::vector<double> rel;
  int64_t right = 0;
  for (int64_t i = 0; i < scenes; ++i)
    for (int64_t b = 0; b < num_balls; ++b) {
      if (!collides[i][b]) continue;
      ++s.balls;
      right += classify(estimate[i][b]) == classify(truth[i][b]);  // truth is the float32 feature
      rel.push_back(std::abs(estimate[i][b] - truth[i][b]) / truth[i][b]);
    }
  if (rel.empty()) return s;
  std::sort(rel.begin(), rel.end());
  s.accuracy = static_cast<double>(right) / s.balls;
  s.median_rel_error = rel[rel.size() / 2];
  s.p90_rel_error = rel[std::min(rel.size() - 1, rel.size() * 9 / 10)];
  return s;
}

nlohmann::json SysIdResult::to_json() const {
  const Summary s = summary();
  return {{"format", "npe-sysid"},
          {"scenes", scenes},
          {"num_balls", num_balls},
          {"mass_choices", mass_choices},
          {"truth", truth},
          {"estimate", estimate},
          {"restitution", restitution},
          {"collides", collides},
          {"loss", loss},
          {"loss_final", loss_final},
          {"seconds", seconds},
          {"summary",
           {{"balls_that_collide", s.balls},
            {"accuracy", s.accuracy},
            {"median_rel_error", s.median_rel_error},
            {"p90_rel_error", s.p90_rel_error}}}};
}

SysIdResult identify_masses(const datagen::Manifest& m, const datagen::Trajectories& obs, int64_t scenes,
                            const SysIdOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t N = obs.num_balls, T = obs.timesteps;
  // the simulator fits the masses: a world it cannot replay (walls per scene, friction) would be fit
  // without what moves its balls
  if (const std::string why = replay_unsupported(m); !why.empty())
    throw FieldError("dataset_prefix", fmt::format(": the engine cannot replay this dataset: {}", why));
  if (scenes < 1 || scenes > obs.scenes)
    throw FieldError("num_scenes",
                     fmt::format(": expected 1 to {} (scenes in the split), found {}", obs.scenes, scenes));
  if (o.window < 1 || o.window > T - 1)
    throw FieldError("window",
                     fmt::format(": expected 1 to {} frames (the dataset has {}), found {}", T - 1, T, o.window));
  if (o.iterations < 0) throw FieldError("iterations", fmt::format(": expected >= 0, found {}", o.iterations));
  if (!(o.lr > 0)) throw FieldError("lr", fmt::format(": expected > 0, found {}", o.lr));
  if (m.world.mass_choices.empty()) throw Error("sysid: the dataset's world has no mass choices");
  double m0 = o.initial_mass;
  if (m0 <= 0) {
    double l = 0;
    for (double c : m.world.mass_choices) l += std::log(c);
    m0 = std::exp(l / m.world.mass_choices.size());
  }
  // windows: starts 0, W, 2W, ... and a last one ending at frame T - 1
  std::vector<int64_t> starts;
  for (int64_t t = 0; t + o.window <= T - 1; t += o.window) starts.push_back(t);
  if (starts.back() + o.window < T - 1) starts.push_back(T - 1 - o.window);
  const int64_t W = static_cast<int64_t>(starts.size());
  // starts of every estimate: the initial mass, then each mass choice (the fit is not convex
  // where a different mass changes which balls meet; the start of least final loss wins)
  std::vector<double> start_mass{m0};
  if (o.restarts)
    for (double c : m.world.mass_choices) start_mass.push_back(c);
  const int64_t K = static_cast<int64_t>(start_mass.size());
  const int64_t P = scenes * N * K;  // problems (scene, focus, start)
  const int64_t B = P * W;           // simulated scenes: problem p, window w -> p * W + w

  WorldSpec spec = replay_spec(m, B);
  validate_diff(spec, {o.window, o.store_every}, o.device.is_cuda() ? kDiffMaxBallsCuda : kDiffMaxBallsCpu);
  // observed windows [B, window + 1, N, 4] in px, px/s, and the known masses [B, N]
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor all = torch::from_blob(const_cast<float*>(obs.data.data()), {obs.scenes, T, N, kStateDim},
                                       torch::kFloat32)
                          .narrow(0, 0, scenes)
                          .to(torch::kFloat64);
  const torch::Tensor scale = torch::tensor({m.pos_scale(), m.pos_scale(), m.vel_scale(), m.vel_scale()}, f64);
  std::vector<torch::Tensor> win;
  for (int64_t s : starts) win.push_back(all.narrow(1, s, o.window + 1));
  torch::Tensor windows = torch::stack(win, 1);  // [scenes, W, window + 1, N, 5]
  torch::Tensor target = (windows.narrow(-1, 0, 4) * scale)
                             .view({scenes, 1, 1, W, o.window + 1, N, 4})
                             .expand({scenes, N, K, W, o.window + 1, N, 4})
                             .reshape({B, o.window + 1, N, 4});
  torch::Tensor known = windows.select(2, 0)
                            .select(-1, 4)  // [scenes, W, N]
                            .view({scenes, 1, 1, W, N})
                            .expand({scenes, N, K, W, N})
                            .reshape({B, N});
  const torch::Tensor focus = torch::eye(N, f64).view({1, N, 1, 1, N}).expand({scenes, N, K, W, N}).reshape({B, N});

  const auto opt = torch::TensorOptions().dtype(o.dtype).device(o.device);
  target = target.to(opt);
  known = known.to(opt);
  const torch::Tensor onehot = focus.to(opt);
  const torch::Tensor init = target.select(1, 0).contiguous();
  const torch::Tensor radius = torch::full({B, N}, m.world.radius, opt);
  torch::Tensor theta = torch::tensor(start_mass, f64).log().repeat({scenes * N}).to(opt).requires_grad_(true);
  torch::Tensor u = torch::full({P}, std::log(0.9 / 0.1), opt).requires_grad_(true);  // e = sigmoid(u)
  const torch::Tensor e_world = torch::full({B}, m.world.restitution, opt);

  SysIdResult res;
  res.scenes = scenes;
  res.num_balls = N;
  res.mass_choices = m.world.mass_choices;
  auto loss_of = [&]() {
    const torch::Tensor mf = theta.exp().view({P, 1, 1}).expand({P, W, 1}).reshape({B, 1});
    const torch::Tensor mass = known * (1 - onehot) + mf * onehot;
    const torch::Tensor e = o.fit_restitution ? torch::sigmoid(u).view({P, 1}).expand({P, W}).reshape({B}) : e_world;
    const torch::Tensor traj = simulate(spec, init, {mass, radius, e}, {}, o.window, o.store_every);
    // per problem: squared position error summed over windows, frames and balls
    return (traj.narrow(-1, 0, 2) - target.narrow(-1, 0, 2)).pow(2).sum({1, 2, 3}).view({P, W}).sum(1);
  };
  torch::Tensor final_per;  // per-problem loss at the final estimates
  if (o.fit_restitution) {
    torch::optim::Adam adam({theta, u}, torch::optim::AdamOptions(o.lr));
    for (int it = 0; it <= o.iterations; ++it) {
      adam.zero_grad();
      const torch::Tensor per = loss_of();
      res.loss.push_back(per.mean().item<double>());
      final_per = per.detach();
      if (it == o.iterations) break;
      per.sum().backward();
      const double lr = o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * it / std::max(1, o.iterations))));
      for (auto& g : adam.param_groups()) g.options().set_lr(lr);
      adam.step();
    }
  } else {
    // One scalar theta per problem, each problem independent: a safeguarded secant (quasi-Newton)
    // iteration on every problem at once. A trial step is kept only where it lowers that
    // problem's loss; the next step is -g / c with the secant curvature c of the last two
    // gradients (capped at 1 in ln m), or, after a rejected step, the minimiser of the parabola
    // through L(theta), L'(theta) and L(theta + s), kept within [s/10, s/2].
    auto eval = [&](const torch::Tensor& th) {
      theta = th.detach().clone().requires_grad_(true);
      const torch::Tensor per = loss_of();
      per.sum().backward();
      return std::make_pair(per.detach(), theta.grad().detach().clone());
    };
    torch::Tensor th = theta.detach().clone();
    auto [L, g] = eval(th);
    torch::Tensor step = -o.lr * torch::sign(g);
    res.loss.push_back(L.mean().item<double>());
    for (int it = 0; it < o.iterations; ++it) {
      const torch::Tensor trial = th + step;
      auto [Lt, gt] = eval(trial);
      const torch::Tensor better = Lt < L;
      const torch::Tensor moving = step != 0;
      const torch::Tensor safe = torch::where(moving, step, torch::ones_like(step));
      const torch::Tensor c = (gt - g) / safe;
      const torch::Tensor next = torch::where(c > 0, -gt / torch::where(c > 0, c, torch::ones_like(c)),
                                              -torch::sign(gt) * 2 * step.abs())
                                     .clamp(-1.0, 1.0);
      const torch::Tensor denom = Lt - L - g * step;
      const torch::Tensor interp = torch::where(
          denom > 0, -g * step * step / (2 * torch::where(denom > 0, denom, torch::ones_like(denom))), step / 2);
      const torch::Tensor shrunk = torch::sign(step) * torch::clamp(interp.abs(), (step / 10).abs(), (step / 2).abs());
      th = torch::where(better, trial, th);
      L = torch::where(better, Lt, L);
      g = torch::where(better, gt, g);
      step = torch::where(moving, torch::where(better, next, shrunk), step);
      res.loss.push_back(L.mean().item<double>());
    }
    theta = th;
    final_per = L;
  }
  // the start of least final loss per (scene, focus); ties (a ball that touches nothing leaves
  // every start where it was) go to the first start
  const torch::Tensor final_loss = final_per.to(torch::kCPU, torch::kFloat64).view({scenes, N, K});
  const torch::Tensor best = final_loss.argmin(-1, /*keepdim=*/true);  // first minimum
  const torch::Tensor mhat =
      theta.detach().exp().to(torch::kCPU, torch::kFloat64).view({scenes, N, K}).gather(-1, best).squeeze(-1);
  const torch::Tensor ehat =
      torch::sigmoid(u.detach()).to(torch::kCPU, torch::kFloat64).view({scenes, N, K}).gather(-1, best).squeeze(-1);
  res.loss_final = final_loss.gather(-1, best).mean().item<double>();
  const double rn = m.world.radius / m.pos_scale();
  for (int64_t s = 0; s < scenes; ++s) {
    std::vector<double> t(N), e(N), r(N);
    for (int64_t b = 0; b < N; ++b) {
      t[b] = obs.frame(s, 0)[b * kStateDim + 4];
      e[b] = mhat[s][b].item<double>();
      r[b] = ehat[s][b].item<double>();
    }
    res.truth.push_back(t);
    res.estimate.push_back(e);
    if (o.fit_restitution) res.restitution.push_back(r);
    res.collides.push_back(rollout::touches_another_ball(obs, s, rn, m.step_scale(), 0.6 / m.pos_scale()));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::vector<std::vector<double>> read_identified_masses(const std::string& path, const std::string& flag,
                                                        int64_t scenes, int64_t num_balls, const std::string& split) {
  return parse_identified_masses(read_file(path), path, flag, scenes, num_balls, split);
}

std::vector<std::vector<double>> parse_identified_masses(const std::string& text, const std::string& path,
                                                         const std::string& flag, int64_t scenes, int64_t num_balls,
                                                         const std::string& split) {
  const nlohmann::json j = parse_json(text, fmt::format("{} '{}'", flag, path), "npe-sysid output");
  if (!j.is_object() || !j.contains("format") || j["format"] != "npe-sysid" || !j.contains("estimate") ||
      !j["estimate"].is_array())
    throw Error(fmt::format("{} '{}': expected npe-sysid output (format \"npe-sysid\" with an \"estimate\" array)",
                            flag, path));
  if (j.contains("split") && j["split"] != split)
    throw Error(fmt::format("{} '{}': masses identified on the {} split, expected the {} split", flag, path,
                            j["split"].dump(), split));
  const auto& est = j["estimate"];
  if (static_cast<int64_t>(est.size()) < scenes)
    throw Error(
        fmt::format("{} '{}': expected masses for at least {} scenes, found {}", flag, path, scenes, est.size()));
  std::vector<std::vector<double>> out;
  for (int64_t s = 0; s < scenes; ++s) {
    const auto parsed = json_as<std::vector<double>>(est[s]);
    if (!parsed)
      throw Error(fmt::format("{} '{}': estimate[{}]: expected an array of numbers, found {}", flag, path, s,
                              est[s].dump().substr(0, 80)));
    std::vector<double> row = *parsed;
    if (static_cast<int64_t>(row.size()) != num_balls)
      throw Error(
          fmt::format("{} '{}': estimate[{}]: expected {} masses, found {}", flag, path, s, num_balls, row.size()));
    for (double v : row)
      if (!(v > 0) || !std::isfinite(v))
        throw Error(fmt::format("{} '{}': estimate[{}]: expected positive finite masses, found {}", flag, path, s, v));
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace npe::rollout
