// Training runs, evaluation, the cross-entropy planner and the comparison (train.h).
#include "npe/control/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "npe/core/error.h"
#include "npe/core/interrupt.h"
#include "npe/core/io.h"
#include "npe/core/json.h"
#ifdef NPE_HAVE_MEDIA
#include "npe/rollout/video.h"
#endif

namespace npe::control {
namespace {

namespace fs = std::filesystem;
using torch::Tensor;
using Clock = std::chrono::steady_clock;

void synchronize(torch::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.has_index() ? d.index() : -1);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

at::Generator cpu_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

Tensor generator_state(at::Generator& g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}
void set_generator_state(at::Generator& g, const Tensor& s) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(s);
}
at::Generator global_generator(torch::Device d) {
  if (d.is_cuda() && !d.has_index()) d = torch::Device(torch::kCUDA, 0);
  return at::globalContext().defaultGenerator(d);
}

std::string csv_row(const ControlMetrics& m) {
  return fmt::format("{},{},{},{:.3f},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g}", m.evaluation, m.frames,
                     m.env_steps, m.seconds, m.success, m.eval_return, m.train_reward, m.actor_loss, m.critic_loss,
                     m.alpha, m.grad_norm);
}

nlohmann::json metrics_json(const ControlMetrics& m) {
  return {{"evaluation", m.evaluation},     {"frames", m.frames},
          {"env_steps", m.env_steps},       {"seconds", m.seconds},
          {"success", m.success},           {"eval_return", m.eval_return},
          {"train_reward", m.train_reward}, {"actor_loss", m.actor_loss},
          {"critic_loss", m.critic_loss},   {"alpha", m.alpha},
          {"grad_norm", m.grad_norm}};
}

ControlMetrics metrics_from_json(const nlohmann::json& j, const std::string& source) {
  ControlMetrics m;
  m.evaluation = json_field<int64_t>(j, "evaluation", source, "curve");
  m.frames = json_field<int64_t>(j, "frames", source, "curve");
  m.env_steps = json_field<int64_t>(j, "env_steps", source, "curve");
  m.seconds = json_field<double>(j, "seconds", source, "curve");
  m.success = json_field<double>(j, "success", source, "curve");
  m.eval_return = json_field<double>(j, "eval_return", source, "curve");
  return m;
}

double scalar(const Tensor& t) { return t.defined() ? t.to(torch::kCPU, torch::kFloat64).item<double>() : 0.0; }

// What a resumed run must share with the checkpoint's run (budgets may change).
nlohmann::json identity_of(const TrainConfig& c) {
  const AgentConfig& a = c.agent;
  return {{"task", task_to_json(c.task)},
          {"algo", algo_name(c.algo)},
          {"seed", c.seed},
          {"num_envs", c.num_envs},
          {"eval_layouts", c.eval_layouts},
          {"eval_seed", c.eval_seed},
          {"dtype", c.dtype == torch::kFloat64 ? "float64" : "float32"},
          {"agent",
           {{"hidden", a.hidden},
            {"layers", a.layers},
            {"actor_lr", a.actor_lr},
            {"critic_lr", a.critic_lr},
            {"alpha_lr", a.alpha_lr},
            {"init_alpha", a.init_alpha},
            {"gamma", a.gamma},
            {"tau", a.tau},
            {"batch_size", a.batch_size},
            {"replay_capacity", a.replay_capacity},
            {"updates_per_step", a.updates_per_step},
            {"warmup_steps", a.warmup_steps},
            {"horizon", a.horizon},
            {"lambda", a.lambda},
            {"value_tau", a.value_tau},
            {"critic_iterations", a.critic_iterations},
            {"max_grad_norm", a.max_grad_norm},
            {"cem_population", a.cem_population},
            {"cem_elites", a.cem_elites},
            {"cem_init_std", a.cem_init_std},
            {"zo_mix", a.zo_mix},
            {"zo_samples", a.zo_samples},
            {"zo_sigma", a.zo_sigma}}},
          {"device", c.device.is_cuda() ? "cuda" : "cpu"}};
}

void validate_train(const TrainConfig& c) {
  validate_task(c.task);
  validate_agent(c.agent);
  if (c.num_envs < 1 || c.num_envs > (int64_t{1} << 24))
    throw FieldError("num_envs", fmt::format(": expected 1 to 2^24 environments, found {}", c.num_envs));
  if (c.max_frames < 1)
    throw FieldError("max_frames", fmt::format(": expected at least 1 frame, found {}", c.max_frames));
  if (!(c.checkpoint_seconds >= 0))
    throw FieldError("checkpoint_seconds",
                     fmt::format(": expected seconds >= 0 (0: at every evaluation), found {}", c.checkpoint_seconds));
  if (!(c.max_seconds >= 0))
    throw FieldError("max_seconds", fmt::format(": expected seconds >= 0 (0: no limit), found {}", c.max_seconds));
  if (c.eval_every_frames < 0)
    throw FieldError("eval_every_frames",
                     fmt::format(": expected frames >= 0 (0: automatic), found {}", c.eval_every_frames));
  if (c.eval_layouts < 1 || c.eval_layouts > 1000000)
    throw FieldError("eval_layouts", fmt::format(": expected 1 to 10^6 layouts, found {}", c.eval_layouts));
  if (!(c.target_success > 0 && c.target_success <= 1))
    throw FieldError("target_success", fmt::format(": expected a rate in (0, 1], found {}", c.target_success));
  if ((c.algo == Algo::kSac || c.algo == Algo::kHybrid) && c.agent.replay_capacity < c.num_envs * 2)
    throw FieldError("replay_capacity", fmt::format(": expected room for at least two steps of the {} environments "
                                                    "({} transitions), found {}",
                                                    c.num_envs, 2 * c.num_envs, c.agent.replay_capacity));
  if (c.algo == Algo::kCem && c.task.kind != TaskKind::kBilliards)
    throw FieldError("algo", ": cem plans the billiards shot only; use sac, apg or hybrid for herding");
}

struct RunFiles {
  fs::path dir, csv, checkpoint, summary;
  explicit RunFiles(const std::string& out)
      : dir(out), csv(dir / "metrics.csv"), checkpoint(dir / "checkpoint.pt"), summary(dir / "summary.json") {}
};


void write_outputs(const RunFiles& f, const TrainConfig& c, const std::vector<ControlMetrics>& rows, bool finished) {
  std::string csv = std::string(kControlCsvHeader) + "\n";
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& r : rows) {
    csv += csv_row(r) + "\n";
    curve.push_back(metrics_json(r));
  }
  write_file_atomic(f.csv, csv);
  if (!finished) return;
  const TrainSummary s = summarise(rows, c.target_success);
  nlohmann::json j = identity_of(c);
  j["device"] = c.device.str();
  j["max_frames"] = c.max_frames;
  j["target_success"] = c.target_success;
  j["frames"] = s.frames;
  j["seconds"] = s.seconds;
  j["final_success"] = s.final_success;
  j["best_success"] = s.best_success;
  j["frames_to_target"] = s.frames_to_target;
  j["seconds_to_target"] = s.seconds_to_target;
  j["curve"] = curve;
  write_file_atomic(f.summary, j.dump(2) + "\n");
}

void check_fresh_dir(const RunFiles& f, bool resume) {
  if (!resume && (fs::exists(f.checkpoint) || fs::exists(f.summary)))
    throw FieldError("out_dir",
                     fmt::format(" '{}': holds an earlier run ({}); resume it or choose another directory",
                                 f.dir.string(), fs::exists(f.checkpoint) ? "checkpoint.pt" : "summary.json"));
}

TrainSummary train_cem(const TrainConfig& c, const RunFiles& f,
                       const std::function<void(const ControlMetrics&)>& on_eval) {
  // CEM plans the held-out layouts themselves; num_envs / population layouts at a time.
  const Layouts held = held_out_layouts(c.task, c.eval_layouts, c.eval_seed, c.device, c.dtype);
  const int iterations = static_cast<int>(std::max<int64_t>(
      1, c.max_frames / (c.eval_layouts * (c.agent.cem_population + 1) * int64_t{c.task.episode_frames})));
  const int64_t chunk = std::max<int64_t>(1, c.num_envs / c.agent.cem_population);
  std::vector<CemProgress> total(iterations);
  std::vector<double> returns(iterations, 0.0);
  for (int64_t first = 0; first < c.eval_layouts; first += chunk) {
    const int64_t n = std::min(chunk, c.eval_layouts - first);
    const Layouts part{held.position.slice(0, first, first + n), held.active.slice(0, first, first + n),
                       held.goal.slice(0, first, first + n)};
    const auto progress = cem_plan(c.task, part, c.agent, iterations, c.seed + static_cast<uint64_t>(first));
    for (int i = 0; i < iterations; ++i) {
      total[i].iteration = i + 1;
      total[i].frames += progress[i].frames;
      total[i].seconds += progress[i].seconds;
      total[i].success += progress[i].success * static_cast<double>(n);
      returns[i] += progress[i].mean_return * static_cast<double>(n);
    }
    if (interrupt_requested()) throw Interrupted("npe-control: interrupted; a CEM run restarts from its beginning");
  }
  std::vector<ControlMetrics> rows;
  for (int i = 0; i < iterations; ++i) {
    ControlMetrics m;
    m.evaluation = i + 1;
    m.frames = total[i].frames;
    m.env_steps = total[i].frames / c.task.episode_frames;
    m.seconds = total[i].seconds;
    m.success = total[i].success / static_cast<double>(c.eval_layouts);
    m.eval_return = returns[i] / static_cast<double>(c.eval_layouts);
    rows.push_back(m);
    if (on_eval) on_eval(m);
  }
  write_outputs(f, c, rows, true);
  return summarise(rows, c.target_success);
}

}  // namespace

TrainSummary summarise(const std::vector<ControlMetrics>& rows, double target) {
  TrainSummary s;
  if (rows.empty()) return s;
  s.frames = rows.back().frames;
  s.seconds = rows.back().seconds;
  s.final_success = rows.back().success;
  for (const auto& r : rows) {
    s.best_success = std::max(s.best_success, r.success);
    if (s.frames_to_target < 0 && r.success >= target) {
      s.frames_to_target = r.frames;
      s.seconds_to_target = r.seconds;
    }
  }
  return s;
}

std::unique_ptr<Agent> run_agent(const TrainConfig& c, bool fresh) {
  validate_train(c);
  torch::manual_seed(c.seed);
  auto agent = make_agent(c.algo, c.agent, c.task, c.device, c.dtype);
  if (fresh) return agent;
  const RunFiles f(c.out_dir);
  if (!fs::exists(f.checkpoint))
    throw FieldError("out_dir", fmt::format(" '{}': holds no checkpoint.pt to load the {} policy from", c.out_dir,
                                            algo_name(c.algo)));
  if (fs::exists(f.summary)) {  // a finished run: the settings its policy depends on must be these
    const std::string key = differing_setting(parse_json(read_file(f.summary), f.summary.string(), "a run summary"), c,
                                              true);
    if (!key.empty())
      throw FieldError("out_dir", fmt::format(" '{}': its run was trained with another '{}' ({}); give the run's "
                                              "settings",
                                              c.out_dir, key, f.summary.string()));
  }
  torch::serialize::InputArchive a;
  try {
    a.load_from(f.checkpoint.string(), c.device);
    agent->load(a);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: not a readable npe-control checkpoint of a {} run with these settings ({})",
                            f.checkpoint.string(), algo_name(c.algo), e.what_without_backtrace()));
  }
  return agent;
}

nlohmann::json run_identity(const TrainConfig& config) { return identity_of(config); }

std::string differing_setting(const nlohmann::json& summary, const TrainConfig& config, bool policy_only) {
  const auto id = identity_of(config);
  for (auto it = id.begin(); it != id.end(); ++it) {
    const std::string& key = it.key();
    if (key == "device" || (policy_only && key != "task" && key != "algo" && key != "agent" && key != "dtype"))
      continue;
    if (!summary.contains(key) || summary.at(key) != it.value()) return key;
  }
  return "";
}

Layouts held_out_layouts(const TaskSpec& task, int64_t n, uint64_t seed, torch::Device device,
                         torch::ScalarType dtype) {
  torch::NoGradGuard g;
  const Layouts l = sample_layouts(task, n, cpu_generator(seed), torch::kFloat64);
  return {l.position.to(device, dtype), l.active.to(device), l.goal.to(device, dtype)};
}

Evaluation evaluate(const TaskSpec& task, const Layouts& layouts,
                    const std::function<torch::Tensor(const torch::Tensor&)>& policy) {
  torch::NoGradGuard g;
  const int64_t n = layouts.position.size(0);
  VecEnv env(task, n, layouts.position.device(), 0, layouts.position.scalar_type());
  Tensor obs = env.reset(layouts);
  const auto bools = torch::TensorOptions().dtype(torch::kBool).device(obs.device());
  Tensor ended = torch::zeros({n}, bools), success = torch::zeros({n}, bools);
  Tensor ret = torch::zeros({n}, obs.options());
  for (int s = 0; s < task_max_steps(task); ++s) {
    const StepResult r = env.step(policy(obs));
    const Tensor live = ~ended;
    ret = ret + torch::where(live, r.reward, torch::zeros_like(r.reward));
    success = success | (live & r.success);
    ended = ended | r.terminated | r.truncated;
    obs = r.obs;
  }
  Evaluation e;
  e.successes = success;
  e.success = success.to(torch::kFloat64).mean().item<double>();
  e.mean_return = ret.to(torch::kFloat64).mean().item<double>();
  return e;
}

Tensor policy_episodes(const TaskSpec& task, const Layouts& layouts,
                       const std::function<torch::Tensor(const torch::Tensor&)>& policy) {
  torch::NoGradGuard g;
  const int64_t n = layouts.position.size(0);
  VecEnv env(task, n, layouts.position.device(), 0, layouts.position.scalar_type());
  Tensor obs = env.reset(layouts);
  if (task.kind == TaskKind::kBilliards) return env.shot_trajectory(policy(obs));
  std::vector<Tensor> states{env.state()};
  Tensor ended = torch::zeros({n}, torch::TensorOptions().dtype(torch::kBool).device(obs.device()));
  for (int s = 0; s < task.episode_frames; ++s) {
    const StepResult r = env.step(policy(obs));
    states.push_back(torch::where(ended.view({-1, 1, 1}), states.back(), r.final_state));
    ended = ended | r.terminated | r.truncated;
    obs = r.obs;
  }
  return torch::stack(states, 1);
}

void write_policy_video(const TrainConfig& c, const std::string& path, int64_t n) {
#ifdef NPE_HAVE_MEDIA
  auto agent = run_agent(c);
  const Layouts l = held_out_layouts(c.task, n, c.eval_seed, c.device, c.dtype);
  const Tensor states =
      policy_episodes(c.task, l, [&](const Tensor& o) { return agent->act(o, true); }).cpu().to(torch::kFloat32);
  const gpu::WorldSpec w = task_world(c.task, 1);
  datagen::Trajectories traj;
  traj.scenes = n;
  traj.timesteps = states.size(1);
  traj.num_balls = states.size(2);
  traj.data.assign(static_cast<size_t>(traj.scenes * traj.timesteps * traj.num_balls * datagen::kStateDim), 0.f);
  const Tensor active = l.active.cpu();
  const auto acc = states.accessor<float, 4>();
  for (int64_t s = 0; s < n; ++s)
    for (int64_t t = 0; t < traj.timesteps; ++t)
      for (int64_t b = 0; b < traj.num_balls; ++b) {
        float* f = traj.frame(s, t) + b * datagen::kStateDim;
        for (int k = 0; k < 4; ++k) f[k] = acc[s][t][b][k];
        // the actuated disc or the cue drawn dark (heaviest shade); idle balls left out
        f[4] = !active[s][b].item<bool>() ? 0.f : b == 0 ? 25.f : 1.f;
      }
  const Tensor goal = l.goal.cpu().to(torch::kFloat64);
  std::vector<rollout::VideoPanel> panels;
  for (int64_t s = 0; s < n; ++s) {
    rollout::VideoPanel p{fmt::format("{} layout {}", algo_name(c.algo), s), &traj, s};
    if (c.task.kind != TaskKind::kHerding)
      p.rings.push_back({goal[s][0].item<double>(), goal[s][1].item<double>(), c.task.goal_radius});
    panels.push_back(p);
  }
  rollout::VideoOptions o;
  o.box_width = w.width;
  o.box_height = w.height;
  o.radius = c.task.radius;
  o.pos_scale = 1;
  o.scale = std::min(1.0, 360.0 / w.width);
  o.fps = static_cast<int>(std::lround(1 / c.task.frame_dt));
  o.max_mass = 25;
  o.obstacles = w.obstacles;
  rollout::write_comparison_video(path, panels, static_cast<int>(traj.timesteps), o);
#else
  (void)c, (void)path, (void)n;
  throw Error("policy videos need npe built with media (NPE_WITH_MEDIA=ON)");
#endif
}

std::vector<CemProgress> cem_plan(const TaskSpec& task, const Layouts& layouts, const AgentConfig& c, int iterations,
                                  uint64_t seed, const std::function<void(const CemProgress&)>& on_iteration) {
  validate_agent(c);
  if (task.kind != TaskKind::kBilliards) throw FieldError("algo", ": cem plans the billiards shot only");
  torch::NoGradGuard g;
  const int64_t n = layouts.position.size(0), P = c.cem_population;
  const auto device = layouts.position.device();
  const auto dtype = layouts.position.scalar_type();
  VecEnv candidates(task, n * P, device, seed, dtype), scoring(task, n, device, seed, dtype);
  const Layouts repeated{layouts.position.repeat_interleave(P, 0), layouts.active.repeat_interleave(P, 0),
                         layouts.goal.repeat_interleave(P, 0)};
  const auto o = torch::TensorOptions().dtype(dtype).device(device);
  Tensor mean = torch::zeros({n, 2}, o), stdev = torch::full({n, 2}, c.cem_init_std, o);
  std::vector<CemProgress> out;
  const auto t0 = Clock::now();
  for (int it = 0; it < iterations; ++it) {
    const Tensor noise = torch::randn({n, P, 2}, candidates.generator(), o);
    const Tensor shots = torch::clamp(mean.unsqueeze(1) + stdev.unsqueeze(1) * noise, -1, 1);
    candidates.reset(repeated);
    const Tensor reward = candidates.step(shots.view({n * P, 2})).reward.view({n, P});
    const Tensor best = std::get<1>(reward.topk(c.cem_elites, 1));
    const Tensor elites = shots.gather(1, best.unsqueeze(2).expand({n, c.cem_elites, 2}));
    mean = elites.mean(1);
    stdev = torch::clamp_min(c.cem_elites > 1 ? elites.std(1) : stdev * 0.5, 0.02);  // keep exploring
    scoring.reset(layouts);
    const StepResult r = scoring.step(mean);
    synchronize(device);
    CemProgress p;
    p.iteration = it + 1;
    p.frames = candidates.frames() + scoring.frames();
    p.seconds = seconds_since(t0);
    p.success = r.success.to(torch::kFloat64).mean().item<double>();
    p.mean_return = r.reward.to(torch::kFloat64).mean().item<double>();
    out.push_back(p);
    if (on_iteration) on_iteration(p);
  }
  return out;
}

TrainSummary train(const TrainConfig& c, const std::function<void(const ControlMetrics&)>& on_eval) {
  validate_train(c);
  const RunFiles f(c.out_dir);
  check_fresh_dir(f, c.resume);
  fs::create_directories(f.dir);
  if (c.algo == Algo::kCem) return train_cem(c, f, on_eval);

  torch::manual_seed(c.seed);  // the networks and the policies' noise (CPU and CUDA generators)
  VecEnv env(c.task, c.num_envs, c.device, c.seed + 0x9E3779B97F4A7C15ull, c.dtype);
  auto agent = make_agent(c.algo, c.agent, c.task, c.device, c.dtype);
  const Layouts held = held_out_layouts(c.task, c.eval_layouts, c.eval_seed, c.device, c.dtype);
  const int64_t eval_every = c.eval_every_frames > 0 ? c.eval_every_frames : std::max<int64_t>(1, c.max_frames / 40);

  std::vector<ControlMetrics> rows;
  int64_t env_steps = 0, frames_base = 0;
  double seconds = 0;
  at::Generator global = global_generator(c.device);
  if (c.resume && fs::exists(f.checkpoint)) try {
      torch::serialize::InputArchive a;
      a.load_from(f.checkpoint.string(), c.device);
      Tensor identity, progress, secs, rows_json, env_gen, glob_gen, state, t, pos, active, goal;
      a.read("identity", identity);
      identity = identity.cpu().contiguous();  // bytes, read on the host
      const std::string saved(static_cast<const char*>(identity.data_ptr()), identity.numel());
      if (saved != identity_of(c).dump())
        throw FieldError("out_dir",
                         fmt::format(" '{}': its checkpoint belongs to another run (task, algorithm, seed or "
                                     "settings differ; only max_frames and max_seconds may change)",
                                     f.dir.string()));
      agent->load(a);
      a.read("progress", progress);  // env_steps, frames
      a.read("seconds", secs);
      seconds = secs.item<double>();
      a.read("rows", rows_json);
      rows_json = rows_json.cpu().contiguous();
      const std::string rows_text(static_cast<const char*>(rows_json.data_ptr()), rows_json.numel());
      for (const auto& j : nlohmann::json::parse(rows_text)) {
        ControlMetrics m = metrics_from_json(j, f.checkpoint.string());
        m.train_reward = j.value("train_reward", 0.0);
        m.actor_loss = j.value("actor_loss", 0.0);
        m.critic_loss = j.value("critic_loss", 0.0);
        m.alpha = j.value("alpha", 0.0);
        m.grad_norm = j.value("grad_norm", 0.0);
        rows.push_back(m);
      }
      a.read("env_generator", env_gen);
      a.read("global_generator", glob_gen);
      a.read("env_state", state);
      a.read("env_t", t);
      a.read("env_position", pos);
      a.read("env_active", active);
      a.read("env_goal", goal);
      env_steps = progress[0].item<int64_t>();
      frames_base = progress[1].item<int64_t>();
      env.set_state(state, t, {pos, active, goal});
      set_generator_state(env.generator(), env_gen.cpu());
      set_generator_state(global, glob_gen.cpu());
    } catch (const c10::Error& e) {
      throw FieldError("out_dir",
                       fmt::format(" '{}': checkpoint.pt is not a readable npe-control checkpoint of this run "
                                   "({})",
                                   f.dir.string(), e.what_without_backtrace()));
    } catch (const nlohmann::json::exception& e) {
      throw FieldError("out_dir",
                       fmt::format(" '{}': checkpoint.pt holds unreadable metrics ({})", f.dir.string(), e.what()));
    }
  // every simulated frame counts: the environments' and the agent's own (zeroth-order shots)
  auto frames = [&] { return frames_base + env.frames() + agent->extra_frames(); };
  auto save = [&] {
    torch::serialize::OutputArchive a;
    const std::string id = identity_of(c).dump();
    a.write("identity",
            torch::from_blob(const_cast<char*>(id.data()), {static_cast<int64_t>(id.size())}, torch::kUInt8).clone());
    agent->save(a);
    // the environments' frames; the agent keeps its own (extra_frames)
    a.write("progress", torch::tensor({env_steps, frames_base + env.frames()}, torch::kInt64));
    a.write("seconds", torch::tensor(seconds, torch::kFloat64));
    nlohmann::json rj = nlohmann::json::array();
    for (const auto& r : rows) rj.push_back(metrics_json(r));
    const std::string rt = rj.dump();
    a.write("rows",
            torch::from_blob(const_cast<char*>(rt.data()), {static_cast<int64_t>(rt.size())}, torch::kUInt8).clone());
    a.write("env_generator", generator_state(env.generator()));
    a.write("global_generator", generator_state(global));
    a.write("env_state", env.state().detach());
    a.write("env_t", env.step_in_episode());
    a.write("env_position", env.layouts().position);
    a.write("env_active", env.layouts().active);
    a.write("env_goal", env.layouts().goal);
    std::ostringstream os;
    a.save_to(os);
    write_file_atomic(f.checkpoint, os.str());
  };
  IterationStats last;
  auto last_save = Clock::now();
  auto evaluate_now = [&](bool force_save) {
    ControlMetrics m;
    m.evaluation = static_cast<int64_t>(rows.size());
    m.frames = frames();
    m.env_steps = env_steps;
    m.seconds = seconds;
    const Evaluation e = evaluate(c.task, held, [&](const Tensor& o) { return agent->act(o, true); });
    m.success = e.success;
    m.eval_return = e.mean_return;
    m.train_reward = scalar(last.reward);
    m.actor_loss = scalar(last.actor_loss);
    m.critic_loss = scalar(last.critic_loss);
    m.alpha = scalar(last.alpha);
    m.grad_norm = scalar(last.grad_norm);
    rows.push_back(m);
    write_outputs(f, c, rows, false);
    if (force_save || seconds_since(last_save) >= c.checkpoint_seconds) {
      save();
      last_save = Clock::now();
    }
    if (on_eval) on_eval(m);
  };
  if (rows.empty()) evaluate_now(true);
  int64_t next_eval = (frames() / eval_every + 1) * eval_every;
  auto segment = Clock::now();
  auto finished = [&] { return frames() >= c.max_frames || (c.max_seconds > 0 && seconds >= c.max_seconds); };
  while (!finished()) {
    last = agent->iterate(env);
    env_steps += c.task.kind == TaskKind::kBilliards ? 1 : agent->steps_per_iteration();
    const bool stop = interrupt_requested();
    // one decision per iteration: the budget, an evaluation, or an interruption
    const bool time_up = c.max_seconds > 0 && seconds + seconds_since(segment) >= c.max_seconds;
    if (!(frames() >= next_eval || frames() >= c.max_frames || time_up || stop)) continue;
    synchronize(c.device);
    seconds += seconds_since(segment);
    if (stop && !finished() && frames() < next_eval) {
      // no evaluation off the schedule: the checkpoint alone, and a resumed run's rows stay those
      // of an uninterrupted one
      save();
      throw Interrupted(fmt::format("npe-control: interrupted; resume from {}", f.checkpoint.string()));
    }
    evaluate_now(stop || finished());
    next_eval = (frames() / eval_every + 1) * eval_every;
    if (stop) throw Interrupted(fmt::format("npe-control: interrupted; resume from {}", f.checkpoint.string()));
    segment = Clock::now();  // evaluations are not training time
  }
  write_outputs(f, c, rows, true);
  return summarise(rows, c.target_success);
}

Interval iqm_with_ci(const std::vector<double>& v, int resamples, uint64_t seed) {
  auto iqm = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    const size_t cut = x.size() / 4;
    double sum = 0;
    for (size_t i = cut; i < x.size() - cut; ++i) sum += x[i];
    return sum / static_cast<double>(x.size() - 2 * cut);
  };
  Interval out;
  if (v.empty()) return {NAN, NAN, NAN};
  out.value = iqm(v);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, v.size() - 1);
  std::vector<double> stats(resamples), draw(v.size());
  for (int r = 0; r < resamples; ++r) {
    for (auto& d : draw) d = v[pick(rng)];
    stats[r] = iqm(draw);
  }
  std::sort(stats.begin(), stats.end());
  out.low = stats[static_cast<size_t>(0.025 * (resamples - 1))];
  out.high = stats[static_cast<size_t>(0.975 * (resamples - 1))];
  return out;
}

}  // namespace npe::control
