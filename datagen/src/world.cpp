#include "npe/datagen/world.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::datagen {

void validate_box2d(const WorldDef& d) {
  const double per_frame = d.max_speed * d.frame_dt;
  // Box2D moves a body at most b2_maxTranslation = 2 m per step and clamps faster ones: after a
  // collision a ball may reach twice the largest initial speed.
  const int box2d_steps = d.box2d.substeps > 0 ? d.box2d.substeps : kBox2dDefaultSubsteps;
  const double box2d_limit = 2.0 * d.box2d.pixels_per_meter;
  if (2 * per_frame / box2d_steps > box2d_limit)
    throw FieldError("substeps", fmt::format(" {}: Box2D would move a ball up to {:.3g} px per step; its limit is {} "
                                             "px (2 m); expected at least {} steps per frame",
                                             box2d_steps, 2 * per_frame / box2d_steps, box2d_limit,
                                             static_cast<int>(std::ceil(2 * per_frame / box2d_limit))));
}

void validate(const WorldDef& d) {
  auto bad = [](const std::string& field, const std::string& expected, auto found) {
    throw FieldError(field, fmt::format(": expected {}, found {}", expected, found));
  };
  if (!(d.radius > 0) || !std::isfinite(d.radius)) bad("radius", "a positive radius in px", d.radius);
  if (!(d.width > 0) || !std::isfinite(d.width)) bad("width", "a positive width in px", d.width);
  if (!(d.height > 0) || !std::isfinite(d.height)) bad("height", "a positive height in px", d.height);
  if (d.width <= 2 * d.radius || d.height <= 2 * d.radius)
    throw FieldError("radius", fmt::format(": a ball of radius {} px does not fit in the {} x {} px box", d.radius,
                                           d.width, d.height));
  // Sizes beyond the limits are refused with what one scene alone would need (states of every
  // frame, float32), before anything is allocated.
  auto scene_gib = [&](double balls, double frames) { return balls * frames * kStateDim * 4 / double(1 << 30); };
  if (d.num_balls < 1 || d.num_balls > 1000)
    throw FieldError(
        "num_balls",
        fmt::format(": expected 1 to 1000 balls, found {}{}", d.num_balls,
                    d.num_balls > 1000 ? fmt::format(" (one scene of {} frames would take {:.3g} GiB, and each "
                                                     "physics step {:.3g} ball pairs)",
                                                     d.timesteps, scene_gib(d.num_balls, d.timesteps),
                                                     0.5 * d.num_balls * (d.num_balls - 1.0))
                                       : ""));
  for (int n : d.ball_counts)
    if (n < 1 || n > d.num_balls)
      bad("num_balls", fmt::format("ball counts from 1 to the slots per scene ({})", d.num_balls), n);
  if (!(d.min_separation >= 2 && d.min_separation < 1e6))
    bad("min_separation", "initial centre distances of at least 2 radii (touching)", d.min_separation);
  if (d.velocity_law == WorldDef::VelocityLaw::kIntegerPerAxis && (d.max_axis_speed < 0 || d.max_axis_speed > 1000000))
    bad("preset", "a per-axis speed bound of 0 to 10^6 px per frame", d.max_axis_speed);
  if (!(d.reject_speed >= 0) || !std::isfinite(d.reject_speed))
    bad("preset", "a rejection speed >= 0 px/s", d.reject_speed);
  if (d.timesteps < 3) bad("timesteps", "at least 3 frames (one training window)", d.timesteps);
  if (d.timesteps > 100000)
    throw FieldError("timesteps",
                     fmt::format(": expected at most 100000 frames, found {} (one scene of {} balls would take "
                                 "{:.3g} GiB)",
                                 d.timesteps, d.num_balls, scene_gib(d.num_balls, d.timesteps)));
  if (!(d.max_speed > 0) || !std::isfinite(d.max_speed)) bad("max_speed", "a positive speed in px/s", d.max_speed);
  if (!(d.frame_dt > 0) || !std::isfinite(d.frame_dt)) bad("frame_dt", "a positive frame interval in s", d.frame_dt);
  // Bounds of what a simulation can represent. A ball at the largest initial speed crosses at most
  // the box in one frame: beyond it the frames no longer sample the motion (and at 1e300 s or 1e30
  // px/s the simulators return NaN or clamp the speed).
  const double per_frame = d.max_speed * d.frame_dt, box = std::min(d.width, d.height);
  if (per_frame > box)
    throw FieldError("max_speed",
                     fmt::format(" {} px/s with frame_dt {} s: a ball would cross {:.3g} px in one frame, more than "
                                 "the {} px box; expected max_speed * frame_dt <= {} px",
                                 d.max_speed, d.frame_dt, per_frame, box, box));

  if (!d.walls.empty()) {
    if (d.width != kWallBoxWidth || d.height != kWallBoxHeight)
      throw FieldError("walls", fmt::format(": the walls worlds fill the {} x {} px box, found a {} x {} px box",
                                            kWallBoxWidth, kWallBoxHeight, d.width, d.height));
    if (!d.obstacles.empty()) throw FieldError("walls", ": expected either walls or obstacles, found both");
    // the narrowest enclosed space (an L's arms, 2 cells wide) holds balls of radius up to 80 px
    if (d.radius > kWallBlock)
      throw FieldError("radius", fmt::format(": expected at most {} px in a walls world (the walls enclose a "
                                             "corridor {} px wide), found {}",
                                             kWallBlock, 2 * kWallBlock, d.radius));
  }
  if (d.box2d.substeps < 0 || d.box2d.substeps > 10000000)
    bad("substeps", "0 (Box2D's default) to 10^7 steps per frame", d.box2d.substeps);
  if (d.engine.substeps < 0 || d.engine.substeps > 10000000)
    bad("substeps", "0 (chosen with the contact stiffness) to 10^7 substeps per frame", d.engine.substeps);
  if (!(d.mass > 0)) bad("mass", "a positive mass", d.mass);
  for (double m : d.mass_choices)
    if (!(m > 0)) bad("mass_choices", "positive masses", m);
  if (d.variable_mass && d.mass_choices.empty()) bad("mass_choices", "at least one mass", "none");
  if (!(d.restitution >= 0 && d.restitution <= 1)) bad("restitution", "a value in [0, 1]", d.restitution);
  // Balls occupy at most ~60% of the box: beyond that random placement rarely succeeds.
  const double area = d.num_balls * M_PI * d.radius * d.radius * (d.min_separation * d.min_separation / 4);
  const double free_area = (d.width - 2 * d.radius) * (d.height - 2 * d.radius) + 1e-9;
  if (area > 0.6 * d.width * d.height || (d.num_balls > 1 && free_area <= 0))
    throw FieldError("num_balls",
                     fmt::format(" {} balls of radius {} px cover {:.0f}% of the {} x {} px "
                                 "box: too dense to place at random (at most 60%)",
                                 d.num_balls, d.radius, 100 * area / (d.width * d.height), d.width, d.height));
}

std::vector<BallInit> sample_scene(const WorldDef& d, uint64_t seed, int64_t scene,
                                   const std::function<bool(double, double)>& is_free) {
  Rng rng(seed, static_cast<uint64_t>(scene));
  return sample_scene(d, rng, scene, is_free);
}

std::vector<BallInit> sample_scene(const WorldDef& d, Rng& rng, int64_t scene,
                                   const std::function<bool(double, double)>& is_free) {
  const int n = d.ball_counts.empty()
                    ? d.num_balls
                    : d.ball_counts[static_cast<size_t>(rng.below(static_cast<int64_t>(d.ball_counts.size())))];
  std::vector<BallInit> balls;
  balls.reserve(n);
  const double r = d.radius, min_d2 = d.min_separation * d.min_separation * r * r;
  int tries = 0;
  for (int i = 0; i < n; ++i) {
    BallInit b{};
    for (;;) {
      if (++tries > d.max_placement_tries)
        throw Error(
            fmt::format("scene {}: could not place {} balls of radius {} px at least {} radii apart in the {} x {} "
                        "px box after {} draws; use fewer balls or a smaller radius",
                        scene, n, r, d.min_separation, d.width, d.height, d.max_placement_tries));
      b.x = rng.uniform(r, d.width - r);
      b.y = rng.uniform(r, d.height - r);
      bool ok = !is_free || is_free(b.x, b.y);
      for (const BallInit& o : balls)
        if ((o.x - b.x) * (o.x - b.x) + (o.y - b.y) * (o.y - b.y) < min_d2) ok = false;
      if (ok) break;
    }
    if (d.velocity_law == WorldDef::VelocityLaw::kIntegerPerAxis) {
      const int64_t k = d.max_axis_speed;
      b.vx = static_cast<double>(rng.below(2 * k + 1) - k) / d.frame_dt;  // px per frame -> px/s
      b.vy = static_cast<double>(rng.below(2 * k + 1) - k) / d.frame_dt;
    } else {
      const double angle = rng.uniform(0.0, 2 * M_PI);
      const double speed = rng.uniform(0.0, d.max_speed);
      b.vx = speed * std::cos(angle);
      b.vy = speed * std::sin(angle);
    }
    b.mass = d.variable_mass
                 ? d.mass_choices[static_cast<size_t>(rng.below(static_cast<int64_t>(d.mass_choices.size())))]
                 : d.mass;
    balls.push_back(b);
  }
  return balls;
}

bool rejected(const WorldDef& d, const std::vector<std::vector<BallInit>>& frames) {
  if (!(d.reject_speed > 0)) return false;
  const double v2 = d.reject_speed * d.reject_speed;
  for (const auto& frame : frames)
    for (const BallInit& b : frame)
      if (b.vx * b.vx + b.vy * b.vy > v2 || !(b.x >= 0 && b.x <= d.width && b.y >= 0 && b.y <= d.height)) return true;
  return false;
}

void apply_preset(WorldDef& d, const std::string& name) {
  if (name != "npe2017" && name != "walls")
    throw FieldError("preset", fmt::format(": expected npe2017 (Chang et al. 2017's data regime) or walls (its walls "
                                           "worlds), found '{}'",
                                           name));
  // Chang et al. 2017, section 3 and the authors' data generator: velocities per axis drawn as
  // integers of px per frame in [-20, 20], masses from {1, 5, 25}, balls placed at least 2.5 radii
  // apart; trajectories with a speed over 60 px per frame, or a ball outside the box, are redrawn.
  d.preset = name;
  d.velocity_law = WorldDef::VelocityLaw::kIntegerPerAxis;
  d.max_axis_speed = 20;
  d.variable_mass = true;
  d.mass_choices = {1.0, 5.0, 25.0};
  d.min_separation = 2.5;
  d.reject_speed = 60.0 / d.frame_dt;
  d.max_speed = 60.0 / d.frame_dt;  // the normaliser: accepted speeds are at most 1
  if (name == "walls") {
    // the authors' walls worlds (Examples.js, Walls): 2 balls of mass 1 unless variableMass, the
    // objects placed with the margin 1.1 on the sum of their sizes; trained on O and L
    d.num_balls = 2;
    d.ball_counts.clear();
    d.variable_mass = false;
    d.mass = 1.0;
    d.min_separation = 2.2;
    d.walls = {WallShape::kO, WallShape::kL};
  }
}

WallsScene sample_walls_scene(const WorldDef& d, Rng& rng, int64_t scene) {
  WallsScene s;
  const WallShape shape = d.walls.size() == 1
                              ? d.walls[0]
                              : d.walls[static_cast<size_t>(rng.below(static_cast<int64_t>(d.walls.size())))];
  s.walls = draw_walls(shape, rng);
  s.balls = sample_scene(d, rng, scene, [&](double x, double y) { return s.walls.holds(x, y, d.radius); });
  place_free_blocks(s.walls, s.balls, d.radius, rng, scene);
  return s;
}

void parse_ball_counts(WorldDef& d, const std::string& text) {
  // getline drops a trailing empty item: "3,4," and ",3" are lists with an empty count
  if (!text.empty() && (text.back() == ',' || text.front() == ','))
    throw FieldError("num_balls", fmt::format(": expected a ball count or a list such as 3,4,5, found an empty count "
                                              "in '{}'",
                                              text));
  std::vector<int> counts;
  std::stringstream items(text);
  std::string tok;
  while (std::getline(items, tok, ',')) {
    size_t used = 0;
    long v = 0;
    try {
      v = std::stol(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    // counts above 1000 pass here so that validate() refuses them with the memory they would need
    if (used == 0 || tok.find_first_not_of(" \t", used) != std::string::npos || v < 1 || v > 2000000000)
      throw FieldError("num_balls", fmt::format(": expected a ball count (1 to 1000) or a list such as 3,4,5, "
                                                "found '{}' in '{}'",
                                                tok, text));
    counts.push_back(static_cast<int>(v));
  }
  if (counts.empty())
    throw FieldError("num_balls", fmt::format(": expected a ball count or a list such as 3,4,5, found '{}'", text));
  d.num_balls = *std::max_element(counts.begin(), counts.end());
  d.ball_counts.clear();
  if (counts.size() > 1) d.ball_counts = counts;
}

std::string format_ball_counts(const WorldDef& d) {
  if (d.ball_counts.empty()) return std::to_string(d.num_balls);
  std::string s;
  for (int n : d.ball_counts) s += (s.empty() ? "" : ",") + std::to_string(n);
  return s;
}

double kinetic_energy(const float* frame, int num_balls) {
  double e = 0;
  for (int i = 0; i < num_balls; ++i) {
    const float* s = frame + i * kStateDim;
    e += 0.5 * s[4] * (double(s[2]) * s[2] + double(s[3]) * s[3]);
  }
  return e;
}

}  // namespace npe::datagen
