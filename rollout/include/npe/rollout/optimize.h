// npe/rollout/optimize.h: trajectory optimisation through the differentiable simulator: the initial
// velocity of one ball (the "shooter") is chosen by gradient descent so that another ball (the
// "target ball") is at a target position after a given number of frames (npe-optimize).
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "npe/datagen/dataset.h"
#include "npe/gpu/engine.h"

namespace npe::rollout {

struct LaunchProblem {
  datagen::WorldDef world;               // box, radius, frame_dt, restitution, contact law (engine)
  std::vector<datagen::BallInit> balls;  // initial state, px, px/s, mass
  int shooter = 0;                       // ball whose initial velocity is optimised
  int target_ball = 1;                   // ball that must reach the target
  double target_x = 0, target_y = 0;     // px
  int frames = 20;                       // the target time is frames * frame_dt

  // Reads a problem from JSON (see data/examples/launch.json). Throws npe::Error naming the file
  // and the field, what was expected and what was found.
  static LaunchProblem from_json_file(const std::string& path);
  // The same, from the file's text (`path` names it in errors).
  static LaunchProblem from_json_text(const std::string& text, const std::string& path);
};

enum class LaunchMethod {
  kGaussNewton,      // Levenberg-Marquardt on the 2x2 Jacobian of the final position (two adjoint
                     // sweeps in one batched backward pass: scenes never mix), damped, steps capped
                     // at max_speed; a step is taken only when it brings the ball closer
  kGradientDescent,  // steepest descent on the squared distance; line search by quadratic
                     // interpolation with Armijo's condition
};

struct LaunchOptions {
  LaunchMethod method = LaunchMethod::kGaussNewton;
  int iterations = 100;       // at most this many gradient evaluations
  double tolerance_px = 0.1;  // stop once the target ball ends this close to the target
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat64;
};

struct LaunchResult {
  double guess_vx = 0, guess_vy = 0;  // first guess: aimed at the target ball's centre
  double vx = 0, vy = 0;              // optimised initial velocity of the shooter, px/s
  std::vector<double> distance_px;    // distance to the target after each iteration's rollout
  int iterations = 0;                 // gradient evaluations taken
  int rollouts = 0;                   // forward rollouts, trial steps included
  bool converged = false;             // distance_px.back() <= tolerance_px
  torch::Tensor guess, optimised;     // rollouts [frames + 1, N, 4] (px, px/s), CPU float64
};

// The loss is the squared distance (px^2) of the target ball from the target at the last frame;
// the first guess sends the shooter at the target ball's centre at the world's max_speed.
// distance_px has iterations + 1 entries: the distance before each step and after the last.
// The problem's world.num_balls is ignored (the balls give the count). Throws
// npe::Error on a bad problem (ball indices, frames < 1, overlapping balls, ...).
LaunchResult optimize_launch(const LaunchProblem& problem, const LaunchOptions& options);

// The engine spec of a problem (one scene).
gpu::WorldSpec launch_spec(const LaunchProblem& problem);

// Writes the two rollouts of `result` as an npe dataset that npe-render and npe-eval read:
// <prefix>_test.npy ([2, frames + 1, N, 5] float32: scene 0 the first guess, scene 1 the optimised
// launch, normalised as npe-datagen's), <prefix>.json (engine "npe-gpu", its resolved settings) and
// <prefix>_summary.json (`problem_path`, `method`, both velocities, iterations, rollouts,
// convergence and the distances). Each file is written atomically. Throws npe::Error naming the
// file that could not be written.
void write_launch_outputs(const LaunchProblem& problem, const LaunchResult& result, const std::string& problem_path,
                          const std::string& method, const std::string& prefix);

}  // namespace npe::rollout
