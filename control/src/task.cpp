// The control tasks' descriptions: built-in tasks, task files, checks and the engine's world.
#include "npe/control/task.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "npe/core/error.h"
#include "npe/core/json.h"
#include "npe/gpu/obstacles.h"
#include "task_internal.h"

namespace npe::control {
namespace {

constexpr double kWallRadius = 2;  // px, the lane's and the pen's walls (capsules)

// The fields a task file may set, with their member pointers.
struct DoubleField {
  const char* name;
  double TaskSpec::*member;
};
struct IntField {
  const char* name;
  int TaskSpec::*member;
};
constexpr DoubleField kDoubles[] = {
    {"width", &TaskSpec::width},
    {"height", &TaskSpec::height},
    {"radius", &TaskSpec::radius},
    {"mass", &TaskSpec::mass},
    {"restitution", &TaskSpec::restitution},
    {"frame_dt", &TaskSpec::frame_dt},
    {"drag", &TaskSpec::drag},
    {"max_speed", &TaskSpec::max_speed},
    {"max_accel", &TaskSpec::max_accel},
    {"goal_radius", &TaskSpec::goal_radius},
    {"pen_size", &TaskSpec::pen_size},
    {"pen_gap", &TaskSpec::pen_gap},
    {"success_bonus", &TaskSpec::success_bonus},
    {"contact_penetration", &TaskSpec::contact_penetration},
};
constexpr IntField kInts[] = {
    {"min_balls", &TaskSpec::min_balls},
    {"max_balls", &TaskSpec::max_balls},
    {"episode_frames", &TaskSpec::episode_frames},
    {"steps_per_contact", &TaskSpec::steps_per_contact},
};

// The grid cells layouts are drawn from: side and usable origins.
struct Cells {
  double side = 0;
  std::vector<std::pair<double, double>> origin;
};

Cells layout_cells(const TaskSpec& t) {
  Cells c;
  c.side = t.kind == TaskKind::kHerding ? 4 * t.radius : std::max(2 * t.goal_radius, 2 * t.radius) + 2 * t.radius;
  const int cols = static_cast<int>(std::floor(t.width / c.side));
  const int rows = static_cast<int>(std::floor(t.height / c.side));
  const double ox = (t.width - cols * c.side) / 2, oy = (t.height - rows * c.side) / 2;
  const double pen_clear = t.pen_size + kWallRadius + t.radius;  // herding: cells clear of the pen
  for (int j = 0; j < rows; ++j)
    for (int i = 0; i < cols; ++i) {
      const double x0 = ox + i * c.side, y0 = oy + j * c.side;
      if (t.kind == TaskKind::kHerding && x0 < pen_clear && y0 < pen_clear) continue;
      c.origin.emplace_back(x0, y0);
    }
  return c;
}

// Cells taken per layout: every ball, and the billiards goal, or the herder (and the reach goal).
int placed(const TaskSpec& t) { return t.max_balls + (t.kind == TaskKind::kReach ? 2 : 1); }

int parking_spots(const TaskSpec& t) { return static_cast<int>(std::floor((t.height - 2) / (2 * t.radius + 2))); }

}  // namespace

TaskSpec billiards_task() { return TaskSpec{}; }

TaskSpec herding_task() {
  TaskSpec t;
  t.kind = TaskKind::kHerding;
  t.width = 300;
  t.height = 300;
  t.radius = 10;
  t.restitution = 0.5;
  t.min_balls = 1;
  t.max_balls = 3;
  t.episode_frames = 200;
  return t;
}

TaskSpec reach_task() {
  TaskSpec t = herding_task();
  t.kind = TaskKind::kReach;
  t.width = 200;
  t.height = 200;
  t.min_balls = 0;
  t.max_balls = 0;
  t.episode_frames = 60;
  t.goal_radius = 15;
  return t;
}

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::kBilliards: return "billiards";
    case TaskKind::kHerding: return "herding";
    case TaskKind::kReach: return "reach";
  }
  return "?";
}

nlohmann::json task_to_json(const TaskSpec& t) {
  nlohmann::json j;
  j["kind"] = task_kind_name(t.kind);
  for (const auto& f : kDoubles) j[f.name] = t.*f.member;
  for (const auto& f : kInts) j[f.name] = t.*f.member;
  return j;
}

TaskSpec load_task(const std::string& name) {
  if (name == "billiards") return billiards_task();
  if (name == "herding") return herding_task();
  if (name == "reach") return reach_task();
  std::ifstream in(name);
  if (!in)
    throw FieldError("task",
                     fmt::format(": expected billiards, herding, reach or a task file (JSON), found '{}', which is "
                                 "neither a task name nor a readable file",
                                 name));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string source = fmt::format("task file '{}'", name);
  nlohmann::json j;
  try {
    j = parse_json(ss.str(), source, "a task object");
  } catch (const Error& e) {
    throw FieldError("task", std::string(": ") + e.what());
  }
  if (!j.is_object())
    throw FieldError("task", fmt::format(": {}: expected a JSON object, found {}", source, j.type_name()));
  TaskSpec t;
  try {
    const auto kind = json_field<std::string>(j, "kind", source, "task");
    if (kind == "billiards")
      t = billiards_task();
    else if (kind == "herding")
      t = herding_task();
    else if (kind == "reach")
      t = reach_task();
    else
      throw Error(fmt::format("{}: task field 'kind': expected billiards, herding or reach, found '{}'", source, kind));
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key == "kind") continue;
      bool known = false;
      for (const auto& f : kDoubles)
        if (key == f.name) {
          t.*f.member = json_field<double>(j, f.name, source, "task");
          known = true;
        }
      for (const auto& f : kInts)
        if (key == f.name) {
          t.*f.member = json_field<int>(j, f.name, source, "task");
          known = true;
        }
      if (!known) throw Error(fmt::format("{}: unknown task field '{}' (fields: docs/control.md)", source, key));
    }
  } catch (const FieldError&) {
    throw;
  } catch (const Error& e) {
    throw FieldError("task", std::string(": ") + e.what());
  }
  try {
    validate_task(t);
  } catch (const FieldError& e) {  // the file's field, not a flag
    throw FieldError("task", fmt::format(": {}: task field '{}'{}", source, e.field(), e.rest()));
  }
  return t;
}

void validate_task(const TaskSpec& t) {
  auto positive = [](const char* field, double v, const char* unit) {
    if (!(v > 0) || !std::isfinite(v))
      throw FieldError(field, fmt::format(": expected a positive finite number ({}), found {}", unit, v));
  };
  positive("width", t.width, "px");
  positive("height", t.height, "px");
  positive("radius", t.radius, "px");
  positive("mass", t.mass, "mass units");
  positive("frame_dt", t.frame_dt, "s");
  positive("max_speed", t.max_speed, "px/s");
  positive("max_accel", t.max_accel, "px/s^2");
  positive("goal_radius", t.goal_radius, "px");
  positive("pen_size", t.pen_size, "px");
  positive("contact_penetration", t.contact_penetration, "a fraction of the radius");
  positive("drag", t.drag, "1/s");
  if (!(t.restitution > 0 && t.restitution <= 1))
    throw FieldError("restitution", fmt::format(": expected a value in (0, 1], found {}", t.restitution));
  if (!(t.pen_gap >= 0 && t.pen_gap < t.pen_size))
    throw FieldError("pen_gap",
                     fmt::format(": expected a value in [0, pen_size = {}) px, found {}", t.pen_size, t.pen_gap));
  if (!std::isfinite(t.success_bonus))
    throw FieldError("success_bonus", fmt::format(": expected a finite number, found {}", t.success_bonus));
  if (t.episode_frames < 1 || t.episode_frames > 100000)
    throw FieldError("episode_frames", fmt::format(": expected 1 to 100000 frames, found {}", t.episode_frames));
  if (t.steps_per_contact < 1 || t.steps_per_contact > 100)
    throw FieldError("steps_per_contact", fmt::format(": expected 1 to 100, found {}", t.steps_per_contact));
  if (t.kind == TaskKind::kReach && (t.min_balls != 0 || t.max_balls != 0))
    throw FieldError("max_balls", fmt::format(": the reach task has no balls besides the disc: expected min_balls = "
                                              "max_balls = 0, found {} and {}",
                                              t.min_balls, t.max_balls));
  const int least = t.kind == TaskKind::kBilliards ? 2 : t.kind == TaskKind::kHerding ? 1 : 0;
  if (t.min_balls < least || t.min_balls > t.max_balls)
    throw FieldError("min_balls",
                     fmt::format(": expected {} to max_balls = {}, found {}", least, t.max_balls, t.min_balls));
  if (task_bodies(t) > 16)
    throw FieldError("max_balls", fmt::format(": expected at most {} balls (16 bodies, the CUDA simulator's limit), "
                                              "found {}",
                                              t.kind == TaskKind::kBilliards ? 16 : 15, t.max_balls));
  const Cells cells = layout_cells(t);
  if (static_cast<int>(cells.origin.size()) < placed(t))
    throw FieldError("max_balls",
                     fmt::format(": the playing area {} x {} px holds {} cells of {} px for layouts, "
                                 "{} are needed (max_balls = {}); enlarge width or height",
                                 t.width, t.height, cells.origin.size(), cells.side, placed(t), t.max_balls));
  if (parking_spots(t) < task_bodies(t))
    throw FieldError("height", fmt::format(": the parking lane of height {} px holds {} balls of radius {} px, {} "
                                           "are needed",
                                           t.height, parking_spots(t), t.radius, task_bodies(t)));
}

int task_bodies(const TaskSpec& t) { return t.kind == TaskKind::kBilliards ? t.max_balls : t.max_balls + 1; }

int task_obs_dim(const TaskSpec& t) {
  switch (t.kind) {
    case TaskKind::kBilliards: return 6 + 3 * (t.max_balls - 2);
    case TaskKind::kHerding: return 4 + 5 * t.max_balls + 1;
    case TaskKind::kReach: break;
  }
  return 4 + 2 + 1;
}

std::pair<double, double> parking_spot(const TaskSpec& t, int k) {
  return {t.width + 2 * kWallRadius + t.radius + 1, t.radius + 2 + k * (2 * t.radius + 2)};
}

gpu::WorldSpec task_world(const TaskSpec& t, int64_t num_envs) {
  gpu::WorldSpec w;
  w.num_scenes = num_envs;
  w.num_balls = task_bodies(t);
  w.width = t.width + 2 * kWallRadius + 2 * t.radius + 2;
  w.height = t.height;
  w.radius.assign(w.num_bodies(), t.radius);
  w.mass.assign(w.num_bodies(), t.mass);
  w.restitution = t.restitution;
  w.frame_dt = t.frame_dt;
  // the largest approach speed: the cue's bound; the herder's terminal speed under drag
  const double speed = t.kind == TaskKind::kBilliards ? t.max_speed : t.max_accel / t.drag;
  const auto c = gpu::choose_contact(speed, t.radius, t.frame_dt, t.contact_penetration, t.steps_per_contact);
  w.contact_omega = c.omega;
  w.substeps = c.substeps;
  w.contact_ramp = c.ramp;
  using K = gpu::Obstacle::Kind;
  // the parking lane's wall: its surface at x = width
  w.obstacles.push_back({K::kCapsule, t.width + kWallRadius, 0, t.width + kWallRadius, t.height, kWallRadius, 0});
  if (t.kind == TaskKind::kHerding) {
    const double p = t.pen_size, end = t.pen_size - t.pen_gap;
    w.obstacles.push_back({K::kCapsule, p, 0, p, end, kWallRadius, 0});
    w.obstacles.push_back({K::kCapsule, 0, p, end, p, kWallRadius, 0});
  }
  gpu::validate(w);
  return w;
}

// The cells, for env.cpp's sampler.
std::vector<std::pair<double, double>> task_layout_cells(const TaskSpec& t, double* side) {
  const Cells c = layout_cells(t);
  *side = c.side;
  return c.origin;
}

}  // namespace npe::control
