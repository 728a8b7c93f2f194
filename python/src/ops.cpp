// python/src/ops.cpp: npe's worlds, scenes, datasets and trained models as PyTorch operators and
// a custom class (namespace "npe"), for the Python package (python/npe) and any libtorch program
// that loads this library. The simulator's operators (npe::simulate and its adjoint) are
// registered by npe_diffsim_torch (gpu/src/diffsim_torch.cpp), linked in whole.
//
// Every operator reports bad input as a ValueError (TypeError for wrong dtypes) naming the
// argument or field, what was expected and what was found: npe::Error is caught at this boundary.
//
//   npe::version() -> str
//   npe::resolve_world(str world) -> str          world JSON (docs/python.md) -> resolved JSON
//   npe::dataset_world(str prefix) -> str         the world of a dataset's manifest, as given
//   npe::read_manifest(str prefix) -> str         the checked manifest P.json
//   npe::load_split(str prefix, str split) -> Tensor             [S, T, N, 5] float32
//   npe::load_walls(str prefix, str split) -> Tensor             [S, 32, 4] float32 (walls worlds;
//                                                                 [S, 0, 4] without walls)
//   npe::sample_scenes(str world, int seed, int num_scenes, int first_scene=0)
//       -> (Tensor state [S, N, 4], Tensor mass [S, N], Tensor radius [S, N])   float64, px, px/s
//   torch.classes.npe.Model(str checkpoint, str device)   a trained NPE: forward, rollout, meta
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/custom_class.h>
#include <torch/library.h>
#include <torch/torch.h>

#include "npe/control/env.h"
#include "npe/core/error.h"
#include "npe/core/json.h"
#include "npe/datagen/dataset.h"
#include "npe/datagen/engine_world.h"
#include "npe/datagen/world.h"
#include "npe/gpu/diffsim_torch.h"
#include "npe/model/checkpoint.h"
#include "npe/model/model.h"
#include "npe/rollout/rollout.h"

namespace npe::python {
namespace {

using nlohmann::json;
using torch::Tensor;

// Runs `f`, turning npe's errors into ValueError (c10::ValueError) prefixed with `who`.
template <class F>
auto checked(const char* who, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error&) {
    throw;
  } catch (const std::exception& e) {
    TORCH_CHECK_VALUE(false, who, ": ", e.what());
  }
}

// ---- worlds ------------------------------------------------------------------------------------
// A world is a JSON object of WorldDef's fields (datagen/world.h) plus the engine's settings and
// gravity; absent fields keep WorldDef's defaults. "Given" worlds hold what the user (or the
// dataset) set; resolve_world fills every field and the engine's settings.

struct World {
  datagen::WorldDef def;
  double gravity_x = 0, gravity_y = 0;
};

const char* const kKeys[] = {
    "width",         "height",       "radius",      "num_balls",          "ball_counts",    "mass",
    "variable_mass", "mass_choices", "max_speed",   "velocity_law",       "max_axis_speed", "min_separation",
    "frame_dt",      "timesteps",    "restitution", "obstacles",          "substeps",       "contact_omega",
    "contact_ramp",  "gravity_x",    "gravity_y",   "max_placement_tries"};
// Written by resolve_world; accepted back and ignored.
const char* const kDerived[] = {"simulate_world", "simulate_obstacles", "normalisation"};

World parse_world(const std::string& text) {
  const json j = parse_json(text, "world", "a JSON object of world fields");
  if (!j.is_object()) throw Error("world: expected a JSON object of world fields, found " + j.dump().substr(0, 80));
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKeys) known |= it.key() == k;
    for (const char* k : kDerived) known |= it.key() == k;
    if (!known) {
      std::string all;
      for (const char* k : kKeys) all += std::string(all.empty() ? "" : ", ") + k;
      throw FieldError(it.key(), ": not a world field (expected one of " + all + ")");
    }
  }
  World w;
  datagen::WorldDef& d = w.def;
  auto get = [&](const char* key, auto& out) {
    using T = std::decay_t<decltype(out)>;
    if (j.contains(key)) out = json_field<T>(j, key, "world", "world", "");
  };
  get("width", d.width);
  get("height", d.height);
  get("radius", d.radius);
  if (j.contains("ball_counts") && !j["ball_counts"].empty()) {
    const auto counts = json_field<std::vector<int>>(j, "ball_counts", "world", "world", "");
    std::string text;
    for (int c : counts) text += (text.empty() ? "" : ",") + std::to_string(c);
    datagen::parse_ball_counts(d, text);
  } else {
    get("num_balls", d.num_balls);
  }
  get("mass", d.mass);
  get("variable_mass", d.variable_mass);
  get("mass_choices", d.mass_choices);
  get("max_speed", d.max_speed);
  if (j.contains("velocity_law")) {
    const auto law = json_field<std::string>(j, "velocity_law", "world", "world", "");
    if (law != "polar" && law != "integer_per_axis")
      throw FieldError("velocity_law", ": expected \"polar\" or \"integer_per_axis\", found \"" + law + "\"");
    d.velocity_law = law == "polar" ? datagen::WorldDef::VelocityLaw::kPolar
                                    : datagen::WorldDef::VelocityLaw::kIntegerPerAxis;
  }
  get("max_axis_speed", d.max_axis_speed);
  get("min_separation", d.min_separation);
  get("frame_dt", d.frame_dt);
  get("timesteps", d.timesteps);
  get("restitution", d.restitution);
  if (j.contains("obstacles"))
    d.obstacles = gpu::parse_obstacles(json_field<std::string>(j, "obstacles", "world", "world", ""));
  get("substeps", d.engine.substeps);
  get("contact_omega", d.engine.contact_omega);
  get("contact_ramp", d.engine.contact_ramp);
  get("gravity_x", w.gravity_x);
  get("gravity_y", w.gravity_y);
  get("max_placement_tries", d.max_placement_tries);
  return w;
}

json given_json(const World& w) {
  const datagen::WorldDef& d = w.def;
  json j = {{"width", d.width},
            {"height", d.height},
            {"radius", d.radius},
            {"num_balls", d.num_balls},
            {"ball_counts", d.ball_counts},
            {"mass", d.mass},
            {"variable_mass", d.variable_mass},
            {"mass_choices", d.mass_choices},
            {"max_speed", d.max_speed},
            {"velocity_law", d.velocity_law == datagen::WorldDef::VelocityLaw::kPolar ? "polar" : "integer_per_axis"},
            {"max_axis_speed", d.max_axis_speed},
            {"min_separation", d.min_separation},
            {"frame_dt", d.frame_dt},
            {"timesteps", d.timesteps},
            {"restitution", d.restitution},
            {"obstacles", gpu::format_obstacles(d.obstacles)},
            {"substeps", d.engine.substeps},
            {"contact_omega", d.engine.contact_omega},
            {"contact_ramp", d.engine.contact_ramp},
            {"gravity_x", w.gravity_x},
            {"gravity_y", w.gravity_y},
            {"max_placement_tries", d.max_placement_tries}};
  return j;
}

// The world checked and its engine settings resolved (datagen::resolve_engine), with the
// simulator's arguments (npe::simulate's world and obstacles) and the dataset units.
json resolved_json(World w) {
  datagen::validate(w.def);
  w.def.engine = datagen::resolve_engine(w.def);
  // the engine's spec of one scene of the largest count (the simulator runs one count a batch)
  datagen::WorldDef one_count = w.def;
  one_count.ball_counts.clear();
  gpu::WorldSpec s = datagen::spec_from_world(one_count, 1);
  s.gravity_x = w.gravity_x;
  s.gravity_y = w.gravity_y;
  gpu::validate(s);
  json j = given_json(w);
  j["simulate_world"] = gpu::simulate_world(s);
  j["simulate_obstacles"] = gpu::simulate_obstacles(s);
  const datagen::Normalisation n = datagen::normalisation(w.def);
  j["normalisation"] = {{"pos_scale", n.pos_scale}, {"vel_scale", n.vel_scale}, {"frame_dt", n.frame_dt}};
  return j;
}

std::string resolve_world(const std::string& text) {
  return checked("npe.WorldSpec", [&] { return resolved_json(parse_world(text)).dump(); });
}

std::string dataset_world(const std::string& prefix) {
  return checked("npe.WorldSpec.from_dataset", [&] {
    const datagen::Manifest m = datagen::read_manifest(prefix);
    if (!m.world.walls.empty())
      throw FieldError("prefix", " '" + prefix +
                                     "': a walls world, whose walls differ per scene; npe's engine (and "
                                     "so a WorldSpec) takes one obstacle layout per world");
    World w;
    w.def = m.world;
    if (m.engine != "npe-gpu") w.def.engine = {};  // Box2D's steps are not the engine's
    return given_json(w).dump();
  });
}

// ---- scenes ------------------------------------------------------------------------------------

std::tuple<Tensor, Tensor, Tensor> sample_scenes(const std::string& text, int64_t seed, int64_t num_scenes,
                                                 int64_t first_scene) {
  return checked("npe.sample_scenes", [&] {
    const World w = parse_world(text);
    datagen::validate(w.def);
    if (!w.def.ball_counts.empty())
      throw FieldError("ball_counts", ": the simulator runs scenes of one ball count; mixed counts are made with "
                                      "npe-datagen (Box2D)");
    if (num_scenes < 1 || num_scenes > (int64_t{1} << 32))
      throw FieldError("num_scenes", ": expected 1 to 2^32 scenes, found " + std::to_string(num_scenes));
    if (first_scene < 0) throw FieldError("first_scene", ": expected >= 0, found " + std::to_string(first_scene));
    if (seed < 0) throw FieldError("seed", ": expected a seed >= 0, found " + std::to_string(seed));
    // the engine's datasets' draws (centres clear of obstacles), in its layout: body = ball * S + scene
    const gpu::Scene sc = datagen::dataset_scenes(w.def, num_scenes, static_cast<uint64_t>(seed), first_scene);
    const int64_t S = num_scenes, N = w.def.num_balls;
    auto per_ball = [&](const std::vector<double>& v) { return torch::tensor(v, torch::kFloat64).view({N, S}).t(); };
    const Tensor state = torch::stack(
        {per_ball(sc.state.x), per_ball(sc.state.y), per_ball(sc.state.vx), per_ball(sc.state.vy)}, -1);
    return std::make_tuple(state, per_ball(sc.spec.mass).contiguous(), per_ball(sc.spec.radius).contiguous());
  });
}

// ---- datasets ----------------------------------------------------------------------------------

std::string read_manifest(const std::string& prefix) {
  return checked("npe.read_manifest", [&] { return datagen::read_manifest(prefix).to_json().dump(); });
}

Tensor load_split(const std::string& prefix, const std::string& split) {
  return checked("npe.load_split", [&] {
    if (split != "train" && split != "val" && split != "test")
      throw FieldError("split", ": expected \"train\", \"val\" or \"test\", found \"" + split + "\"");
    const datagen::Manifest m = datagen::read_manifest(prefix);
    auto t = std::make_unique<datagen::Trajectories>(datagen::load_split(prefix, m, split));
    const std::vector<int64_t> sizes = {t->scenes, t->timesteps, t->num_balls, datagen::kStateDim};
    float* data = t->data.data();
    // the tensor owns the loaded arrays: no copy
    return torch::from_blob(
        data, sizes, [t = t.release()](void*) { delete t; }, torch::kFloat32);
  });
}

Tensor load_walls(const std::string& prefix, const std::string& split) {
  return checked("npe.load_walls", [&] {
    if (split != "train" && split != "val" && split != "test")
      throw FieldError("split", ": expected \"train\", \"val\" or \"test\", found \"" + split + "\"");
    const datagen::Manifest m = datagen::read_manifest(prefix);
    const int64_t scenes = m.split(split).scenes;
    if (m.world.walls.empty()) return torch::zeros({scenes, 0, datagen::kWallDim}, torch::kFloat32);
    auto w = std::make_unique<std::vector<float>>(datagen::load_walls(prefix, m, split));
    float* data = w->data();  // before the release below: argument order is unspecified
    return torch::from_blob(
        data, {scenes, datagen::kWallSlots, datagen::kWallDim}, [w = w.release()](void*) { delete w; },
        torch::kFloat32);
  });
}

// ---- trained models ----------------------------------------------------------------------------

// A trained NPE loaded from an npe-train checkpoint, in eval mode with frozen weights (gradients
// reach the inputs, not the weights).
// The `device` argument of load_model and control.VecEnv: "cpu", "cuda" or "cuda:K" that PyTorch
// can use. Throws npe::FieldError on the field "device".
torch::Device parse_device(const std::string& name) {
  torch::Device device = torch::kCPU;
  try {
    device = torch::Device(name);
  } catch (const c10::Error&) {
    throw FieldError("device", ": expected \"cpu\", \"cuda\" or \"cuda:K\", found \"" + name + "\"");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw FieldError("device", " " + name + ": PyTorch sees no CUDA device");
  return device;
}

struct Model : torch::CustomClassHolder {
  model::Checkpoint ck;
  torch::Device device = torch::kCPU;
  double step_scale = 0;

  Model(const std::string& path, const std::string& device_name) {
    checked("npe.load_model", [&] {
      device = parse_device(device_name);
      ck = model::load_checkpoint(path, std::nullopt, "checkpoint", device);
      step_scale = json_field<double>(ck.meta["dataset"], "step_scale", path, "checkpoint", "dataset.");
      for (auto& p : ck.net->parameters()) p.set_requires_grad(false);
      ck.net->eval();
      return 0;
    });
  }

  void check_frames(const Tensor& t, const char* who, int64_t min_frames) const {
    const int64_t N = t.dim() == 4 ? t.size(2) : 0;
    TORCH_CHECK_VALUE(t.dim() == 4 && t.size(1) >= min_frames && t.size(3) == datagen::kStateDim && N >= 1, who,
                      ": expected frames [batch, ", min_frames,
                      " or more, balls, 5] (x, y, vx, vy normalised as in the dataset, mass), found ", t.sizes());
    TORCH_CHECK_TYPE(t.scalar_type() == torch::kFloat32, who, ": expected float32 frames, found ", t.scalar_type());
    // "cuda" without an index is the current device, whose tensors say cuda:K
    const bool same = t.device().type() == device.type() &&
                      (!device.has_index() || t.device().index() == device.index());
    TORCH_CHECK_VALUE(same, who, ": expected frames on ", device, " (the model's device), found ", t.device());
    TORCH_CHECK_VALUE(t.size(0) >= 1, who, ": expected at least one scene, found ", t.sizes());
  }

  // window [B, 2 or more, N, 5]: frames t-1 and t are window[:, 0] and window[:, 1]; -> [B, N, 2]
  Tensor forward(const Tensor& window) {
    check_frames(window, "npe.Model", 2);
    return ck.net->forward(window.select(1, 0), window.select(1, 1));
  }

  // frames [S, 2 or more, N, 5] (the first two are used) -> [S, steps + 2, N, 5]: npe-eval's rollout
  // (npe/rollout/rollout.h), positions advanced by v * step_scale; on the host, the model on its
  // device.
  Tensor rollout(const Tensor& frames, int64_t steps) {
    check_frames(frames, "npe.Model.rollout", 2);
    TORCH_CHECK_VALUE(steps >= 1 && steps <= (int64_t{1} << 20), "npe.Model.rollout: steps: expected 1 to 2^20, found ",
                      steps);
    return checked("npe.Model.rollout", [&] {
      const Tensor first = frames.narrow(1, 0, 2).to(torch::kCPU).contiguous();
      datagen::Trajectories truth;  // frames 0 and 1; the rest only sizes the rollout
      truth.scenes = first.size(0);
      truth.timesteps = steps + 2;
      truth.num_balls = first.size(2);
      truth.data.assign(static_cast<size_t>(truth.scenes * truth.timesteps * truth.num_balls * datagen::kStateDim),
                        0.f);
      const float* src = first.data_ptr<float>();
      const int64_t per_frame = truth.num_balls * datagen::kStateDim;
      for (int64_t s = 0; s < truth.scenes; ++s)
        for (int t = 0; t < 2; ++t)
          std::copy(src + (s * 2 + t) * per_frame, src + (s * 2 + t + 1) * per_frame, truth.frame(s, t));
      auto out = std::make_unique<datagen::Trajectories>(rollout::rollout(
          truth, truth.scenes, static_cast<int>(steps), step_scale, model::make_predictor(ck.net, device)));
      float* data = out->data.data();
      const std::vector<int64_t> sizes = {out->scenes, out->timesteps, out->num_balls, datagen::kStateDim};
      return torch::from_blob(
                 data, sizes, [o = out.release()](void*) { delete o; }, torch::kFloat32)
          .to(device);
    });
  }

  std::string meta() const { return ck.meta.dump(); }
  std::string kind() const { return model::kind_name(ck.config.kind); }
};

// ---- control environments ----------------------------------------------------------------------
// torch.classes.npe.VecEnv(task, num_envs, device, seed, dtype): npe/control's VecEnv (Gymnasium
// vector-environment conventions, same-step autoreset); python/npe/control.py wraps it.

struct VecEnv : torch::CustomClassHolder {
  std::unique_ptr<control::VecEnv> env;

  VecEnv(const std::string& task, int64_t num_envs, const std::string& device_name, int64_t seed,
         const std::string& dtype) {
    checked("npe.control.VecEnv", [&] {
      const torch::Device device = parse_device(device_name);
      if (dtype != "float32" && dtype != "float64")
        throw FieldError("dtype", ": expected \"float32\" or \"float64\", found \"" + dtype + "\"");
      if (seed < 0) throw FieldError("seed", ": expected a seed >= 0, found " + std::to_string(seed));
      env = std::make_unique<control::VecEnv>(control::load_task(task), num_envs, device, static_cast<uint64_t>(seed),
                                              dtype == "float64" ? torch::kFloat64 : torch::kFloat32);
      return 0;
    });
  }
  Tensor reset() {
    return checked("npe.control.VecEnv.reset", [&] { return env->reset(); });
  }
  std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> step(const Tensor& action) {
    return checked("npe.control.VecEnv.step", [&] {
      const control::StepResult r = env->step(action);
      return std::make_tuple(r.obs, r.reward, r.terminated, r.truncated, r.success, r.final_obs, r.final_state);
    });
  }
  void detach() { env->detach(); }
  Tensor state() { return env->state(); }
  int64_t frames() { return env->frames(); }
  int64_t obs_dim() { return env->obs_dim(); }
  int64_t num_envs() { return env->num_envs(); }
  std::string task() { return control::task_to_json(env->task()).dump(); }
};

std::string version() { return NPE_VERSION; }

}  // namespace

TORCH_LIBRARY_FRAGMENT(npe, m) {
  m.def("version() -> str", &version);
  m.def("resolve_world(str world) -> str", &resolve_world);
  m.def("dataset_world(str prefix) -> str", &dataset_world);
  m.def("read_manifest(str prefix) -> str", &read_manifest);
  // CompositeExplicitAutograd (not the implicit kind m.def gives): the package registers fake
  // kernels for these two, so that a traced function may call them
  m.def("load_split(str prefix, str split) -> Tensor");
  m.impl("load_split", torch::dispatch(c10::DispatchKey::CompositeExplicitAutograd, &load_split));
  m.def("load_walls(str prefix, str split) -> Tensor", &load_walls);
  m.def("sample_scenes(str world, int seed, int num_scenes, int first_scene=0) -> (Tensor, Tensor, Tensor)");
  m.impl("sample_scenes", torch::dispatch(c10::DispatchKey::CompositeExplicitAutograd, &sample_scenes));
  m.class_<Model>("Model")
      .def(torch::init<std::string, std::string>())
      .def("forward", &Model::forward)
      .def("rollout", &Model::rollout)
      .def("meta", &Model::meta)
      .def("kind", &Model::kind);
  m.class_<VecEnv>("VecEnv")
      .def(torch::init<std::string, int64_t, std::string, int64_t, std::string>())
      .def("reset", &VecEnv::reset)
      .def("step", &VecEnv::step)
      .def("detach", &VecEnv::detach)
      .def("state", &VecEnv::state)
      .def("frames", &VecEnv::frames)
      .def("obs_dim", &VecEnv::obs_dim)
      .def("num_envs", &VecEnv::num_envs)
      .def("task", &VecEnv::task);
}

}  // namespace npe::python
