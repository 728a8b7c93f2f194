// npe/control/task.h: the control tasks of npe's ball worlds (docs/control.md): the billiards shot
// and herding. A TaskSpec is the static description (table, balls, goal, bounds, episode length);
// the dynamic state lives in VecEnv (env.h).
//
// Units: px, s, mass units, as the engine (npe/gpu/engine.h). Both tasks add a linear drag
// (rolling friction) between frames, v <- v exp(-drag frame_dt), so that balls come to rest.
//
// Variable ball counts in one batch: every environment simulates the task's largest count; the
// balls out of play rest in a parking lane beside the playing area, behind a static wall, with
// zero velocity (no force reaches them, so they do not move and change nothing).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "npe/gpu/engine.h"

namespace npe::control {

enum class TaskKind {
  // One action per episode: the cue ball's initial velocity. Success when, after episode_frames
  // frames, the target ball's centre lies in the goal disc and the cue ball's does not.
  kBilliards,
  // One action per frame: the force on an actuated disc (the herder, body 0) that pushes the
  // balls into a pen walled on two sides in the playing area's corner at the origin. Success (the
  // episode terminates) when every ball's centre is inside the pen; truncated after
  // episode_frames frames.
  kHerding,
  // One action per frame: the force on the actuated disc (body 0), which must reach a goal disc;
  // no other balls (min_balls = max_balls = 0). Success (termination) when the disc's centre is
  // inside the goal; truncated after episode_frames frames. The smallest task (tests, sanity).
  kReach,
};

struct TaskSpec {
  TaskKind kind = TaskKind::kBilliards;
  double width = 400, height = 200;   // playing area, px (walls at x = 0, width and y = 0, height)
  double radius = 8;                  // every body's radius, px
  double mass = 1;                    // every body's mass
  double restitution = 0.9;           // of every contact, (0, 1]
  int min_balls = 3, max_balls = 10;  // balls in play, drawn uniformly per episode. Billiards: all
                                      // balls, the cue (body 0) and the target (body 1) included;
                                      // herding: the herded balls (the herder is one more body)
  double frame_dt = 0.05;             // s per frame (one herding step)
  int episode_frames = 300;           // billiards: frames simulated after the shot; herding: limit
  double drag = 1.0;                  // 1/s, every body
  double max_speed = 400;             // billiards: bound of the cue's speed, px/s
  double max_accel = 300;             // herding, reach: bound of the disc's force per unit mass, px/s^2
  double goal_radius = 24;            // billiards, reach: goal disc, px
  double pen_size = 120;              // herding: pen [0, pen_size]^2, px
  double pen_gap = 60;                // herding: each pen wall stops pen_gap px short of the far corner
  double success_bonus = 10;          // herding, reach: reward on success
  double contact_penetration = 0.1;   // peak penetration / radius at the largest speed (choose_contact)
  int steps_per_contact = 5;          // substeps per contact duration (choose_contact)
};

// The built-in tasks.
TaskSpec billiards_task();
TaskSpec herding_task();
TaskSpec reach_task();

// A task by name ("billiards", "herding", "reach") or from a JSON file: {"kind": one of them,
// any TaskSpec field by its name ...}, the rest from the kind's built-in task. Throws
// npe::FieldError on the field "task" (unknown name, unreadable file, bad JSON, unknown key) and
// the errors of validate_task.
TaskSpec load_task(const std::string& name_or_file);
nlohmann::json task_to_json(const TaskSpec& task);
const char* task_kind_name(TaskKind kind);

// Throws npe::FieldError naming the field, the expected range and the value found; also when
// the playing area cannot hold the layouts (too few cells) or the parking lane the idle balls.
void validate_task(const TaskSpec& task);

// Derived sizes.
int task_bodies(const TaskSpec& task);  // bodies simulated per environment
int task_obs_dim(const TaskSpec& task);
inline int task_act_dim(const TaskSpec&) { return 2; }
// Frames simulated by one step of one environment (billiards: a whole episode).
inline int task_frames_per_step(const TaskSpec& t) { return t.kind == TaskKind::kBilliards ? t.episode_frames : 1; }
// Steps per episode at most.
inline int task_max_steps(const TaskSpec& t) { return t.kind == TaskKind::kBilliards ? 1 : t.episode_frames; }

// The engine's description for `num_envs` environments: the box (playing area plus the parking
// lane), the lane's wall and the pen's walls as obstacles, contact stiffness and substeps from
// choose_contact at the task's largest speed.
gpu::WorldSpec task_world(const TaskSpec& task, int64_t num_envs);

// Where ball slot k (the parking order) rests when out of play, px.
std::pair<double, double> parking_spot(const TaskSpec& task, int k);

}  // namespace npe::control
