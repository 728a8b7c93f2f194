// npe/datagen/world_identity.h: the identity of a dataset's world, what a model trained on it has
// learned: the box, the balls' radius and masses, the contacts (restitution, friction), the
// obstacles, the engine that simulated it, the frame interval and the normalisation. A checkpoint
// records its training world's identity; a model is evaluated on a dataset only when the two
// agree field by field (the ball count may differ: generalisation to other counts is a use of
// the model), or when the caller allows a named field to differ.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "npe/datagen/dataset.h"

namespace npe::datagen {

struct WorldIdentity {
  double width = 0, height = 0;  // box, px
  double radius = 0;             // ball radius, px
  std::vector<double> masses;    // the masses a ball can have: {mass} (uniform) or mass_choices
  std::vector<int> ball_counts;  // balls per scene ({num_balls} or the mixed counts); not compared
  double restitution = 1, friction = 0;
  std::string obstacles;  // format_obstacles's text ("" = none)
  std::string engine;     // "box2d" or "npe-gpu"
  double frame_dt = 0;    // s between frames
  double pos_scale = 0;   // px per normalised position unit
  double vel_scale = 0;   // px/s per normalised velocity unit
  // a walls world (world.walls non-empty); its shapes are not compared: testing on other shapes
  // (U, I after O, L) is a use of the model
  bool walls = false;

  // {"width": ..., "height": ..., ...}: the fields above under these names.
  nlohmann::json to_json() const;
  // Throws npe::Error naming `source` and the missing or mistyped field.
  static WorldIdentity from_json(const nlohmann::json& j, const std::string& source);
};

// The identity of the world a manifest describes.
WorldIdentity world_identity(const Manifest& manifest);

// One field on which two identities differ, with both values as text.
struct IdentityDifference {
  std::string field;  // a WorldIdentity field name ("masses", "restitution", ...)
  std::string first, second;
};

// The fields (all but ball_counts) on which `a` and `b` differ, in the order of the struct;
// numbers compare equal within a relative 1e-9.
std::vector<IdentityDifference> identity_differences(const WorldIdentity& a, const WorldIdentity& b);

// The names of the compared fields, in the order identity_differences reports them.
const std::vector<std::string>& identity_fields();

}  // namespace npe::datagen
