// npe/gpu/obstacles.h: static obstacles of a ball world (capsules and oriented boxes), their
// text form (npe-datagen --obstacles) and the clearance test used when placing balls.
#pragma once

#include <string>
#include <vector>

namespace npe::gpu {

// A static obstacle (the engine simulates them; npe-render draws them). px and radians.
struct Obstacle {
  enum class Kind { kCapsule, kBox };
  Kind kind = Kind::kCapsule;
  double ax = 0, ay = 0;  // capsule: first end of the segment; box: centre
  double bx = 0, by = 0;  // capsule: second end; box: half extents (> 0)
  double radius = 0;      // capsule radius (> 0); unused for boxes
  double angle = 0;       // box rotation, counter-clockwise; unused for capsules
};

// Parses --obstacles: items separated by ';', each "capsule:x0,y0,x1,y1,r" or
// "box:cx,cy,half_width,half_height,angle_deg" (px, degrees). Throws npe::Error naming
// --obstacles, the item, what was expected and what was found.
std::vector<Obstacle> parse_obstacles(const std::string& text);
// The inverse of parse_obstacles (angles in degrees).
std::string format_obstacles(const std::vector<Obstacle>& obstacles);

// True when a ball of `radius` px centred at (x, y) px is clear of every obstacle (signed
// distance from the centre to each obstacle's surface greater than the radius).
bool clear_of_obstacles(const std::vector<Obstacle>& obstacles, double radius, double x, double y);

}  // namespace npe::gpu
