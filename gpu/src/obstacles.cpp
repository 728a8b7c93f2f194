#include "npe/gpu/obstacles.h"

#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "engine_internal.h"
#include "npe/core/error.h"

namespace npe::gpu {

std::vector<Obstacle> parse_obstacles(const std::string& text) {
  std::vector<Obstacle> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ';')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    const auto colon = item.find(':');
    const std::string kind = colon == std::string::npos ? "" : item.substr(0, colon);
    const bool capsule = kind == "capsule", box = kind == "box";
    if (!capsule && !box)
      throw FieldError("obstacles", fmt::format(": item '{}': expected 'capsule:x0,y0,x1,y1,r' or "
                                                "'box:cx,cy,half_width,half_height,angle_deg', found kind '{}'",
                                                item, kind));
    std::vector<double> v;
    std::stringstream nums(item.substr(colon + 1));
    std::string tok;
    while (std::getline(nums, tok, ',')) {
      size_t used = 0;
      double x = 0;
      try {
        x = std::stod(tok, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || tok.find_first_not_of(" \t", used) != std::string::npos || !std::isfinite(x))
        throw FieldError("obstacles", fmt::format(": item '{}': expected a finite number, found '{}'", item, tok));
      v.push_back(x);
    }
    if (v.size() != 5)
      throw FieldError("obstacles", fmt::format(": item '{}': expected 5 numbers, found {}", item, v.size()));
    Obstacle o;
    o.kind = capsule ? Obstacle::Kind::kCapsule : Obstacle::Kind::kBox;
    o.ax = v[0];
    o.ay = v[1];
    o.bx = v[2];
    o.by = v[3];
    if (capsule) {
      o.radius = v[4];
      if (!(o.radius > 0))
        throw FieldError("obstacles",
                         fmt::format(": item '{}': expected a positive capsule radius, found {}", item, v[4]));
    } else {
      o.angle = v[4] * M_PI / 180.0;
      if (!(o.bx > 0 && o.by > 0))
        throw FieldError("obstacles",
                         fmt::format(": item '{}': expected positive half extents, found {} x {}", item, o.bx, o.by));
    }
    out.push_back(o);
  }
  return out;
}

std::string format_obstacles(const std::vector<Obstacle>& obstacles) {
  std::string s;
  for (const Obstacle& o : obstacles) {
    if (!s.empty()) s += ";";
    if (o.kind == Obstacle::Kind::kCapsule)
      s += fmt::format("capsule:{},{},{},{},{}", o.ax, o.ay, o.bx, o.by, o.radius);
    else
      s += fmt::format("box:{},{},{},{},{}", o.ax, o.ay, o.bx, o.by, o.angle * 180.0 / M_PI);
  }
  return s;
}

bool clear_of_obstacles(const std::vector<Obstacle>& obstacles, double radius, double x, double y) {
  WorldSpec s;
  s.obstacles = obstacles;
  for (const auto& o : detail::kernel_obstacles<double>(s))
    if (!(detail::sdf_obstacle(o, x, y).phi > radius)) return false;
  return true;
}

}  // namespace npe::gpu
