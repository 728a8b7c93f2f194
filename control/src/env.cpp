// Batched control environments over the differentiable simulator's operator.
#include "npe/control/env.h"

#include <cmath>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/gpu/diffsim_torch.h"
#include "task_internal.h"

namespace npe::control {
namespace {

using torch::Tensor;
namespace idx = torch::indexing;

// Scales rows of `a` [E, 2] onto the unit disc where they leave it.
Tensor clip_to_disc(const Tensor& a) {
  const Tensor norm = a.norm(2, 1, true);
  return a / torch::clamp_min(norm, 1.0);
}

// Positions normalised to [-1, 1] over the playing area.
Tensor normalise(const TaskSpec& t, const Tensor& p) {
  return torch::stack({p.select(-1, 0) * (2 / t.width) - 1, p.select(-1, 1) * (2 / t.height) - 1}, -1);
}

Tensor parking(const TaskSpec& t, const torch::TensorOptions& o) {
  const int n = task_bodies(t);
  std::vector<double> v;
  for (int k = 0; k < n; ++k) {
    const auto [x, y] = parking_spot(t, k);
    v.push_back(x);
    v.push_back(y);
  }
  return torch::tensor(v, torch::kFloat64).view({n, 2}).to(o);
}

at::Generator device_generator(torch::Device device, uint64_t seed) {
  if (device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, 0);
  at::Generator g = at::globalContext().defaultGenerator(device).clone();
  {
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(seed);
  }
  return g;
}

}  // namespace

// The constant tensors layouts are drawn with, made once per device (copies from the host would
// wait for the device on every step).
struct LayoutTables {
  Tensor origin;   // [cells, 2] px, the usable cells' corners
  Tensor margin;   // [1, slots, 1] px, each slot's distance from its cell's sides
  Tensor parking;  // [bodies, 2] px
  Tensor body;     // [bodies] int64
  double side = 0;
};

namespace {

LayoutTables layout_tables(const TaskSpec& t, const torch::TensorOptions& o) {
  LayoutTables lt;
  const auto cells = task_layout_cells(t, &lt.side);
  std::vector<double> flat;
  for (auto [x, y] : cells) {
    flat.push_back(x);
    flat.push_back(y);
  }
  lt.origin = torch::tensor(flat, torch::kFloat64).view({static_cast<int64_t>(cells.size()), 2}).to(o);
  // billiards: the balls then the goal; herding: the herder then the balls; reach: the disc, the goal
  const int slots = t.max_balls + (t.kind == TaskKind::kReach ? 2 : 1);
  std::vector<double> margin(slots, t.radius + 1);
  if (t.kind != TaskKind::kHerding) margin[slots - 1] = t.goal_radius;
  lt.margin = torch::tensor(margin, torch::kFloat64).to(o).view({1, slots, 1});
  lt.parking = parking(t, o);
  lt.body = torch::arange(task_bodies(t), torch::TensorOptions().dtype(torch::kInt64).device(o.device()));
  return lt;
}

Layouts sample_with(const TaskSpec& t, const LayoutTables& lt, int64_t n, at::Generator& gen,
                    const torch::TensorOptions& o) {
  const int64_t num_cells = lt.origin.size(0), slots = lt.margin.size(1);
  const int bodies = task_bodies(t);
  // a random choice of distinct cells: the first `slots` of a random permutation per layout
  const Tensor order = std::get<1>(torch::sort(torch::rand({n, num_cells}, gen, o), /*stable=*/true, 1, false));
  const Tensor chosen = lt.origin.index_select(0, order.slice(1, 0, slots).reshape(-1)).view({n, slots, 2});
  const Tensor pos = chosen + lt.margin + torch::rand({n, slots, 2}, gen, o) * (lt.side - 2 * lt.margin);
  // balls in play: min_balls + a uniform draw of 0 .. max_balls - min_balls more
  const int spread = t.max_balls - t.min_balls + 1;
  const Tensor count = t.min_balls +
                       torch::clamp_max(torch::floor(torch::rand({n}, gen, o) * spread), spread - 1).to(torch::kInt64);
  Layouts l;
  const Tensor placed = pos.slice(1, 0, bodies);
  if (t.kind == TaskKind::kBilliards) {
    l.active = lt.body.unsqueeze(0) < count.unsqueeze(1);
    l.goal = pos.select(1, slots - 1);
  } else if (t.kind == TaskKind::kReach) {
    l.active = torch::ones({n, bodies}, torch::TensorOptions().dtype(torch::kBool).device(o.device()));
    l.goal = pos.select(1, slots - 1);
  } else {
    l.active = (lt.body.unsqueeze(0) - 1) < count.unsqueeze(1);  // the herder (body 0) always
    l.goal = torch::full({n, 2}, t.pen_size / 2, o);
  }
  l.position = torch::where(l.active.unsqueeze(2), placed, lt.parking.unsqueeze(0));
  return l;
}

}  // namespace

Layouts sample_layouts(const TaskSpec& t, int64_t n, at::Generator gen, torch::ScalarType dtype) {
  validate_task(t);
  const auto o = torch::TensorOptions().dtype(dtype).device(gen.device());
  return sample_with(t, layout_tables(t, o), n, gen, o);
}

VecEnv::VecEnv(const TaskSpec& task, int64_t num_envs, torch::Device device, uint64_t seed, torch::ScalarType dtype)
    : task_(task), num_envs_(num_envs), device_(device), dtype_(dtype) {
  validate_task(task_);
  if (num_envs < 1) throw FieldError("num_envs", fmt::format(": expected at least 1 environment, found {}", num_envs));
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
    throw FieldError("dtype", fmt::format(": expected float32 or float64, found {}", c10::toString(dtype)));
  world_ = task_world(task_, num_envs);
  // "cuda" names the current device; tensors say which (cuda:K), and actions are checked against it
  if (device_.is_cuda() && !device_.has_index())
    device_ = torch::empty({0}, torch::TensorOptions().device(device_)).device();
  generator_ = device_generator(device_, seed);
  tables_ = std::make_shared<const LayoutTables>(
      layout_tables(task_, torch::TensorOptions().dtype(dtype).device(device_)));
  const auto o = torch::TensorOptions().dtype(dtype).device(device_);
  const int b = task_bodies(task_);
  mass_ = torch::full({num_envs, b}, task_.mass, o);
  radius_ = torch::full({num_envs, b}, task_.radius, o);
  restitution_ = torch::full({num_envs}, task_.restitution, o);
  reset();
}

Tensor VecEnv::initial_state(const Layouts& l) const {
  return torch::cat({l.position, torch::zeros_like(l.position)}, 2);
}

Tensor VecEnv::reset() {
  torch::NoGradGuard g;
  return reset(
      sample_with(task_, *tables_, num_envs_, generator_, torch::TensorOptions().dtype(dtype_).device(device_)));
}

Tensor VecEnv::reset(const Layouts& l) {
  if (!l.position.defined() || l.position.sizes() != c10::IntArrayRef({num_envs_, task_bodies(task_), 2}))
    throw Error(fmt::format("layouts.position: expected a tensor [{}, {}, 2]", num_envs_, task_bodies(task_)));
  layouts_ = {l.position.to(device_, dtype_), l.active.to(device_), l.goal.to(device_, dtype_)};
  state_ = initial_state(layouts_);
  t_ = torch::zeros({num_envs_}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
  return observe(state_);
}

void VecEnv::set_state(const Tensor& state, const Tensor& step_in_episode, const Layouts& l) {
  reset(l);
  if (state.sizes() != state_.sizes()) throw Error("state: expected the environments' state shape");
  state_ = state.to(device_, dtype_);
  t_ = step_in_episode.to(device_, torch::kInt64);
}

void VecEnv::detach() { state_ = state_.detach(); }

Tensor VecEnv::advance_frame(const Tensor& state, const Tensor& controls) const {
  const Tensor ctrl = controls.defined() ? controls.unsqueeze(1) : Tensor();
  const Tensor next = gpu::simulate_unchecked(world_, state, {mass_, radius_, restitution_}, ctrl, 1).select(1, 1);
  const double decay = std::exp(-task_.drag * task_.frame_dt);  // linear drag, exact over a frame
  return torch::cat({next.slice(2, 0, 2), next.slice(2, 2, 4) * decay}, 2);
}

Tensor VecEnv::apply_shot(const Tensor& state, const Tensor& action) const {
  const Tensor v = clip_to_disc(action) * task_.max_speed;  // [E, 2]
  const Tensor cue = torch::cat({state.select(1, 0).slice(1, 0, 2), v}, 1).unsqueeze(1);
  return torch::cat({cue, state.slice(1, 1)}, 1);
}

namespace {
// Observation of `state` at episode step `t` with the layouts' activity and goals.
Tensor observe_at(const TaskSpec& task, const Tensor& state, const Tensor& t, const Layouts& l) {
  const Tensor active = l.active.to(state.scalar_type()).unsqueeze(2);
  const Tensor p = normalise(task, state.slice(2, 0, 2));
  if (task.kind == TaskKind::kBilliards) {
    const Tensor others = torch::cat({p.slice(1, 2),
                                      torch::ones_like(p.slice(1, 2, 3).slice(2, 0, 1)).expand({-1, p.size(1) - 2, 1})},
                                     2) *
                          active.slice(1, 2);
    return torch::cat({p.select(1, 0), p.select(1, 1), normalise(task, l.goal), others.flatten(1)}, 1);
  }
  const double v_ref = task.max_accel / task.drag;
  const Tensor f = torch::cat({p, state.slice(2, 2, 4) / v_ref}, 2);  // [E, B, 4]
  const Tensor time = t.to(state.scalar_type()).unsqueeze(1) / task.episode_frames;
  if (task.kind == TaskKind::kReach) return torch::cat({f.select(1, 0), normalise(task, l.goal), time}, 1);
  const Tensor balls = torch::cat({f.slice(1, 1), torch::ones_like(f.slice(1, 1).slice(2, 0, 1))}, 2) *
                       active.slice(1, 1);
  return torch::cat({f.select(1, 0), balls.flatten(1), time}, 1);
}
}  // namespace

Tensor VecEnv::observe(const Tensor& state) const { return observe_at(task_, state, t_, layouts_); }

std::pair<Tensor, Tensor> VecEnv::reward_success(const Tensor& state) const {
  const double diag = std::hypot(task_.width, task_.height);
  const Tensor p = state.slice(2, 0, 2);
  if (task_.kind == TaskKind::kBilliards) {
    const Tensor d_target = (p.select(1, 1) - layouts_.goal).norm(2, 1);
    const Tensor d_cue = (p.select(1, 0) - layouts_.goal).norm(2, 1);
    const Tensor success = (d_target < task_.goal_radius) & (d_cue >= task_.goal_radius);
    // shaped: the target's distance to the goal, a penalty growing as the cue nears the goal
    const Tensor reward = success.to(state.scalar_type()) - d_target / diag -
                          0.5 * torch::relu(1 - d_cue / (2 * task_.goal_radius));
    return {reward, success};
  }
  if (task_.kind == TaskKind::kReach) {
    const Tensor d = (p.select(1, 0) - layouts_.goal).norm(2, 1);
    const Tensor success = d < task_.goal_radius;
    return {-d / diag + task_.success_bonus * success.to(state.scalar_type()), success};
  }
  const Tensor balls = p.slice(1, 1);                  // [E, n, 2]
  const Tensor in_play = layouts_.active.slice(1, 1);  // [E, n]
  const Tensor in_pen = (balls.select(2, 0) < task_.pen_size) & (balls.select(2, 1) < task_.pen_size);
  const Tensor success = (in_pen | ~in_play).all(1);
  const Tensor w = in_play.to(state.scalar_type());
  const Tensor d_goal = (balls - layouts_.goal.unsqueeze(1)).norm(2, 2);
  const Tensor mean_goal = (d_goal * w).sum(1) / w.sum(1);
  // the herder's distance to the nearest ball still out of the pen (0 once all are in)
  const Tensor d_herder = (balls - p.slice(1, 0, 1)).norm(2, 2);
  const Tensor outside = in_play & ~in_pen;
  const Tensor nearest = torch::where(outside, d_herder, torch::full_like(d_herder, 1e9)).amin(1);
  const Tensor near = torch::where(outside.any(1), nearest, torch::zeros_like(nearest));
  const Tensor reward = -(mean_goal + 0.25 * near) / diag + task_.success_bonus * success.to(state.scalar_type());
  return {reward, success};
}

StepResult VecEnv::step(const Tensor& action) {
  if (!action.defined() || action.dim() != 2 || action.size(0) != num_envs_ || action.size(1) != 2)
    throw Error(fmt::format("action: expected a tensor [{}, 2], found {}", num_envs_,
                            action.defined() ? c10::str(action.sizes()) : std::string("none")));
  if (action.device() != device_ || action.scalar_type() != dtype_)
    throw Error(fmt::format("action: expected {} on {}, found {} on {}", c10::toString(dtype_), device_.str(),
                            c10::toString(action.scalar_type()), action.device().str()));
  StepResult r;
  Tensor next, t_next;
  if (task_.kind == TaskKind::kBilliards) {
    next = apply_shot(state_, action);
    for (int f = 0; f < task_.episode_frames; ++f) next = advance_frame(next, Tensor());
    t_next = t_ + 1;
  } else {
    const Tensor force = clip_to_disc(action) * (task_.mass * task_.max_accel);
    const Tensor controls = torch::cat(
        {force.unsqueeze(1), torch::zeros({num_envs_, task_bodies(task_) - 1, 2}, force.options())}, 1);
    next = advance_frame(state_, controls);
    t_next = t_ + 1;
  }
  frames_ += num_envs_ * task_frames_per_step(task_);
  std::tie(r.reward, r.success) = reward_success(next);
  r.final_obs = observe_at(task_, next, t_next, layouts_);
  r.final_state = next;
  if (task_.kind == TaskKind::kBilliards) {
    r.terminated = torch::ones({num_envs_}, torch::TensorOptions().dtype(torch::kBool).device(device_));
    r.truncated = torch::zeros_like(r.terminated);
  } else {
    r.terminated = r.success;
    r.truncated = (t_next >= task_.episode_frames) & ~r.success;
  }
  // same-step autoreset
  const Tensor done = r.terminated | r.truncated;
  Layouts fresh;
  {
    torch::NoGradGuard g;
    fresh = sample_with(task_, *tables_, num_envs_, generator_, torch::TensorOptions().dtype(dtype_).device(device_));
  }
  const Tensor d2 = done.unsqueeze(1), d3 = done.view({-1, 1, 1});
  layouts_ = {torch::where(d3, fresh.position, layouts_.position), torch::where(d2, fresh.active, layouts_.active),
              torch::where(d2, fresh.goal, layouts_.goal)};
  state_ = torch::where(d3, initial_state(fresh), next);
  t_ = torch::where(done, torch::zeros_like(t_next), t_next);
  r.obs = observe(state_);
  return r;
}

Tensor VecEnv::shot_trajectory(const Tensor& action) {
  if (task_.kind != TaskKind::kBilliards) throw Error("shot_trajectory: only the billiards task has a single shot");
  std::vector<Tensor> frames{apply_shot(state_, action)};
  for (int f = 0; f < task_.episode_frames; ++f) frames.push_back(advance_frame(frames.back(), Tensor()));
  return torch::stack(frames, 1);
}

}  // namespace npe::control
