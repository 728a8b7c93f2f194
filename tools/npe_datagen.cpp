// npe-datagen: ball-world trajectory datasets with Box2D or npe's GPU engine. See README.md.
#include <thread>

#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/interrupt.h"
#include "npe/datagen/generate.h"
#include "npe/datagen/engine_world.h"

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-datagen", [&] {
    npe::datagen::DatagenConfig c;
    npe::datagen::WorldDef& w = c.world;
    cxxopts::Options o("npe-datagen",
                       "Generate 2-D ball-world trajectories with Box2D or npe's GPU engine.\n"
                       "Writes PREFIX_{train,val,test}.npy ([scenes, T, N, 5] float32) and PREFIX.json\n"
                       "(walls worlds: PREFIX_{train,val,test}_walls.npy too).\n"
                       "Sharded: each of N runs with --shard k/N writes PREFIX.shard-KKKKK-of-NNNNN{_*.npy,.json},\n"
                       "then --merge_shards N --out_prefix PREFIX writes PREFIX.json listing them (copies no data).");
    o.add_options()("num_scenes", "scenes to simulate (split 70/15/15 by scene)",
                    cxxopts::value<int64_t>()->default_value("12000"))(
        "num_balls",
        "balls per scene, or a list such as 3,4,5: each scene draws its count from it (slots of "
        "absent balls are all-zero)",
        cxxopts::value<std::string>()->default_value("4"))(
        "preset",
        "npe2017: Chang et al. 2017's data regime (integer velocities per axis in [-20, 20] px/frame, "
        "masses {1, 5, 25}, centres >= 2.5 r apart, scenes redrawn when a speed exceeds 60 px/frame or a ball "
        "leaves the box; velocities normalised by 60 px/frame); walls: its walls worlds (npe2017's velocities, "
        "2 balls of mass 1 unless --num_balls, --variable_mass, inside walls of the shapes O,L unless --walls)",
        cxxopts::value<std::string>()->default_value(""))(
        "walls",
        "walls worlds (Box2D): each scene inside walls of 80 px blocks of a shape drawn from this list of O, L, "
        "U and I (Chang et al. 2017, section 4), recorded in PREFIX_{split}_walls.npy",
        cxxopts::value<std::string>()->default_value(""))("timesteps", "recorded frames per scene",
                                                          cxxopts::value<int>()->default_value("60"))(
        "seed", "random seed; scene i depends only on (seed, i)", cxxopts::value<uint64_t>()->default_value("0"))(
        "variable_mass", "draw each ball's mass from {1, 5, 25}")(
        "out_prefix",
        "output path prefix (default: data/NAME/NAME, NAME = balls_n<counts>_t<T>_<uniform|variable>"
        "[_<preset>])",
        cxxopts::value<std::string>()->default_value(""))("threads", "worker threads (0 = all cores)",
                                                          cxxopts::value<int>()->default_value("0"))(
        "radius", "ball radius, px", cxxopts::value<double>()->default_value("60"))(
        "width", "box width, px", cxxopts::value<double>()->default_value("800"))(
        "height", "box height, px", cxxopts::value<double>()->default_value("600"))(
        "max_speed", "initial speeds ~ U[0, max_speed], px/s", cxxopts::value<double>()->default_value("60"))(
        "dt", "seconds between frames", cxxopts::value<double>()->default_value("0.1"))(
        "restitution", "normal restitution of every contact (1 = elastic; the gpu engine takes (0, 1])",
        cxxopts::value<double>()->default_value("1"))(
        "engine", "box2d, or gpu (npe's engine: CUDA, or its CPU reference without a GPU)",
        cxxopts::value<std::string>()->default_value("box2d"))(
        "substeps", "physics steps per frame (0: Box2D 10; gpu: chosen from the contact stiffness)",
        cxxopts::value<int>()->default_value("0"))(
        "contact_omega",
        "gpu engine: contact spring omega, 1/s (0: chosen so that penetration stays "
        "under 1% of the radius)",
        cxxopts::value<double>()->default_value("0"))(
        "contact_ramp",
        "gpu engine: px of penetration over which the contact force switches on "
        "smoothly, making it C1 (-1: a quarter of the peak penetration at 2 * max_speed; 0: linear law)",
        cxxopts::value<double>()->default_value("-1"))(
        "obstacles", "gpu engine: static obstacles, 'capsule:x0,y0,x1,y1,r;box:cx,cy,hw,hh,deg'",
        cxxopts::value<std::string>()->default_value(""))(
        "cpu", "gpu engine: run the CPU reference even when a GPU is present (same bytes)")(
        "shard",
        "k/N: write shard k of N only, scenes [floor(k S/N), floor((k+1) S/N)) of the S = --num_scenes "
        "scenes (0 <= k < N <= S), to PREFIX.shard-KKKKK-of-NNNNN_{split}.npy (the splits it holds scenes of) and "
        "PREFIX.shard-KKKKK-of-NNNNN.json; the N shards are byte for byte a single run's scenes",
        cxxopts::value<std::string>()->default_value(""))(
        "merge_shards",
        "N: check the N shards written with --shard k/N --out_prefix PREFIX and write PREFIX.json, "
        "which lists their files as the splits' parts and which every npe tool reads as one dataset; takes only "
        "--out_prefix",
        cxxopts::value<int64_t>()->default_value("0"))("no_progress", "no progress bar")("h,help", "this help");
    auto r = npe::tools::parse(o, argc, argv, {{"frame_dt", "dt"}});
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    if (r.count("merge_shards")) {
      // the shards' manifests record the dataset: any other flag would be unused
      for (const auto& kv : r.arguments())
        if (kv.key() != "merge_shards" && kv.key() != "out_prefix")
          throw npe::Error(fmt::format("--{}: not used by --merge_shards (the shards' manifests record the dataset); "
                                       "leave it out",
                                       kv.key()));
      if (!r.count("out_prefix"))
        throw npe::Error("--merge_shards: expected --out_prefix, the prefix the shards were written with");
      const std::string prefix = r["out_prefix"].as<std::string>();
      const int64_t n = r["merge_shards"].as<int64_t>();
      const auto m = npe::datagen::merge_shards(prefix, n);
      fmt::print("npe-datagen: merged {} shards of {} scenes (seed {}, engine {})\n", n, m.num_scenes, m.seed,
                 m.engine);
      for (const auto& s : m.splits)
        fmt::print("  {}: {} scene{} in {} part{}\n", s.name, s.scenes, s.scenes == 1 ? "" : "s", s.parts.size(),
                   s.parts.size() == 1 ? "" : "s");
      fmt::print("  wrote {}\n", npe::datagen::manifest_path(prefix).string());
      return 0;
    }
    c.num_scenes = r["num_scenes"].as<int64_t>();
    npe::datagen::parse_ball_counts(w, r["num_balls"].as<std::string>());
    w.timesteps = r["timesteps"].as<int>();
    c.seed = r["seed"].as<uint64_t>();
    w.variable_mass = r.count("variable_mass") > 0;
    c.threads = r["threads"].as<int>();
    w.radius = r["radius"].as<double>();
    w.width = r["width"].as<double>();
    w.height = r["height"].as<double>();
    w.max_speed = r["max_speed"].as<double>();
    w.frame_dt = r["dt"].as<double>();
    w.restitution = r["restitution"].as<double>();
    const std::string engine = r["engine"].as<std::string>();
    if (engine != "box2d" && engine != "gpu")
      throw npe::Error(fmt::format("--engine: expected box2d or gpu, found '{}'", engine));
    const int substeps = r["substeps"].as<int>();
    if (substeps < 0) throw npe::Error(fmt::format("--substeps: expected >= 0, found {}", substeps));
    (engine == "gpu" ? w.engine.substeps : w.box2d.substeps) = substeps;
    w.engine.contact_omega = r["contact_omega"].as<double>();
    w.engine.contact_ramp = r["contact_ramp"].as<double>();
    w.obstacles = npe::datagen::parse_obstacles(r["obstacles"].as<std::string>());
    c.progress = r.count("no_progress") == 0;
    if (r.count("shard")) npe::datagen::parse_shard(r["shard"].as<std::string>(), c);
    if (const std::string preset = r["preset"].as<std::string>(); !preset.empty()) {
      for (const char* flag : {"max_speed", "variable_mass"})
        if (r.count(flag) && !(preset == "walls" && std::string(flag) == "variable_mass"))
          throw npe::Error(fmt::format("--{}: --preset {} sets it; leave it out", flag, preset));
      npe::datagen::apply_preset(w, preset);
      if (preset == "walls") {  // the flags given change the preset's walls world
        if (r.count("num_balls")) npe::datagen::parse_ball_counts(w, r["num_balls"].as<std::string>());
        w.variable_mass = r.count("variable_mass") > 0;
      }
    }
    if (r.count("walls")) w.walls = npe::datagen::parse_wall_shapes(r["walls"].as<std::string>());
    c.out_prefix = r["out_prefix"].as<std::string>();
    if (c.out_prefix.empty()) {
      std::string counts;
      for (char ch : npe::datagen::format_ball_counts(w))
        if (ch != ',') counts += ch;
      std::string shapes;
      for (char ch : npe::datagen::format_wall_shapes(w.walls))
        if (ch != ',') shapes += ch;
      const std::string name = fmt::format(
          "balls_n{}_t{}_{}{}{}", counts, w.timesteps, w.variable_mass ? "variable" : "uniform",
          w.preset.empty() || w.preset == "walls" ? "" : "_" + w.preset, shapes.empty() ? "" : "_walls_" + shapes);
      c.out_prefix = "data/" + name + "/" + name;
    }
    if (w.engine.contact_omega < 0)
      throw npe::Error(fmt::format("--contact_omega: expected >= 0 (0 = choose), found {}", w.engine.contact_omega));
    if (!(w.engine.contact_ramp >= 0 || w.engine.contact_ramp == -1))
      throw npe::Error(
          fmt::format("--contact_ramp: expected >= 0 px, or -1 to choose, found {}", w.engine.contact_ramp));
    npe::datagen::DatagenSummary s;
    npe::install_interrupt_handlers();  // SIGINT/SIGTERM: stop between chunks, leave no partial file
    if (engine == "box2d") {
      if (!w.obstacles.empty())
        throw npe::Error("--obstacles: obstacles are simulated by npe's engine only; add --engine gpu");
      if (w.engine.contact_omega > 0) throw npe::Error("--contact_omega: applies to --engine gpu only");
      if (w.engine.contact_ramp >= 0) throw npe::Error("--contact_ramp: applies to --engine gpu only");
      if (r.count("cpu")) throw npe::Error("--cpu: applies to --engine gpu only");
      s = npe::datagen::generate_dataset(c);
    } else {
      std::string why;
      const bool cuda = !r.count("cpu") && npe::gpu::cuda_available(&why);
      if (!cuda && !r.count("cpu"))
        fmt::print(stderr, "npe-datagen: {}: running the engine's CPU reference (same results)\n", why);
      s = npe::datagen::generate_dataset_gpu(c, cuda);
    }
    fmt::print("npe-datagen: {} scenes, {} windows in {:.2f} s ({:.0f} scenes/s); max kinetic-energy "
               "drift {:.2e}\n",
               s.scenes, s.windows, s.seconds, s.scenes / s.seconds, s.max_energy_drift);
    if (c.num_shards > 0) {
      const auto range = npe::datagen::scene_range(c);
      fmt::print("  shard {} of {}: scenes [{}, {}) of {}; when all {} are written: npe-datagen --merge_shards {} "
                 "--out_prefix {}\n",
                 c.shard, c.num_shards, range.first, range.first + range.count, c.num_scenes, c.num_shards,
                 c.num_shards, c.out_prefix);
    }
    if (w.reject_speed > 0)
      fmt::print("  {} draws rejected and redrawn ({:.1f}% of draws)\n", s.redrawn,
                 100.0 * s.redrawn / std::max<double>(1, s.redrawn + s.scenes));
    for (const auto& f : s.files) fmt::print("  wrote {}\n", f);
    return 0;
  });
}
