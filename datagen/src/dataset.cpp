#include "npe/datagen/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/datagen/io.h"
#include "npe/datagen/json.h"
#include "npe/datagen/npy.h"

namespace npe::datagen {
namespace fs = std::filesystem;
using nlohmann::json;

SplitSizes split_sizes(int64_t n) {
  if (n < 3) throw Error(fmt::format("--num_scenes: expected at least 3 scenes (one per split), found {}", n));
  SplitSizes s{};
  s.val = std::max<int64_t>(1, (n * 15 + 50) / 100);
  s.test = std::max<int64_t>(1, (n * 15 + 50) / 100);
  s.train = n - s.val - s.test;
  return s;
}

fs::path manifest_path(const std::string& prefix) { return fs::path(prefix + ".json"); }
fs::path split_path(const std::string& prefix, const std::string& split) {
  return fs::path(prefix + "_" + split + ".npy");
}

const SplitInfo& Manifest::split(const std::string& name) const {
  for (const SplitInfo& s : splits)
    if (s.name == name) return s;
  throw Error(fmt::format("manifest has no split '{}'", name));
}

json Manifest::to_json() const {
  const WorldDef& w = world;
  json j;
  j["format"] = "npe-dataset";
  j["format_version"] = 1;
  j["npe_version"] = npe_version;
  j["engine"] = engine;
  j["seed"] = seed;
  j["num_scenes"] = num_scenes;
  j["state_layout"] = {"x/pos_scale", "y/pos_scale", "vx/vel_scale", "vy/vel_scale", "mass"};
  j["normalisation"] = {{"pos_scale", pos_scale()}, {"vel_scale", vel_scale()},
                        {"pos_units", "px"}, {"vel_units", "px/s"}};
  j["world"] = {{"width", w.width},         {"height", w.height},
                {"radius", w.radius},       {"num_balls", w.num_balls},
                {"mass", w.mass},           {"variable_mass", w.variable_mass},
                {"mass_choices", w.mass_choices},
                {"max_speed", w.max_speed}, {"frame_dt", w.frame_dt},
                {"substeps", w.substeps},   {"timesteps", w.timesteps},
                {"restitution", w.restitution}, {"friction", w.friction},
                {"gravity", 0.0},           {"pixels_per_meter", w.pixels_per_meter},
                {"velocity_iterations", w.velocity_iterations},
                {"position_iterations", w.position_iterations},
                {"contact_omega", w.contact_omega},
                {"contact_ramp", w.contact_ramp}};
  json obs = json::array();
  for (const Obstacle& o : w.obstacles)
    obs.push_back({{"kind", o.kind == Obstacle::Kind::kCapsule ? "capsule" : "box"},
                   {"a", {o.ax, o.ay}}, {"b", {o.bx, o.by}}, {"radius", o.radius},
                   {"angle", o.angle}});
  j["world"]["obstacles"] = obs;
  // Written only when they differ from the defaults, so that older readers still accept
  // uniform-count datasets.
  if (!w.ball_counts.empty()) j["world"]["ball_counts"] = w.ball_counts;
  if (w.velocity_law == WorldDef::VelocityLaw::kIntegerPerAxis) {
    j["world"]["velocity_law"] = "integer_per_axis";
    j["world"]["max_axis_speed_px_per_frame"] = w.max_axis_speed;
  }
  if (w.min_separation != 2.0) j["world"]["min_separation"] = w.min_separation;
  if (w.reject_speed > 0) j["world"]["reject_speed"] = w.reject_speed;
  if (!w.preset.empty()) j["world"]["preset"] = w.preset;
  json sp = json::array();
  for (const SplitInfo& s : splits)
    sp.push_back({{"name", s.name}, {"file", s.file}, {"first_scene", s.first_scene},
                  {"scenes", s.scenes}, {"windows", s.windows},
                  {"shape", {s.scenes, w.timesteps, w.num_balls, kStateDim}}});
  j["splits"] = sp;
  return j;
}

namespace {
template <typename T>
T field(const json& j, const char* key, const std::string& source, const std::string& where) {
  if (!j.is_object() || !j.contains(key))
    throw Error(fmt::format("{}: manifest field '{}{}' is missing", source, where, key));
  if (auto v = json_as<T>(j.at(key))) return *v;
  throw Error(fmt::format("{}: manifest field '{}{}' has the wrong type or range (found {})", source, where, key,
                          j.at(key).dump().substr(0, 80)));
}
}  // namespace

Manifest Manifest::from_json(const json& j, const std::string& src) {
  if (!j.is_object()) throw Error(fmt::format("{}: manifest is not a JSON object", src));
  const auto fmt_name = field<std::string>(j, "format", src, "");
  if (fmt_name != "npe-dataset")
    throw Error(fmt::format("{}: manifest 'format' expected \"npe-dataset\", found \"{}\"", src, fmt_name));
  const int version = field<int>(j, "format_version", src, "");
  if (version != 1)
    throw Error(fmt::format("{}: manifest 'format_version' expected 1, found {}", src, version));
  Manifest m;
  m.npe_version = field<std::string>(j, "npe_version", src, "");
  m.engine = field<std::string>(j, "engine", src, "");
  m.seed = field<uint64_t>(j, "seed", src, "");
  m.num_scenes = field<int64_t>(j, "num_scenes", src, "");
  const json& w = j.contains("world") ? j["world"] : json();
  WorldDef& d = m.world;
  d.width = field<double>(w, "width", src, "world.");
  d.height = field<double>(w, "height", src, "world.");
  d.radius = field<double>(w, "radius", src, "world.");
  d.num_balls = field<int>(w, "num_balls", src, "world.");
  d.mass = field<double>(w, "mass", src, "world.");
  d.variable_mass = field<bool>(w, "variable_mass", src, "world.");
  d.mass_choices = field<std::vector<double>>(w, "mass_choices", src, "world.");
  d.max_speed = field<double>(w, "max_speed", src, "world.");
  d.frame_dt = field<double>(w, "frame_dt", src, "world.");
  d.substeps = field<int>(w, "substeps", src, "world.");
  d.timesteps = field<int>(w, "timesteps", src, "world.");
  d.restitution = field<double>(w, "restitution", src, "world.");
  d.friction = field<double>(w, "friction", src, "world.");
  d.pixels_per_meter = field<double>(w, "pixels_per_meter", src, "world.");
  // Optional fields (absent in datasets written before the GPU engine existed).
  if (w.is_object() && w.contains("contact_omega"))
    d.contact_omega = field<double>(w, "contact_omega", src, "world.");
  if (w.is_object() && w.contains("contact_ramp"))
    d.contact_ramp = field<double>(w, "contact_ramp", src, "world.");
  if (w.is_object() && w.contains("obstacles")) {
    if (!w["obstacles"].is_array())
      throw Error(fmt::format("{}: manifest field 'world.obstacles' is not an array", src));
    for (const json& o : w["obstacles"]) {
      Obstacle ob;
      const auto kind = field<std::string>(o, "kind", src, "world.obstacles[].");
      if (kind != "capsule" && kind != "box")
        throw Error(fmt::format("{}: manifest field 'world.obstacles[].kind' expected \"capsule\" "
                                "or \"box\", found \"{}\"", src, kind));
      ob.kind = kind == "capsule" ? Obstacle::Kind::kCapsule : Obstacle::Kind::kBox;
      const auto a = field<std::array<double, 2>>(o, "a", src, "world.obstacles[].");
      const auto b = field<std::array<double, 2>>(o, "b", src, "world.obstacles[].");
      ob.ax = a[0];
      ob.ay = a[1];
      ob.bx = b[0];
      ob.by = b[1];
      ob.radius = field<double>(o, "radius", src, "world.obstacles[].");
      ob.angle = field<double>(o, "angle", src, "world.obstacles[].");
      d.obstacles.push_back(ob);
    }
  }
  if (w.is_object() && w.contains("ball_counts")) d.ball_counts = field<std::vector<int>>(w, "ball_counts", src, "world.");
  if (w.is_object() && w.contains("velocity_law")) {
    const auto law = field<std::string>(w, "velocity_law", src, "world.");
    if (law != "integer_per_axis" && law != "polar")
      throw Error(fmt::format("{}: manifest field 'world.velocity_law' expected \"polar\" or \"integer_per_axis\", "
                              "found \"{}\"", src, law));
    if (law == "integer_per_axis") {
      d.velocity_law = WorldDef::VelocityLaw::kIntegerPerAxis;
      d.max_axis_speed = field<int>(w, "max_axis_speed_px_per_frame", src, "world.");
    }
  }
  if (w.is_object() && w.contains("min_separation")) d.min_separation = field<double>(w, "min_separation", src, "world.");
  if (w.is_object() && w.contains("reject_speed")) d.reject_speed = field<double>(w, "reject_speed", src, "world.");
  if (w.is_object() && w.contains("preset")) d.preset = field<std::string>(w, "preset", src, "world.");
  try {
    validate(d);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: manifest world is invalid: {}", src, e.what()));
  }
  if (!j.contains("splits") || !j["splits"].is_array())
    throw Error(fmt::format("{}: manifest field 'splits' is missing or not an array", src));
  for (const json& s : j["splits"]) {
    SplitInfo si;
    si.name = field<std::string>(s, "name", src, "splits[].");
    si.file = field<std::string>(s, "file", src, "splits[].");
    si.first_scene = field<int64_t>(s, "first_scene", src, "splits[].");
    si.scenes = field<int64_t>(s, "scenes", src, "splits[].");
    si.windows = field<int64_t>(s, "windows", src, "splits[].");
    // A split file lies beside its manifest: a plain file name, never a path.
    if (si.file.empty() || si.file.find('/') != std::string::npos || si.file == "." || si.file == "..")
      throw Error(fmt::format("{}: split '{}': field 'file' expected a file name beside the manifest, found \"{}\"",
                              src, si.name, si.file));
    // Beyond 10^12 scenes (4 TB per frame-ball) a count is corrupt; checked before any product.
    if (si.scenes > 1000000000000 || si.first_scene < 0 || si.first_scene > 1000000000000)
      throw Error(fmt::format("{}: split '{}' has {} scenes from scene {}; expected 1 to 10^12 scenes from a "
                              "non-negative index", src, si.name, si.scenes, si.first_scene));
    if (si.scenes < 1 || si.windows != si.scenes * (d.timesteps - 2))
      throw Error(fmt::format("{}: split '{}' has {} scenes and {} windows; expected at least one "
                              "scene and windows = scenes * (timesteps - 2) = {}",
                              src, si.name, si.scenes, si.windows, si.scenes * (d.timesteps - 2)));
    m.splits.push_back(si);
  }
  return m;
}

Manifest parse_manifest(const std::string& text, const std::string& source) {
  return Manifest::from_json(parse_json(text, source, "an npe dataset manifest"), source);
}

Manifest read_manifest(const std::string& prefix) {
  const fs::path path = manifest_path(prefix);
  return parse_manifest(read_file(path), path.string());
}

Trajectories load_split(const std::string& prefix, const Manifest& m, const std::string& split) {
  const fs::path path = manifest_path(prefix).parent_path() / m.split(split).file;
  return check_split(m, split, read_npy_f32(path), path.string());
}

Trajectories check_split(const Manifest& m, const std::string& split, NpyArray a, const std::string& name) {
  const SplitInfo& info = m.split(split);
  const std::vector<int64_t> expected = {info.scenes, m.world.timesteps, m.world.num_balls, kStateDim};
  if (a.shape != expected)
    throw Error(fmt::format("{}: array shape expected ({}) [scenes, T, N, 5] as the manifest "
                            "says, found ({})",
                            name, fmt::join(expected, ", "), fmt::join(a.shape, ", ")));
  const int64_t T = m.world.timesteps, N = m.world.num_balls;
  const bool mixed = !m.world.ball_counts.empty();
  for (size_t i = 0; i < a.data.size(); ++i)
    if (!std::isfinite(a.data[i]))
      throw Error(fmt::format("{}: value {} (scene {}) is not finite", name, i, i / (T * N * kStateDim)));
  // Masses: positive for the balls of a scene; with mixed ball counts, a scene's n balls fill slots
  // [0, n) and the other slots are all-zero in every frame.
  for (int64_t s = 0; s < info.scenes; ++s) {
    const float* scene = a.data.data() + s * T * N * kStateDim;
    int64_t n = 0;
    while (n < N && scene[n * kStateDim + 4] > 0) ++n;
    if (!mixed && n < N)
      throw Error(fmt::format("{}: mass at element {} expected > 0, found {}", name,
                              s * T * N * kStateDim + n * kStateDim + 4, scene[n * kStateDim + 4]));
    if (mixed && std::find(m.world.ball_counts.begin(), m.world.ball_counts.end(), n) == m.world.ball_counts.end())
      throw Error(fmt::format("{}: scene {} has {} balls (slots with a positive mass at frame 0); the manifest's "
                              "world.ball_counts expects one of {}", name, s, n, fmt::join(m.world.ball_counts, ", ")));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < N; ++b) {
        const float* st = scene + (t * N + b) * kStateDim;
        const bool ok = b < n ? st[4] > 0 : (st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0 && st[4] == 0);
        if (!ok)
          throw Error(fmt::format("{}: scene {} frame {} slot {}: expected {}, found mass {}", name, s, t, b,
                                  b < n ? "a ball (mass > 0) as at frame 0" : "an absent ball (all-zero state) as at frame 0",
                                  st[4]));
      }
  }
  Trajectories t;
  t.scenes = info.scenes;
  t.timesteps = m.world.timesteps;
  t.num_balls = m.world.num_balls;
  t.data = std::move(a.data);
  return t;
}

}  // namespace npe::datagen
