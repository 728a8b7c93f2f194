#include "npe/rollout/optimize.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "npe/core/io.h"
#include "npe/core/json.h"
#include "npe/core/npy.h"
#include "npe/gpu/diffsim.h"
#include "npe/gpu/diffsim_torch.h"
#include "npe/datagen/engine_world.h"

namespace npe::rollout {

using gpu::WorldSpec;
using gpu::kDiffMaxBallsCpu;
using gpu::kDiffMaxBallsCuda;
using gpu::simulate;
using gpu::validate_diff;

namespace {
template <class T>
T field(const nlohmann::json& j, const char* key, const std::string& src, const T* fallback = nullptr) {
  if (!j.contains(key)) {
    if (fallback) return *fallback;
    throw Error(fmt::format("{}: field '{}' is missing", src, key));
  }
  if (auto v = json_as<T>(j.at(key))) return *v;
  throw Error(
      fmt::format("{}: field '{}' has the wrong type or range (found {})", src, key, j.at(key).dump().substr(0, 80)));
}
}  // namespace

LaunchProblem LaunchProblem::from_json_file(const std::string& path) { return from_json_text(read_file(path), path); }

LaunchProblem LaunchProblem::from_json_text(const std::string& text, const std::string& path) {
  const nlohmann::json j = parse_json(text, path, "an npe-optimize problem");
  if (!j.is_object()) throw Error(fmt::format("{}: expected a JSON object", path));
  LaunchProblem p;
  datagen::WorldDef& w = p.world;
  w.width = field<double>(j, "width", path, &w.width);
  w.height = field<double>(j, "height", path, &w.height);
  w.radius = field<double>(j, "radius", path, &w.radius);
  w.frame_dt = field<double>(j, "frame_dt", path, &w.frame_dt);
  w.max_speed = field<double>(j, "max_speed", path, &w.max_speed);
  w.restitution = field<double>(j, "restitution", path, &w.restitution);
  p.shooter = field<int>(j, "shooter", path);
  p.target_ball = field<int>(j, "target_ball", path);
  const auto target = field<std::vector<double>>(j, "target", path);
  if (target.size() != 2)
    throw Error(fmt::format("{}: field 'target': expected [x, y] in px, found {}", path, j["target"].dump()));
  p.target_x = target[0];
  p.target_y = target[1];
  const std::optional<int> frames = j.contains("frames") ? json_as<int>(j["frames"]) : std::nullopt;
  if (!frames || *frames < 2 || *frames > 100000)
    throw Error(fmt::format("{}: field 'frames': expected an integer from 2 to 100000, found {}", path,
                            j.contains("frames") ? j["frames"].dump().substr(0, 80) : "nothing"));
  p.frames = *frames;
  if (!j.contains("balls") || !j["balls"].is_array())
    throw Error(fmt::format("{}: field 'balls': expected an array of [x, y, vx, vy, mass]", path));
  for (const auto& b : j["balls"]) {
    const std::vector<double> v = json_as<std::vector<double>>(b).value_or(std::vector<double>{});
    if (v.size() != 5)
      throw Error(fmt::format("{}: field 'balls': expected [x, y, vx, vy, mass] per ball, found {}", path, b.dump()));
    if (!(v[4] > 0) || !std::isfinite(v[4]))
      throw Error(fmt::format("{}: field 'balls': expected a positive mass, found {}", path, b.dump()));
    p.balls.push_back({v[0], v[1], v[2], v[3], v[4]});
  }
  for (const auto& b : p.balls)
    if (!(b.x >= w.radius && b.x <= w.width - w.radius && b.y >= w.radius && b.y <= w.height - w.radius) ||
        !std::isfinite(b.vx) || !std::isfinite(b.vy))
      throw Error(fmt::format("{}: field 'balls': ball at ({}, {}) expected inside the {} x {} px box, at least the "
                              "radius {} px from every wall, with a finite velocity",
                              path, b.x, b.y, w.width, w.height, w.radius));
  const int n = static_cast<int>(p.balls.size());
  if (p.shooter < 0 || p.shooter >= n || p.target_ball < 0 || p.target_ball >= n || p.shooter == p.target_ball)
    throw Error(fmt::format("{}: fields 'shooter' ({}) and 'target_ball' ({}): expected two different balls of 0..{}",
                            path, p.shooter, p.target_ball, n - 1));
  if (!std::isfinite(p.target_x) || !std::isfinite(p.target_y))
    throw Error(fmt::format("{}: field 'target': expected finite [x, y] in px", path));
  w.num_balls = static_cast<int>(p.balls.size());
  w.timesteps = p.frames + 1;
  w.variable_mass = true;
  w.mass_choices.clear();
  for (const auto& b : p.balls) w.mass_choices.push_back(b.mass);
  try {
    datagen::validate(w);
  } catch (const Error& e) {  // names the npe-datagen flag of the same world field
    throw Error(
        fmt::format("{}: world fields (width, height, radius, frame_dt, max_speed, restitution): {}", path, e.what()));
  }
  return p;
}

WorldSpec launch_spec(const LaunchProblem& p) {
  datagen::WorldDef w = p.world;
  w.num_balls = static_cast<int>(p.balls.size());
  WorldSpec spec = spec_from_world(w, 1);
  // Gradients through a contact are smooth in the initial velocity only when the onset ramp is
  // resolved: at the largest approach speed (2 max_speed) a substep must advance at most a
  // quarter of the ramp. With fewer substeps the exact gradient of the discrete rollout carries
  // the aliasing of contact onset against the substep grid (at one substep per ramp it changed
  // sign within 0.1 px/s of initial velocity in a version of the shipped example with omega
  // 600 /s, rho 0.1 px and an approach at about 205 px/s: 191 substeps per frame, v h ~ rho;
  // with four (764, v h ~ rho / 4) it was within 0.2% of the value at 16x the substeps).
  const double v = 2 * p.world.max_speed;
  spec.substeps = std::max(spec.substeps, static_cast<int>(std::ceil(spec.frame_dt * v * 4 / spec.contact_ramp)));
  for (size_t i = 0; i < p.balls.size(); ++i) spec.mass[i] = p.balls[i].mass;
  return spec;
}

LaunchResult optimize_launch(const LaunchProblem& p, const LaunchOptions& o) {
  const int N = static_cast<int>(p.balls.size());
  if (p.shooter < 0 || p.shooter >= N || p.target_ball < 0 || p.target_ball >= N || p.shooter == p.target_ball)
    throw Error(fmt::format("launch problem: shooter ({}) and target_ball ({}) must be two different balls of 0..{}",
                            p.shooter, p.target_ball, N - 1));
  if (p.frames < 1) throw Error(fmt::format("launch problem: frames expected >= 1, found {}", p.frames));
  if (o.iterations < 0) throw FieldError("iterations", fmt::format(": expected >= 0, found {}", o.iterations));
  for (int i = 0; i < N; ++i)
    for (int j = i + 1; j < N; ++j)
      if (std::hypot(p.balls[i].x - p.balls[j].x, p.balls[i].y - p.balls[j].y) < 2 * p.world.radius)
        throw Error(fmt::format("launch problem: balls {} and {} overlap at the start", i, j));
  const WorldSpec spec = launch_spec(p);
  validate_diff(spec, {p.frames, 0}, o.device.is_cuda() ? kDiffMaxBallsCuda : kDiffMaxBallsCpu);

  const auto opt = torch::TensorOptions().dtype(o.dtype).device(o.device);
  torch::Tensor init = torch::zeros({1, N, 4}, torch::kFloat64), mass = torch::zeros({1, N}, torch::kFloat64);
  for (int i = 0; i < N; ++i) {
    const auto& b = p.balls[i];
    init[0][i] = torch::tensor({b.x, b.y, b.vx, b.vy}, torch::kFloat64);
    mass[0][i] = b.mass;
  }
  init = init.to(opt);
  mass = mass.to(opt);
  const torch::Tensor radius = torch::full({1, N}, p.world.radius, opt);
  const torch::Tensor e = torch::full({1}, p.world.restitution, opt);
  const torch::Tensor shooter =
      torch::zeros({1, N, 4}, opt).index_put_({0, p.shooter, torch::indexing::Slice(2, 4)}, 1.0);
  const torch::Tensor target = torch::tensor({p.target_x, p.target_y}, torch::kFloat64).to(opt);

  LaunchResult res;
  const auto& a = p.balls[p.shooter];
  const auto& b = p.balls[p.target_ball];
  const double d = std::hypot(b.x - a.x, b.y - a.y);
  res.guess_vx = p.world.max_speed * (b.x - a.x) / d;
  res.guess_vy = p.world.max_speed * (b.y - a.y) / d;
  torch::Tensor v = torch::tensor({res.guess_vx, res.guess_vy}, torch::kFloat64).to(opt).requires_grad_(true);
  // rollout of `copies` identical scenes whose shooter starts with velocity `vel` ([copies, 2])
  auto shoot = [&](const torch::Tensor& vel) {
    const int64_t c = vel.size(0);
    WorldSpec sc = spec;
    sc.num_scenes = c;
    sc.mass.assign(static_cast<size_t>(N * c), 0.0);
    for (int i = 0; i < N; ++i)
      for (int64_t k = 0; k < c; ++k) sc.mass[i * c + k] = p.balls[i].mass;
    const torch::Tensor x0 = init.expand({c, N, 4}) * (1 - shooter) +
                             torch::cat({torch::zeros({c, 2}, opt), vel}, 1).view({c, 1, 4}) * shooter;
    ++res.rollouts;
    return simulate(sc, x0, {mass.expand({c, N}), radius.expand({c, N}), e.expand({c})}, {}, p.frames);
  };
  auto final_pos = [&](const torch::Tensor& traj, int64_t copy) {
    return traj[copy][p.frames][p.target_ball].narrow(0, 0, 2);
  };
  auto distance = [&](const torch::Tensor& pos) { return std::sqrt((pos - target).pow(2).sum().item<double>()); };

  if (o.method == LaunchMethod::kGradientDescent) {
    // steepest descent on the squared distance with a line search (quadratic interpolation,
    // Armijo's sufficient-decrease condition)
    double alpha = 0;
    torch::Tensor vv = v.detach();
    for (int it = 0;; ++it) {
      const torch::Tensor vb = vv.view({1, 2}).clone().requires_grad_(true);
      const torch::Tensor traj = shoot(vb);
      if (it == 0) res.guess = traj[0].detach().to(torch::kCPU, torch::kFloat64);
      res.optimised = traj[0].detach().to(torch::kCPU, torch::kFloat64);
      const torch::Tensor loss = (final_pos(traj, 0) - target).pow(2).sum();
      const double f = loss.item<double>();
      res.distance_px.push_back(std::sqrt(f));
      res.converged = res.distance_px.back() <= o.tolerance_px;
      if (res.converged || it == o.iterations) break;
      loss.backward();
      const torch::Tensor g = vb.grad().view({2});
      const double gg = g.pow(2).sum().item<double>();
      if (!(gg > 0)) break;  // no contact moves the target ball: the gradient vanishes
      if (alpha == 0) alpha = 0.1 * p.world.max_speed / std::sqrt(gg);
      res.iterations = it + 1;
      // line search: the loss at alpha and at the minimiser of the parabola through f(0),
      // f'(0) = -|g|^2 and f(alpha); the better point that meets Armijo's condition is taken
      auto at = [&](double a) {
        torch::NoGradGuard ng;
        return (final_pos(shoot((vv - a * g).view({1, 2})), 0) - target).pow(2).sum().item<double>();
      };
      bool taken = false;
      for (int tries = 0; tries < 30 && !taken; ++tries) {
        const double fa = at(alpha);
        const double curv = fa - f + alpha * gg;  // alpha^2 / 2 f''
        const double aq = curv > 0 ? gg * alpha * alpha / (2 * curv) : 2 * alpha;
        const double fq = at(aq);
        const bool ok_a = fa <= f - 1e-4 * alpha * gg, ok_q = fq <= f - 1e-4 * aq * gg;
        if (ok_q && (!ok_a || fq <= fa)) {
          alpha = aq;
          taken = true;
        } else if (ok_a) {
          taken = true;
        } else {
          alpha = std::min(aq, alpha / 2);
        }
        if (taken) vv = vv - alpha * g;
      }
      if (!taken) break;
    }
    v = vv;
  } else {
    // Levenberg-Marquardt: residual r = x_T - target (2), Jacobian J = dx_T / dv (2x2) from one
    // backward pass over two copies of the scene (copy 0 carries x, copy 1 carries y).
    double lambda = 1e-3;
    torch::Tensor vv = v.detach();
    for (int it = 0;; ++it) {
      const torch::Tensor vb = vv.view({1, 2}).repeat({2, 1}).requires_grad_(true);
      const torch::Tensor traj = shoot(vb);
      if (it == 0) res.guess = traj[0].detach().to(torch::kCPU, torch::kFloat64);
      res.optimised = traj[0].detach().to(torch::kCPU, torch::kFloat64);
      const torch::Tensor pos = final_pos(traj, 0).detach();
      const double dist = distance(pos);
      res.distance_px.push_back(dist);
      res.converged = dist <= o.tolerance_px;
      if (res.converged || it == o.iterations) break;
      (final_pos(traj, 0)[0] + final_pos(traj, 1)[1]).backward();
      const torch::Tensor J = vb.grad().to(torch::kCPU, torch::kFloat64);  // row k: d x_k / dv
      const torch::Tensor r = (pos - target).to(torch::kCPU, torch::kFloat64);
      const torch::Tensor A = J.t().mm(J), g = J.t().mv(r);
      res.iterations = it + 1;
      bool taken = false;
      for (int tries = 0; tries < 12 && !taken; ++tries) {
        const torch::Tensor D = torch::diag(torch::diagonal(A)) * lambda + 1e-9 * torch::eye(2, torch::kFloat64);
        torch::Tensor step = -torch::linalg_solve(A + D, g);
        const double norm = step.norm().item<double>();
        if (norm > p.world.max_speed) step = step * (p.world.max_speed / norm);
        const torch::Tensor trial = vv + step.to(opt);
        torch::NoGradGuard ng;
        if (distance(final_pos(shoot(trial.view({1, 2})), 0)) < dist) {
          vv = trial;
          lambda = std::max(lambda / 3, 1e-9);
          taken = true;
        } else {
          lambda *= 4;
        }
      }
      if (!taken) break;  // no step brings the ball closer: a local minimum of the distance
    }
    v = vv;
  }
  const torch::Tensor vf = v.detach().to(torch::kCPU, torch::kFloat64);
  res.vx = vf[0].item<double>();
  res.vy = vf[1].item<double>();
  return res;
}

void write_launch_outputs(const LaunchProblem& p, const LaunchResult& res, const std::string& problem_path,
                          const std::string& method, const std::string& prefix) {
  const WorldSpec spec = launch_spec(p);
  datagen::Manifest m;
  m.world = p.world;
  m.world.num_balls = static_cast<int>(p.balls.size());
  m.world.engine = {spec.substeps, spec.contact_omega, spec.contact_ramp};  // what ran
  // the problem's balls may each have a mass of their own: the dataset's masses are theirs
  m.world.variable_mass = true;
  m.world.mass_choices.clear();
  for (const auto& b : p.balls)
    if (std::find(m.world.mass_choices.begin(), m.world.mass_choices.end(), b.mass) == m.world.mass_choices.end())
      m.world.mass_choices.push_back(b.mass);
  m.engine = "npe-gpu";
  m.npe_version = NPE_VERSION;
  m.num_scenes = 2;
  const int64_t T = p.frames + 1, N = static_cast<int64_t>(p.balls.size());
  m.splits.push_back({"test", std::filesystem::path(prefix).filename().string() + "_test.npy", 0, 2, 2 * (T - 2)});
  const datagen::Normalisation unit = datagen::normalisation(m.world);
  std::vector<float> data(static_cast<size_t>(2 * T * N * datagen::kStateDim));
  for (int s = 0; s < 2; ++s) {
    const torch::Tensor tr = (s == 0 ? res.guess : res.optimised).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* x = tr.data_ptr<double>();  // [T, N, 4]
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < N; ++i) {
        float* d = data.data() + ((s * T + t) * N + i) * datagen::kStateDim;
        const double* b = x + (t * N + i) * 4;
        for (int f = 0; f < 4; ++f) d[f] = static_cast<float>(b[f] / (f < 2 ? unit.pos_scale : unit.vel_scale));
        d[4] = static_cast<float>(p.balls[i].mass);
      }
  }
  write_npy_f32(datagen::split_path(prefix, "test"), {2, T, N, datagen::kStateDim}, data.data());
  const nlohmann::json summary = {{"problem", problem_path},       {"first_guess", {res.guess_vx, res.guess_vy}},
                                  {"optimised", {res.vx, res.vy}}, {"method", method},
                                  {"iterations", res.iterations},  {"rollouts", res.rollouts},
                                  {"converged", res.converged},    {"distance_px", res.distance_px}};
  write_file_atomic(prefix + "_summary.json", summary.dump(1) + "\n");
  write_file_atomic(datagen::manifest_path(prefix), m.to_json().dump(2) + "\n");  // last: the dataset is complete
}

}  // namespace npe::rollout
