// npe/gpu/scenes.h: the engine's scene library, shared by the tests, npe-bench and the tools:
// random scenes of a dataset world, one large world, and explicit balls for analytic cases.
#pragma once

#include <cstdint>
#include <vector>

#include "npe/gpu/engine.h"

namespace npe::gpu {

// Initial condition of one ball, px and px/s.
struct BallInit {
  double x, y, vx, vy, mass;
};

struct Scene {
  WorldSpec spec;
  WorldState<double> state;  // px, px/s
};

// One world of `n` balls of radius `radius` px in a square box at packing fraction `phi`
// (ball area / box area, at most 0.5), centres on a jittered lattice without overlap,
// velocities uniform in direction with speeds up to `max_speed` px/s, unit masses; contact
// stiffness and substeps from choose_contact(2 * max_speed, radius, frame_dt); grid broad phase.
Scene large_world(int64_t n, double radius, double phi, double max_speed, uint64_t seed);

// As large_world, but centres uniform in the box with overlaps allowed (broad-phase tests: many
// pairs in contact at once).
Scene overlapping_world(int64_t n, double radius, double phi, double max_speed, uint64_t seed);

// One scene of the given balls ({x, y, vx, vy, mass}, px and px/s) of radius `radius` in a
// width x height box, with the given contact omega and substeps.
Scene explicit_scene(const std::vector<BallInit>& balls, double radius, double width, double height, double omega,
                     int substeps, double frame_dt = 0.1);

template <class T>
WorldState<T> cast_state(const WorldState<double>& s) {
  WorldState<T> o;
  o.x.assign(s.x.begin(), s.x.end());
  o.y.assign(s.y.begin(), s.y.end());
  o.vx.assign(s.vx.begin(), s.vx.end());
  o.vy.assign(s.vy.begin(), s.vy.end());
  return o;
}

// Total kinetic energy 0.5 sum m |v|^2 of scene `scene`, and its momentum (px/s * mass).
double kinetic_energy(const WorldSpec& spec, const WorldState<double>& s, int64_t scene);
void momentum(const WorldSpec& spec, const WorldState<double>& s, int64_t scene, double& px, double& py);

// Mechanical energy of one scene of balls of equal `radius` ({x, y, vx, vy, mass}, px, px/s):
// kinetic energy plus the penalty contacts' spring energy, 0.5 m_eff omega^2 delta^2 per
// overlapping pair, wall or obstacle. This is what the engine conserves (up to the integrator's
// error) when restitution is 1; kinetic energy alone dips while balls are in contact.
double mechanical_energy(const WorldSpec& spec, const std::vector<BallInit>& balls, double radius);

// Kinetic energy of the scene when no contact is active (no overlap with a ball, wall or
// obstacle), NaN otherwise. Energy drift is measured on contact-free frames: inside a contact,
// symplectic Euler's positions and velocities are half a substep apart, so the measured
// mechanical energy wobbles by O(omega h) of the contact's energy and returns afterwards.
double contact_free_energy(const WorldSpec& spec, const std::vector<BallInit>& balls, double radius);

}  // namespace npe::gpu
