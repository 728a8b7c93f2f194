// npe/datagen/world.h: the static description of a 2-D ball world, the random initial scenes
// drawn in it, and their simulation with Box2D 2.4.
//
// Units: pixels (px), seconds (s), mass units. Box2D runs in metres (Box2dSettings::pixels_per_meter).
// The recorded state of a ball is [x/W, y/W, vx/v_max, vy/v_max, mass], W = width, as in
// Chang et al. 2017 (both axes divided by the width).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "npe/core/rng.h"
#include "npe/datagen/walls.h"
#include "npe/gpu/obstacles.h"
#include "npe/gpu/scenes.h"

namespace npe::datagen {

// The engine's obstacles and initial ball states, used by the world description.
using gpu::BallInit;
using ::npe::Rng;
using gpu::Obstacle;
using gpu::format_obstacles;
using gpu::parse_obstacles;

// Box2D steps per frame when Box2dSettings::substeps is 0.
constexpr int kBox2dDefaultSubsteps = 10;
// Relative kinetic-energy drift above which a scene of an elastic, frictionless world is
// re-simulated with 4x (then 16x) the substeps (see simulate_box2d).
constexpr double kBox2dEnergyTolerance = 1e-4;

// Features per ball per frame: x, y, vx, vy (normalised), mass.
constexpr int kStateDim = 5;

// Box2D's own settings (npe-datagen --engine box2d): they change how Box2D integrates the world,
// not the world.
struct Box2dSettings {
  int substeps = 0;                 // Box2D steps per frame; 0 = kBox2dDefaultSubsteps
  double pixels_per_meter = 100.0;  // radius 60 px = 0.6 m: inside Box2D's 0.1-10 m range
  int velocity_iterations = 20;
  int position_iterations = 10;
};

// npe's engine's settings (npe-datagen --engine gpu): the penalty contact law and its substeps.
// Zero (ramp: negative) means "chosen from the world"; engine_world.h's resolve_engine resolves
// them once, and a dataset written by the engine records the resolved values.
struct EngineSettings {
  int substeps = 0;            // engine substeps per frame (0: chosen with the stiffness)
  double contact_omega = 0.0;  // contact spring omega, 1/s (0: gpu::choose_contact)
  double contact_ramp = -1.0;  // onset ramp of the contact force, px (negative: chosen; 0: linear law)
};

// WorldDef: the world a dataset's scenes are drawn from and simulated in: the box, the balls, the
// laws their initial states are sampled by (per scene: sample_scene -> BallInit), the contact
// material and the frames recorded; then each simulator's own settings, apart. Defaults reproduce
// the public PyTorch NPE re-implementation's recipe (800x600 px box, 4 balls of radius 60 px,
// speeds up to 60 px/s, 60 frames 0.1 s apart, elastic and frictionless contacts).
struct WorldDef {
  double width = 800.0;   // box width, px (walls at x = 0 and x = width)
  double height = 600.0;  // box height, px (walls at y = 0 and y = height)
  double radius = 60.0;   // ball radius, px
  int num_balls = 4;      // balls per scene; with ball_counts, the slots per scene (their maximum)
  // Mixed ball counts (npe-datagen --num_balls 3,4,5): each scene draws its count n uniformly
  // from this list; its balls fill slots [0, n) and slots [n, num_balls) are absent, recorded as
  // all-zero states (mass 0) in every frame. Empty: every scene has num_balls balls.
  std::vector<int> ball_counts;
  double mass = 1.0;           // every ball's mass (uniform mass)
  bool variable_mass = false;  // draw masses from mass_choices instead
  std::vector<double> mass_choices = {1.0, 5.0, 25.0};
  double max_speed = 60.0;  // initial speed ~ U[0, max_speed], px/s; velocity normaliser
  // How initial velocities are drawn: kPolar, direction U[0, 2 pi) and speed U[0, max_speed];
  // kIntegerPerAxis, vx and vy each an integer of px per frame, uniform in
  // [-max_axis_speed, max_axis_speed] (Chang et al. 2017's data, --preset npe2017).
  enum class VelocityLaw { kPolar, kIntegerPerAxis };
  VelocityLaw velocity_law = VelocityLaw::kPolar;
  int max_axis_speed = 20;      // px per frame, kIntegerPerAxis only
  double min_separation = 2.0;  // initial centre distances at least this many radii (2: touching)
  // Rejection (--preset npe2017): > 0, a scene in which some ball's speed exceeds reject_speed
  // (px/s) or some ball's centre leaves the box is drawn again (Box2D engine only). 0: none.
  double reject_speed = 0.0;
  int max_placement_tries = 100000;  // per scene, for non-overlapping initial positions
  std::string preset;                // the --preset that set these fields ("" = none), recorded
  double frame_dt = 0.1;             // time between recorded frames, s
  int timesteps = 60;                // recorded frames per scene
  double restitution = 1.0;
  double friction = 0.0;
  std::vector<Obstacle> obstacles;  // static obstacles (GPU engine only)
  // Walls worlds (Chang et al. 2017, section 4; walls.h): non-empty, each scene draws its wall
  // shape uniformly from this list, then its layout, and its balls inside the walls (then I's free
  // blocks); the 800 x 600 px box only, Box2D only. Empty: no walls.
  std::vector<WallShape> walls;

  Box2dSettings box2d;    // used by --engine box2d only
  EngineSettings engine;  // used by --engine gpu only
};

// The dataset's units, derived from the world in one place: a recorded position is
// x_px / pos_scale and a velocity v_px_per_s / vel_scale, with pos_scale the box width for both
// axes (Chang et al. 2017) and vel_scale the largest initial speed.
struct Normalisation {
  double pos_scale = 0;  // px per normalised position unit
  double vel_scale = 0;  // px/s per normalised velocity unit
  double frame_dt = 0;   // s between frames
  // Normalised positions advance by v * step_scale() per frame, v normalised.
  double step_scale() const { return frame_dt * vel_scale / pos_scale; }
};
inline Normalisation normalisation(const WorldDef& def) { return {def.width, def.max_speed, def.frame_dt}; }

// Throws npe::Error naming the offending flag (--radius, --num_balls, ...) when `def` describes
// no valid world: non-positive sizes, balls that cannot fit, fewer than 3 frames, etc.
void validate(const WorldDef& def);
// The world's limits under Box2D (npe-datagen --engine box2d, and a Box2D dataset's manifest):
// Box2D moves a body at most 2 m per step and clamps faster ones, so a ball at twice max_speed
// (after a collision) must move at most that far in one of def.box2d's steps. Throws
// npe::FieldError naming substeps otherwise.
void validate_box2d(const WorldDef& def);


// Applies a named preset to `def` ("npe2017": Chang et al. 2017's data regime: velocities per
// axis integers in [-20, 20] px per frame, masses from {1, 5, 25}, initial centres at least 2.5
// radii apart, scenes redrawn when a speed exceeds 60 px per frame or a ball leaves the box;
// max_speed, the velocity normaliser, becomes 60 px per frame; "walls": the paper's walls worlds,
// npe2017's velocities and rejection with 2 balls of mass 1 placed at least 2.2 radii apart
// (the authors' margin 1.1) inside walls of the shapes O and L, the training shapes). Throws
// npe::Error naming --preset for an unknown name.
void apply_preset(WorldDef& def, const std::string& name);

// A walls world's scene (def.walls non-empty) drawn from `rng`: its wall shape (uniform over
// def.walls) and layout (draw_walls), its balls inside the walls (sample_scene) and I's free
// blocks (place_free_blocks). Throws npe::Error as those do.
struct WallsScene {
  WallLayout walls;
  std::vector<BallInit> balls;
};
WallsScene sample_walls_scene(const WorldDef& def, Rng& rng, int64_t scene);

// Parses --num_balls: "4" (every scene) or a comma-separated list "3,4,5" (mixed counts; sets
// ball_counts and num_balls = the largest). Throws npe::Error naming --num_balls.
void parse_ball_counts(WorldDef& def, const std::string& text);
// "4" or "3,4,5": the inverse of parse_ball_counts.
std::string format_ball_counts(const WorldDef& def);

// Draws scene `scene` of the dataset with seed `seed`; depends only on (seed, scene).
// With ball_counts, first the scene's ball count (uniform over the list). Positions uniform in
// [r, W-r] x [r, H-r], each redrawn while it lies closer than min_separation radii to an earlier
// ball; velocities as velocity_law says; masses from mass_choices when variable_mass.
// Throws npe::Error naming num_balls, radius and the box when no placement is found in
// max_placement_tries draws.
// `is_free(x, y)`, when given, must also accept a centre (used to keep balls off obstacles).
// Returns the scene's balls (fewer than num_balls with ball_counts).
std::vector<BallInit> sample_scene(const WorldDef& def, uint64_t seed, int64_t scene,
                                   const std::function<bool(double, double)>& is_free = {});
// The same, drawing from `rng` (the rejection loop draws a scene's later attempts from the stream
// its first attempt left).
std::vector<BallInit> sample_scene(const WorldDef& def, Rng& rng, int64_t scene,
                                   const std::function<bool(double, double)>& is_free = {});

// Whether a simulated scene breaks the world's rejection rule (reject_speed > 0): some speed above
// reject_speed, or some centre outside [0, W] x [0, H]. `frames` as simulate_box2d_px returns.
bool rejected(const WorldDef& def, const std::vector<std::vector<BallInit>>& frames);

// Box2D simulation and recording of scene `scene` (what npe-datagen's Box2D engine writes):
// draws it, simulates it and, while the world's rejection rule rejects it, draws it again from the
// same stream (at most 1000 attempts; then npe::Error naming --preset). out: [timesteps,
// num_balls, kStateDim] float32, absent slots zero. Returns the attempts made (1: none rejected).
// A walls world's scene is drawn with sample_walls_scene, its blocks are static boxes, and its walls
// are recorded into `walls_out` ([kWallSlots, kWallDim], record_walls; required then, else unused).
int simulate_scene_box2d(const WorldDef& def, uint64_t seed, int64_t scene, float* out, float* walls_out = nullptr);

// Simulates one scene with Box2D and records `def.timesteps` frames (frame 0 = `init`) of
// def.num_balls slots; slots past init.size() (mixed ball counts) are zero.
// In an elastic, frictionless world a scene whose kinetic energy drifts by more than
// kBox2dEnergyTolerance (a light ball trapped between a heavy ball and a wall, which Box2D's
// one-restitution-per-step solver gets wrong) is re-simulated with 4x, then 16x the substeps.
// out: [timesteps, num_balls, kStateDim] float32, normalised as described above.
// `walls`: a walls world's walls besides the box's four sides: the outline of their enclosed space
// (WallLayout::room_outline, a Box2D chain loop: no seams between blocks) and the free blocks
// (boxes).
void simulate_box2d(const WorldDef& def, const std::vector<BallInit>& init, float* out,
                    const WallLayout* walls = nullptr);

// Same simulation, unnormalised, in float64 px and px/s: [timesteps][ball] = {x, y, vx, vy, m}.
std::vector<std::vector<BallInit>> simulate_box2d_px(const WorldDef& def, const std::vector<BallInit>& init,
                                                     const WallLayout* walls = nullptr);

// Total kinetic energy 0.5 sum m |v|^2 of one recorded frame ([num_balls, kStateDim] normalised
// states), in units of mass * (normalised velocity)^2 (absent slots have mass 0).
double kinetic_energy(const float* frame, int num_balls);


}  // namespace npe::datagen
