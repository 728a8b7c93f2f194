#include "npe/datagen/world_identity.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/core/error.h"
#include "npe/core/json.h"

namespace npe::datagen {
namespace {

using json = nlohmann::json;

template <typename T>
T field(const json& j, const char* key, const std::string& source) {
  return json_field<T>(j, key, source, "world identity");
}

bool same(double a, double b) { return a == b || std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b)); }

// The same set of masses, in any order.
bool same(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](double x, double y) { return same(x, y); });
}

}  // namespace

json WorldIdentity::to_json() const {
  return {{"width", width},       {"height", height},           {"radius", radius},
          {"masses", masses},     {"ball_counts", ball_counts}, {"restitution", restitution},
          {"friction", friction}, {"obstacles", obstacles},     {"engine", engine},
          {"frame_dt", frame_dt}, {"pos_scale", pos_scale},     {"vel_scale", vel_scale},
          {"walls", walls}};
}

WorldIdentity WorldIdentity::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(fmt::format("{}: world identity is not a JSON object", source));
  WorldIdentity w;
  w.width = field<double>(j, "width", source);
  w.height = field<double>(j, "height", source);
  w.radius = field<double>(j, "radius", source);
  w.masses = field<std::vector<double>>(j, "masses", source);
  w.ball_counts = field<std::vector<int>>(j, "ball_counts", source);
  w.restitution = field<double>(j, "restitution", source);
  w.friction = field<double>(j, "friction", source);
  w.obstacles = field<std::string>(j, "obstacles", source);
  w.engine = field<std::string>(j, "engine", source);
  w.frame_dt = field<double>(j, "frame_dt", source);
  w.pos_scale = field<double>(j, "pos_scale", source);
  w.vel_scale = field<double>(j, "vel_scale", source);
  if (j.contains("walls")) w.walls = field<bool>(j, "walls", source);  // absent before the walls worlds
  return w;
}

WorldIdentity world_identity(const Manifest& m) {
  const WorldDef& d = m.world;
  WorldIdentity w;
  w.width = d.width;
  w.height = d.height;
  w.radius = d.radius;
  w.masses = d.variable_mass ? d.mass_choices : std::vector<double>{d.mass};
  w.ball_counts = d.ball_counts.empty() ? std::vector<int>{d.num_balls} : d.ball_counts;
  w.restitution = d.restitution;
  w.friction = d.friction;
  w.obstacles = format_obstacles(d.obstacles);
  w.engine = m.engine;
  w.frame_dt = d.frame_dt;
  w.pos_scale = m.pos_scale();
  w.vel_scale = m.vel_scale();
  w.walls = !d.walls.empty();
  return w;
}

const std::vector<std::string>& identity_fields() {
  static const std::vector<std::string> names = {"width",       "height",    "radius",    "masses",
                                                 "restitution", "friction",  "obstacles", "engine",
                                                 "frame_dt",    "pos_scale", "vel_scale", "walls"};
  return names;
}

std::vector<IdentityDifference> identity_differences(const WorldIdentity& a, const WorldIdentity& b) {
  std::vector<IdentityDifference> out;
  auto number = [&](const char* name, double x, double y) {
    if (!same(x, y)) out.push_back({name, fmt::format("{}", x), fmt::format("{}", y)});
  };
  auto text = [&](const char* name, const std::string& x, const std::string& y) {
    if (x != y) out.push_back({name, x.empty() ? "none" : x, y.empty() ? "none" : y});
  };
  number("width", a.width, b.width);
  number("height", a.height, b.height);
  number("radius", a.radius, b.radius);
  if (!same(a.masses, b.masses))
    out.push_back(
        {"masses", fmt::format("[{}]", fmt::join(a.masses, ", ")), fmt::format("[{}]", fmt::join(b.masses, ", "))});
  number("restitution", a.restitution, b.restitution);
  number("friction", a.friction, b.friction);
  text("obstacles", a.obstacles, b.obstacles);
  text("engine", a.engine, b.engine);
  number("frame_dt", a.frame_dt, b.frame_dt);
  number("pos_scale", a.pos_scale, b.pos_scale);
  number("vel_scale", a.vel_scale, b.vel_scale);
  if (a.walls != b.walls) out.push_back({"walls", a.walls ? "walls" : "none", b.walls ? "walls" : "none"});
  return out;
}

}  // namespace npe::datagen
