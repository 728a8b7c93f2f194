// npe-compare-engines: the GPU engine (its float64 CPU reference) against Box2D from identical
// initial conditions: agreement before and through single collisions, and whole-dataset
// statistics. Prints a table and writes JSON.
#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/datagen/compare.h"

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-compare-engines", [&] {
    cxxopts::Options o("npe-compare-engines", "Compare npe's engine with Box2D on the same scenes.");
    o.add_options()("num_scenes", "scenes of the default world to simulate with both engines",
                    cxxopts::value<int64_t>()->default_value("2000"))("seed", "random seed",
                                                                      cxxopts::value<uint64_t>()->default_value("0"))(
        "variable_mass", "masses from {1, 5, 25}")("timesteps", "frames per scene",
                                                   cxxopts::value<int>()->default_value("60"))(
        "substeps", "engine substeps per frame (0 = chosen)", cxxopts::value<int>()->default_value("0"))(
        "threads", "threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))(
        "out_json", "report", cxxopts::value<std::string>()->default_value("bench/compare_box2d.json"))("h,help",
                                                                                                        "this help");
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    npe::datagen::WorldDef w;
    w.variable_mass = r.count("variable_mass") > 0;
    w.timesteps = r["timesteps"].as<int>();
    w.engine.substeps = r["substeps"].as<int>();
    const int64_t n = r["num_scenes"].as<int64_t>();
    if (n < 1) throw npe::Error(fmt::format("--num_scenes: expected at least 1, found {}", n));
    if (w.engine.substeps < 0) throw npe::Error(fmt::format("--substeps: expected >= 0, found {}", w.engine.substeps));
    const std::string out = r["out_json"].as<std::string>();
    npe::check_distinct_files({{"--out_json", out, true}});  // refuses a device or FIFO before the work
    npe::check_writable(out);
    const auto c = npe::datagen::compare_with_box2d(w, n, r["seed"].as<uint64_t>(), r["threads"].as<int>());
    fmt::print("{} scenes, engine: {} substeps/frame, omega {} /s; Box2D: 10 steps/frame\n", c.scenes, c.substeps,
               c.omega);
    fmt::print("before the first collision: max |dx| {:.3g} px, max |dv| {:.3g} px/s\n", c.pre_collision_max_dx,
               c.pre_collision_max_dv);
    fmt::print("between the first and second collision ({} scenes): |dv|/v_max median {:.3g}, p90 {:.3g}; "
               "|dx| median {:.3g} px, p90 {:.3g} px\n",
               c.single_collision_scenes, c.single_collision_dv_median, c.single_collision_dv_p90,
               c.single_collision_dx_median, c.single_collision_dx_p90);
    fmt::print("{:<22} {:>12} {:>12}\n", "statistic", "box2d", "engine");
    fmt::print("{:<22} {:>12.3f} {:>12.3f}\n", "collisions/scene", c.box2d.collisions_per_scene,
               c.engine.collisions_per_scene);
    fmt::print("{:<22} {:>12.3g} {:>12.3g}\n", "mean energy drift", c.box2d.mean_energy_drift,
               c.engine.mean_energy_drift);
    fmt::print("{:<22} {:>12.3g} {:>12.3g}\n", "max energy drift", c.box2d.max_energy_drift, c.engine.max_energy_drift);
    fmt::print("{:<22} {:>12.3f} {:>12.3f}\n", "mean speed, px/s", c.box2d.mean_speed, c.engine.mean_speed);
    fmt::print("speed distributions: Kolmogorov-Smirnov statistic {:.4f}\n", c.speed_ks);
    npe::write_file_atomic(out, c.to_json().dump(2) + "\n");
    fmt::print("wrote {}\n", out);
    return 0;
  });
}
