#include "npe/datagen/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "npe/core/io.h"
#include "npe/core/json.h"
#include "npe/core/npy.h"

namespace npe::datagen {
namespace fs = std::filesystem;
using nlohmann::json;

SplitSizes split_sizes(int64_t n) {
  if (n < 3) throw FieldError("num_scenes", fmt::format(": expected at least 3 scenes (one per split), found {}", n));
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
fs::path walls_path(const std::string& prefix, const std::string& split) {
  return fs::path(prefix + "_" + split + "_walls.npy");
}
std::string shard_prefix(const std::string& prefix, int64_t shard, int64_t num_shards) {
  return fmt::format("{}.shard-{:05d}-of-{:05d}", prefix, shard, num_shards);
}

const SplitInfo& Manifest::split(const std::string& name) const {
  for (const SplitInfo& s : splits)
    if (s.name == name) return s;
  throw Error(fmt::format("manifest has no split '{}'", name));
}

json Manifest::to_json() const {
  const WorldDef& w = world;
  json j;
  j["format"] = shard.count > 0 ? "npe-dataset-shard" : "npe-dataset";
  j["format_version"] = 1;
  if (shard.count > 0)
    j["shard"] = {
        {"index", shard.index}, {"count", shard.count}, {"first_scene", shard.first_scene}, {"scenes", shard.scenes}};
  j["npe_version"] = npe_version;
  j["engine"] = engine;
  j["seed"] = seed;
  j["num_scenes"] = num_scenes;
  j["state_layout"] = {"x/pos_scale", "y/pos_scale", "vx/vel_scale", "vy/vel_scale", "mass"};
  j["normalisation"] = {
      {"pos_scale", pos_scale()}, {"vel_scale", vel_scale()}, {"pos_units", "px"}, {"vel_units", "px/s"}};
  j["world"] = {{"width", w.width},
                {"height", w.height},
                {"radius", w.radius},
                {"num_balls", w.num_balls},
                {"mass", w.mass},
                {"variable_mass", w.variable_mass},
                {"mass_choices", w.mass_choices},
                {"max_speed", w.max_speed},
                {"frame_dt", w.frame_dt},
                {"substeps", engine == "npe-gpu" ? w.engine.substeps : w.box2d.substeps},
                {"timesteps", w.timesteps},
                {"restitution", w.restitution},
                {"friction", w.friction},
                {"gravity", 0.0},
                {"pixels_per_meter", w.box2d.pixels_per_meter},
                {"velocity_iterations", w.box2d.velocity_iterations},
                {"position_iterations", w.box2d.position_iterations},
                {"contact_omega", w.engine.contact_omega},
                {"contact_ramp", w.engine.contact_ramp}};
  json obs = json::array();
  for (const Obstacle& o : w.obstacles)
    obs.push_back({{"kind", o.kind == Obstacle::Kind::kCapsule ? "capsule" : "box"},
                   {"a", {o.ax, o.ay}},
                   {"b", {o.bx, o.by}},
                   {"radius", o.radius},
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
  if (!w.walls.empty()) {
    j["world"]["walls"] = json::array();
    for (WallShape shape : w.walls) j["world"]["walls"].push_back(wall_shape_name(shape));
  }
  json sp = json::array();
  for (const SplitInfo& s : splits) {
    json e = {{"name", s.name},
              {"first_scene", s.first_scene},
              {"scenes", s.scenes},
              {"windows", s.windows},
              {"shape", {s.scenes, w.timesteps, w.num_balls, kStateDim}}};
    if (s.parts.empty()) {
      e["file"] = s.file;
      if (!s.walls_file.empty()) {
        e["walls_file"] = s.walls_file;
        e["walls_shape"] = {s.scenes, kWallSlots, kWallDim};
      }
    } else {
      e["parts"] = json::array();
      for (const SplitPart& p : s.parts)
        e["parts"].push_back({{"file", p.file}, {"first_scene", p.first_scene}, {"scenes", p.scenes}});
    }
    sp.push_back(e);
  }
  j["splits"] = sp;
  return j;
}

namespace {
// Beyond 10^12 scenes (4 TB per frame-ball) a count is corrupt; checked before any product.
constexpr int64_t kMaxScenes = 1000000000000;

template <typename T>
T field(const json& j, const char* key, const std::string& source, const std::string& where) {
  return json_field<T>(j, key, source, "manifest", where);
}

// A data file named by a manifest lies beside it: a plain file name, never a path.
void check_file_name(const std::string& file, const std::string& src, const std::string& what) {
  if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
    throw Error(
        fmt::format("{}: {}: field 'file' expected a file name beside the manifest, found \"{}\"", src, what, file));
}
}  // namespace

Manifest Manifest::from_json(const json& j, const std::string& src, bool shard) {
  if (!j.is_object()) throw Error(fmt::format("{}: manifest is not a JSON object", src));
  const auto fmt_name = field<std::string>(j, "format", src, "");
  const char* expected_format = shard ? "npe-dataset-shard" : "npe-dataset";
  if (!shard && fmt_name == "npe-dataset-shard") {
    // a shard's manifest where a dataset's is expected: say which merge makes the dataset
    const json& sh = j.contains("shard") ? j["shard"] : json();
    const auto count = field<int64_t>(sh, "count", src, "shard.");
    throw Error(fmt::format("{}: manifest is shard {} of {} of a dataset (format \"npe-dataset-shard\"); expected a "
                            "dataset's manifest: merge the shards (npe-datagen --merge_shards {} --out_prefix P, where "
                            "the shard files are P.shard-*) and read P",
                            src, field<int64_t>(sh, "index", src, "shard."), count, count));
  }
  if (fmt_name != expected_format)
    throw Error(fmt::format("{}: manifest 'format' expected \"{}\", found \"{}\"", src, expected_format, fmt_name));
  const int version = field<int>(j, "format_version", src, "");
  if (version != 1) throw Error(fmt::format("{}: manifest 'format_version' expected 1, found {}", src, version));
  Manifest m;
  m.npe_version = field<std::string>(j, "npe_version", src, "");
  m.engine = field<std::string>(j, "engine", src, "");
  if (m.engine != "box2d" && m.engine != "npe-gpu")
    throw Error(fmt::format("{}: manifest 'engine' expected \"box2d\" or \"npe-gpu\", found \"{}\"", src,
                            m.engine.substr(0, 80)));
  m.seed = field<uint64_t>(j, "seed", src, "");
  m.num_scenes = field<int64_t>(j, "num_scenes", src, "");
  if (m.num_scenes < 1 || m.num_scenes > kMaxScenes)
    throw Error(fmt::format("{}: manifest 'num_scenes' expected 1 to 10^12 scenes, found {}", src, m.num_scenes));
  // the layout the arrays are in: readers index features by position
  const json expected_layout = {"x/pos_scale", "y/pos_scale", "vx/vel_scale", "vy/vel_scale", "mass"};
  if (!j.contains("state_layout") || j["state_layout"] != expected_layout)
    throw Error(fmt::format("{}: manifest 'state_layout' expected {}, found {}", src, expected_layout.dump(),
                            j.contains("state_layout") ? j["state_layout"].dump().substr(0, 120) : "nothing"));
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
  d.timesteps = field<int>(w, "timesteps", src, "world.");
  d.restitution = field<double>(w, "restitution", src, "world.");
  d.friction = field<double>(w, "friction", src, "world.");
  d.box2d.pixels_per_meter = field<double>(w, "pixels_per_meter", src, "world.");
  // "substeps" are the steps per frame of the simulator that made the dataset; the contact law's
  // fields only mean something for npe's engine (absent in datasets older than the engine).
  const int substeps = field<int>(w, "substeps", src, "world.");
  if (m.engine == "npe-gpu") {
    d.engine.substeps = substeps;
    if (w.is_object() && w.contains("contact_omega"))
      d.engine.contact_omega = field<double>(w, "contact_omega", src, "world.");
    if (w.is_object() && w.contains("contact_ramp"))
      d.engine.contact_ramp = field<double>(w, "contact_ramp", src, "world.");
  } else {
    d.box2d.substeps = substeps;
  }
  if (w.is_object() && w.contains("obstacles")) {
    if (!w["obstacles"].is_array())
      throw Error(fmt::format("{}: manifest field 'world.obstacles' is not an array", src));
    for (const json& o : w["obstacles"]) {
      Obstacle ob;
      const auto kind = field<std::string>(o, "kind", src, "world.obstacles[].");
      if (kind != "capsule" && kind != "box")
        throw Error(fmt::format("{}: manifest field 'world.obstacles[].kind' expected \"capsule\" "
                                "or \"box\", found \"{}\"",
                                src, kind));
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
  if (w.is_object() && w.contains("ball_counts"))
    d.ball_counts = field<std::vector<int>>(w, "ball_counts", src, "world.");
  if (w.is_object() && w.contains("velocity_law")) {
    const auto law = field<std::string>(w, "velocity_law", src, "world.");
    if (law != "integer_per_axis" && law != "polar")
      throw Error(fmt::format("{}: manifest field 'world.velocity_law' expected \"polar\" or \"integer_per_axis\", "
                              "found \"{}\"",
                              src, law));
    if (law == "integer_per_axis") {
      d.velocity_law = WorldDef::VelocityLaw::kIntegerPerAxis;
      d.max_axis_speed = field<int>(w, "max_axis_speed_px_per_frame", src, "world.");
    }
  }
  if (w.is_object() && w.contains("min_separation"))
    d.min_separation = field<double>(w, "min_separation", src, "world.");
  if (w.is_object() && w.contains("reject_speed")) d.reject_speed = field<double>(w, "reject_speed", src, "world.");
  if (w.is_object() && w.contains("preset")) d.preset = field<std::string>(w, "preset", src, "world.");
  if (w.is_object() && w.contains("walls")) {
    const json& names = w["walls"];
    try {
      if (!names.is_array() || names.empty())
        throw FieldError("walls", fmt::format(": expected a list of shapes such as [\"O\", \"L\"], found {}",
                                              names.dump().substr(0, 80)));
      std::string list;
      for (const json& n : names) {
        if (!n.is_string())
          throw FieldError("walls", fmt::format(": expected shape names, found {}", n.dump().substr(0, 80)));
        list += (list.empty() ? "" : ",") + n.get<std::string>();
      }
      d.walls = parse_wall_shapes(list);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: manifest field 'world.walls': {}", src, e.what()));
    }
  }
  try {
    validate(d);
    if (m.engine == "box2d") validate_box2d(d);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: manifest world is invalid: {}", src, e.what()));
  }
  if (shard) {
    const json& sh = j.contains("shard") ? j["shard"] : json();
    ShardInfo& si = m.shard;
    si.index = field<int64_t>(sh, "index", src, "shard.");
    si.count = field<int64_t>(sh, "count", src, "shard.");
    si.first_scene = field<int64_t>(sh, "first_scene", src, "shard.");
    si.scenes = field<int64_t>(sh, "scenes", src, "shard.");
    if (m.num_scenes < 1 || m.num_scenes > kMaxScenes || si.count < 1 || si.index < 0 || si.index >= si.count ||
        si.scenes < 1 || si.first_scene < 0 || si.first_scene > m.num_scenes - si.scenes)
      throw Error(fmt::format("{}: manifest field 'shard' says shard {} of {}, scenes [{}, {} + {}) of num_scenes {}; "
                              "expected 0 <= index < count and 1 or more scenes within [0, num_scenes <= 10^12)",
                              src, si.index, si.count, si.first_scene, si.first_scene, si.scenes, m.num_scenes));
  }
  if (!j.contains("splits") || !j["splits"].is_array())
    throw Error(fmt::format("{}: manifest field 'splits' is missing or not an array", src));
  for (const json& s : j["splits"]) {
    SplitInfo si;
    si.name = field<std::string>(s, "name", src, "splits[].");
    const std::string what = fmt::format("split '{}'", si.name);
    if (s.is_object() && s.contains("parts")) {
      if (shard) throw Error(fmt::format("{}: {}: field 'parts' is not allowed in a shard's manifest", src, what));
      if (s.contains("file"))
        throw Error(fmt::format("{}: {}: expected either field 'file' or field 'parts', found both", src, what));
      if (!s["parts"].is_array() || s["parts"].empty())
        throw Error(fmt::format("{}: {}: field 'parts' expected a non-empty array of files, found {}", src, what,
                                s["parts"].dump().substr(0, 80)));
    } else {
      si.file = field<std::string>(s, "file", src, "splits[].");
      check_file_name(si.file, src, what);
    }
    if (!d.walls.empty()) {
      if (s.contains("parts"))
        throw Error(fmt::format("{}: {}: a walls world's split is one file, found field 'parts'", src, what));
      si.walls_file = field<std::string>(s, "walls_file", src, "splits[].");
      check_file_name(si.walls_file, src, what + " walls");
    } else if (s.is_object() && s.contains("walls_file")) {
      throw Error(fmt::format("{}: {}: field 'walls_file' found, but the world has no walls (world.walls)", src, what));
    }
    si.first_scene = field<int64_t>(s, "first_scene", src, "splits[].");
    si.scenes = field<int64_t>(s, "scenes", src, "splits[].");
    si.windows = field<int64_t>(s, "windows", src, "splits[].");
    if (si.scenes > kMaxScenes || si.first_scene < 0 || si.first_scene > kMaxScenes)
      throw Error(fmt::format("{}: split '{}' has {} scenes from scene {}; expected 1 to 10^12 scenes from a "
                              "non-negative index",
                              src, si.name, si.scenes, si.first_scene));
    if (si.scenes < 1 || si.windows != si.scenes * (d.timesteps - 2))
      throw Error(fmt::format("{}: split '{}' has {} scenes and {} windows; expected at least one "
                              "scene and windows = scenes * (timesteps - 2) = {}",
                              src, si.name, si.scenes, si.windows, si.scenes * (d.timesteps - 2)));
    if (s.is_object() && s.contains("parts")) {
      // the parts tile the split's scenes in order: each starts where the one before ended
      int64_t next = si.first_scene;
      for (size_t i = 0; i < s["parts"].size(); ++i) {
        const json& pj = s["parts"][i];
        const std::string where = fmt::format("splits[{}].parts[{}].", si.name, i);
        SplitPart p;
        p.file = field<std::string>(pj, "file", src, where);
        check_file_name(p.file, src, fmt::format("{} part {}", what, i));
        p.first_scene = field<int64_t>(pj, "first_scene", src, where);
        p.scenes = field<int64_t>(pj, "scenes", src, where);
        if (p.first_scene != next || p.scenes < 1 || p.scenes > si.first_scene + si.scenes - next)
          throw Error(fmt::format("{}: {} part {} ('{}') has {} scenes from scene {}; expected 1 to {} scenes from "
                                  "scene {} (the parts tile the split's scenes [{}, {}) in order)",
                                  src, what, i, p.file, p.scenes, p.first_scene, si.first_scene + si.scenes - next,
                                  next, si.first_scene, si.first_scene + si.scenes));
        next += p.scenes;
        si.parts.push_back(p);
      }
      if (next != si.first_scene + si.scenes)
        throw Error(fmt::format("{}: {}: its {} parts hold {} scenes; expected the split's {} scenes", src, what,
                                si.parts.size(), next - si.first_scene, si.scenes));
    }
    m.splits.push_back(si);
  }
  // The splits are named train, val or test, once each, and tile the scenes without overlap:
  // [0, num_scenes) for a dataset, the shard's scenes for a shard.
  const int64_t lo = shard ? m.shard.first_scene : 0, hi = shard ? lo + m.shard.scenes : m.num_scenes;
  std::vector<const SplitInfo*> order;
  for (const SplitInfo& si : m.splits) {
    if (si.name != "train" && si.name != "val" && si.name != "test")
      throw Error(fmt::format("{}: manifest 'splits' expected the names train, val and test, found '{}'", src,
                              si.name.substr(0, 40)));
    for (const SplitInfo* o : order)
      if (o->name == si.name) throw Error(fmt::format("{}: manifest 'splits' lists split '{}' twice", src, si.name));
    order.push_back(&si);
  }
  std::sort(order.begin(), order.end(),
            [](const SplitInfo* x, const SplitInfo* y) { return x->first_scene < y->first_scene; });
  int64_t next = lo;
  for (const SplitInfo* si : order) {
    if (si->first_scene != next)
      throw Error(fmt::format("{}: manifest 'splits': split '{}' starts at scene {}, expected {} (the splits tile the "
                              "{} scenes [{}, {}) without overlap or gap)",
                              src, si->name, si->first_scene, next, shard ? "shard's" : "dataset's", lo, hi));
    next += si->scenes;
  }
  if (next != hi)
    throw Error(fmt::format("{}: manifest 'splits' hold scenes [{}, {}); expected [{}, {}) (num_scenes {})", src, lo,
                            next, lo, hi, m.num_scenes));
  return m;
}

Manifest parse_manifest(const std::string& text, const std::string& source) {
  return Manifest::from_json(parse_json(text, source, "an npe dataset manifest"), source);
}

std::vector<std::filesystem::path> dataset_files(const std::string& prefix) {
  const std::filesystem::path mp = manifest_path(prefix);
  std::vector<std::filesystem::path> files = {mp};
  try {
    const Manifest m = read_manifest(prefix);
    for (const SplitInfo& s : m.splits) {
      if (s.parts.empty()) files.push_back(mp.parent_path() / s.file);
      if (!s.walls_file.empty()) files.push_back(mp.parent_path() / s.walls_file);
      for (const SplitPart& p : s.parts) files.push_back(mp.parent_path() / p.file);
    }
  } catch (const Error&) {
    // unreadable: the manifest alone; reading the dataset reports why
  }
  return files;
}

Manifest read_manifest(const std::string& prefix) {
  const fs::path path = manifest_path(prefix);
  return parse_manifest(read_file(path), path.string());
}

Manifest read_shard_manifest(const std::string& shard_prefix) {
  const fs::path path = manifest_path(shard_prefix);
  return Manifest::from_json(parse_json(read_file(path), path.string(), "an npe dataset shard's manifest"),
                             path.string(), true);
}

namespace {
// check_split's checks of an array that should hold `scenes` scenes of the manifest's world.
Trajectories check_scenes(const Manifest& m, int64_t scenes, NpyArray a, const std::string& name) {
  const std::vector<int64_t> expected = {scenes, m.world.timesteps, m.world.num_balls, kStateDim};
  if (a.shape != expected)
    throw Error(fmt::format("{}: array shape expected ({}) [scenes, T, N, 5] as the manifest "
                            "says, found ({})",
                            name, fmt::join(expected, ", "), fmt::join(a.shape, ", ")));
  const int64_t T = m.world.timesteps, N = m.world.num_balls;
  const bool mixed = !m.world.ball_counts.empty();
  // What the manifest promises of every ball: its centre within the box up to one radius (a soft
  // contact may press a ball into a wall, never through it), its mass one of the world's.
  const double r = m.world.radius / m.pos_scale(), xmax = m.world.width / m.pos_scale(),
               ymax = m.world.height / m.pos_scale();
  std::vector<double> masses = m.world.variable_mass ? m.world.mass_choices : std::vector<double>{m.world.mass};
  auto mass_ok = [&](float v) {
    for (double c : masses)
      if (std::abs(v - c) <= 1e-6 * c) return true;
    return false;
  };
  for (size_t i = 0; i < a.data.size(); ++i)
    if (!std::isfinite(a.data[i]))
      throw Error(fmt::format("{}: value {} (scene {}) is not finite", name, i, i / (T * N * kStateDim)));
  // Masses: positive for the balls of a scene; with mixed ball counts, a scene's n balls fill slots
  // [0, n) and the other slots are all-zero in every frame.
  for (int64_t s = 0; s < scenes; ++s) {
    const float* scene = a.data.data() + s * T * N * kStateDim;
    int64_t n = 0;
    while (n < N && scene[n * kStateDim + 4] > 0) ++n;
    if (!mixed && n < N)
      throw Error(fmt::format("{}: mass at element {} expected > 0, found {}", name,
                              s * T * N * kStateDim + n * kStateDim + 4, scene[n * kStateDim + 4]));
    if (mixed && std::find(m.world.ball_counts.begin(), m.world.ball_counts.end(), n) == m.world.ball_counts.end())
      throw Error(fmt::format("{}: scene {} has {} balls (slots with a positive mass at frame 0); the manifest's "
                              "world.ball_counts expects one of {}",
                              name, s, n, fmt::join(m.world.ball_counts, ", ")));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < N; ++b) {
        const float* st = scene + (t * N + b) * kStateDim;
        const bool ok = b < n ? st[4] > 0 : (st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0 && st[4] == 0);
        if (!ok)
          throw Error(fmt::format(
              "{}: scene {} frame {} slot {}: expected {}, found mass {}", name, s, t, b,
              b < n ? "a ball (mass > 0) as at frame 0" : "an absent ball (all-zero state) as at frame 0", st[4]));
        if (b >= n) continue;
        if (!(st[0] >= -r && st[0] <= xmax + r && st[1] >= -r && st[1] <= ymax + r))
          throw Error(fmt::format("{}: scene {} frame {} ball {}: centre ({}, {}) px, expected within the {} x {} px "
                                  "box up to the radius {} px",
                                  name, s, t, b, st[0] * m.pos_scale(), st[1] * m.pos_scale(), m.world.width,
                                  m.world.height, m.world.radius));
        if (!mass_ok(st[4]))
          throw Error(fmt::format("{}: scene {} frame {} ball {}: mass {}, expected one of the world's masses ({})",
                                  name, s, t, b, st[4], fmt::join(masses, ", ")));
      }
  }
  Trajectories t;
  t.scenes = scenes;
  t.timesteps = m.world.timesteps;
  t.num_balls = m.world.num_balls;
  t.data = std::move(a.data);
  return t;
}
}  // namespace

Trajectories load_split(const std::string& prefix, const Manifest& m, const std::string& split) {
  const SplitInfo& info = m.split(split);
  const fs::path dir = manifest_path(prefix).parent_path();
  if (info.parts.empty()) {
    const fs::path path = dir / info.file;
    Trajectories t = check_split(m, split, read_npy_f32(path), path.string());
    t.walls = load_walls(prefix, m, split);
    return t;
  }
  // Parts: each read and checked as a split of its own, then appended. The memory reserved is
  // bounded by the files' sizes, not by the manifest's counts (which a corrupt manifest inflates).
  uintmax_t file_bytes = 0;
  for (const SplitPart& p : info.parts) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(dir / p.file, ec);
    if (ec)
      throw Error(fmt::format("{}: cannot read ({}); split '{}' lists it as a part", (dir / p.file).string(),
                              ec.message(), split));
    file_bytes += size;
  }
  Trajectories t;
  t.scenes = info.scenes;
  t.timesteps = m.world.timesteps;
  t.num_balls = m.world.num_balls;
  const uintmax_t floats = static_cast<uintmax_t>(info.scenes) * t.timesteps * t.num_balls * kStateDim;
  t.data.reserve(static_cast<size_t>(std::min<uintmax_t>(floats, file_bytes / sizeof(float))));
  for (const SplitPart& p : info.parts) {
    const fs::path path = dir / p.file;
    const Trajectories part = check_scenes(m, p.scenes, read_npy_f32(path), path.string());
    t.data.insert(t.data.end(), part.data.begin(), part.data.end());
  }
  return t;
}

Trajectories check_split(const Manifest& m, const std::string& split, NpyArray a, const std::string& name) {
  return check_scenes(m, m.split(split).scenes, std::move(a), name);
}

std::vector<float> load_walls(const std::string& prefix, const Manifest& m, const std::string& split) {
  if (m.world.walls.empty()) return {};
  const SplitInfo& info = m.split(split);
  const fs::path path = manifest_path(prefix).parent_path() / info.walls_file;
  return check_walls(m, info.scenes, read_npy_f32(path), path.string());
}

std::vector<float> check_walls(const Manifest& m, int64_t scenes, NpyArray a, const std::string& name) {
  const std::vector<int64_t> expected = {scenes, kWallSlots, kWallDim};
  if (a.shape != expected)
    throw Error(fmt::format("{}: array shape expected ({}) [scenes, blocks, 4] as the manifest says, found ({})", name,
                            fmt::join(expected, ", "), fmt::join(a.shape, ", ")));
  const double half = kWallBlock / 2 / m.pos_scale(), xmax = m.world.width / m.pos_scale(),
               ymax = m.world.height / m.pos_scale();
  for (int64_t s = 0; s < scenes; ++s)
    for (int64_t k = 0; k < kWallSlots; ++k) {
      const float* row = a.data.data() + (s * kWallSlots + k) * kWallDim;
      for (int c = 0; c < kWallDim; ++c)
        if (!std::isfinite(row[c]))
          throw Error(
              fmt::format("{}: scene {} block {}: column {} is {}, expected a finite value", name, s, k, c, row[c]));
      if (row[2] == 0) {
        if (row[0] != 0 || row[1] != 0 || row[3] != 0)
          throw Error(
              fmt::format("{}: scene {} row {}: expected an empty row (all zero) after half side 0", name, s, k));
        continue;
      }
      // a shape code is a whole number 1-4 (checked before the cast: a huge float's cast is undefined),
      // the same on every block of the scene
      const bool whole = row[3] >= 1 && row[3] <= 4 && row[3] == std::floor(row[3]) &&
                         row[3] == a.data[(s * kWallSlots) * kWallDim + 3];
      const int code = whole ? static_cast<int>(row[3]) : 0;
      const bool listed = whole && std::find(m.world.walls.begin(), m.world.walls.end(),
                                             static_cast<WallShape>(code - 1)) != m.world.walls.end();
      if (std::abs(row[2] - half) > 1e-6 * half || !(row[0] >= 0 && row[0] <= xmax && row[1] >= 0 && row[1] <= ymax) ||
          !listed)
        throw Error(fmt::format("{}: scene {} block {}: found centre ({}, {}) px, half side {} px, shape code {}; "
                                "expected a block of half side {} px inside the {} x {} px box, of a shape among "
                                "world.walls ({})",
                                name, s, k, row[0] * m.pos_scale(), row[1] * m.pos_scale(), row[2] * m.pos_scale(),
                                row[3], kWallBlock / 2, m.world.width, m.world.height,
                                format_wall_shapes(m.world.walls)));
    }
  return std::move(a.data);
}

}  // namespace npe::datagen
