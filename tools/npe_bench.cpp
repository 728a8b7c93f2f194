// npe-bench: benchmarks. `npe-bench engine` times the ball-world engine (CPU reference and CUDA)
// in body-steps per second (one ball advanced by one substep). See gpu/README.md.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_train.h"
#include "cli.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/datagen/engine_world.h"
#include "npe/gpu/diffsim.h"
#include "npe/gpu/engine.h"
#include "npe/gpu/scenes.h"

namespace {

using namespace npe::gpu;

struct Row {
  std::string name, backend, precision;
  int64_t scenes = 0, balls = 0;
  int64_t substeps = 0;       // substeps per timed run
  double seconds = 0;         // median
  double bytes_per_step = 0;  // counted bytes per body-step (see gpu/README.md)
  double rate() const { return scenes * balls * static_cast<double>(substeps) / seconds; }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A benchmark case: the scene, frames and substeps per frame, and whether every frame is recorded.
struct Case {
  std::string name;
  Scene scene;
  int frames;
  bool record;
  double bytes_per_step;
};

template <class T>
Row run_cpu(const Case& c, int repeats, int threads) {
  const WorldState<T> init = cast_state<T>(c.scene.state);
  std::vector<T> out(c.record ? static_cast<size_t>(c.frames) * 4 * c.scene.spec.num_bodies() : 0);
  const Recorder<T> rec = c.record ? engine_layout(out.data(), c.scene.spec) : Recorder<T>{};
  std::vector<double> times;
  for (int k = 0; k < repeats + 1; ++k) {
    WorldState<T> st = init;
    const auto t0 = std::chrono::steady_clock::now();
    advance_cpu(c.scene.spec, st, c.frames, rec, 0, threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (k > 0) times.push_back(s);  // the first run warms caches and page tables
  }
  return {c.name,
          "cpu",
          sizeof(T) == 4 ? "float32" : "float64",
          c.scene.spec.num_scenes,
          c.scene.spec.num_balls,
          static_cast<int64_t>(c.frames) * c.scene.spec.substeps,
          median(times),
          c.bytes_per_step};
}

template <class T>
Row run_cuda(const Case& c, int repeats) {
  CudaWorld<T> w(c.scene.spec);
  const size_t n = c.record ? static_cast<size_t>(c.frames) * 4 * c.scene.spec.num_bodies() : 0;
  std::unique_ptr<DeviceBuffer> out;
  if (n) out = std::make_unique<DeviceBuffer>(n * sizeof(T));
  const Recorder<T> rec = n ? engine_layout(static_cast<T*>(out->get()), c.scene.spec) : Recorder<T>{};
  const auto times = w.time_advance(cast_state<T>(c.scene.state), c.frames, rec, 2, repeats);
  return {c.name,
          "cuda",
          sizeof(T) == 4 ? "float32" : "float64",
          c.scene.spec.num_scenes,
          c.scene.spec.num_balls,
          static_cast<int64_t>(c.frames) * c.scene.spec.substeps,
          median(times),
          c.bytes_per_step};
}

// (a) every substep recorded: frames of one substep each.
Case recorded_case(int64_t scenes, int frames, uint64_t seed) {
  npe::datagen::WorldDef w;
  Case c{"a_4ball_recorded", npe::datagen::dataset_scenes(w, scenes, seed), frames, true, 16.0};
  c.scene.spec.frame_dt = c.scene.spec.substep();
  c.scene.spec.substeps = 1;
  return c;
}
// (b) final state only: one frame of `substeps` substeps, 32 bytes per body read and written
// once per run.
Case final_case(int64_t scenes, int substeps, uint64_t seed) {
  npe::datagen::WorldDef w;
  Case c{"b_4ball_final", npe::datagen::dataset_scenes(w, scenes, seed), 1, false, 32.0 / substeps};
  c.scene.spec.frame_dt = c.scene.spec.substep() * substeps;
  c.scene.spec.substeps = substeps;
  return c;
}
// (c) one world with the grid; one frame of `substeps` substeps. Counted bytes per body-step:
// state read and written (32), radius, mass and 1/mass (12), the grid's cell, rank and slot
// arrays written and read (24), per-cell starts (8 at about one cell per ball): 76.
Case world_case(int64_t balls, int substeps, uint64_t seed) {
  Case c{"c_world_" + std::to_string(balls), large_world(balls, 4, 0.3, 60, seed), 1, false, 76.0};
  c.scene.spec.frame_dt = c.scene.spec.substep() * substeps;
  c.scene.spec.substeps = substeps;
  return c;
}

// ---- npe-bench diffsim: forward against forward + backward of the differentiable simulator ----

struct DiffRow {
  std::string backend, precision, world;
  int64_t scenes = 0, balls = 0, substeps = 0, k = 0;
  bool contact_words = true;             // the backward pass given the forward pass's contact words
  double forward_s = 0, backward_s = 0;  // medians; backward_s = forward + backward
  double memory_bytes = 0;               // checkpoints + contact words + recomputation scratch
  double contact_share = 0;              // share of ball-substeps in contact
  bool default_k = false;                // K = one frame, the reference for the ratio
  double rate(double s) const { return scenes * balls * static_cast<double>(substeps) / s; }
};

// The benchmark's worlds: "dataset", npe-datagen's default world with variable masses (4 balls;
// contacts are rare, under 1% of ball-substeps), and "crowded", 8 faster balls (speeds up to
// 200 px/s) with many more contacts, to show how the backward rate depends on them.
npe::datagen::WorldDef diff_world(const std::string& name) {
  npe::datagen::WorldDef w;
  w.variable_mass = true;
  if (name == "crowded") {
    w.num_balls = 8;
    w.max_speed = 200;
  }
  return w;
}

double share_of_set_bits(const std::vector<uint32_t>& words, int64_t total_bits) {
  int64_t set = 0;
  for (uint32_t v : words) set += __builtin_popcount(v);
  return static_cast<double>(set) / static_cast<double>(total_bits);
}

template <class T>
DiffRow run_diff(bool cuda, const std::string& world, int64_t scenes, int frames, int k, bool contact_words,
                 int repeats, int threads, uint64_t seed) {
  const Scene sc = npe::datagen::dataset_scenes(diff_world(world), scenes, seed);
  const WorldSpec& spec = sc.spec;
  DiffRollout r;
  r.frames = frames;
  r.checkpoint_every = k;
  const int64_t n = spec.num_bodies();
  std::vector<T> init, mass(spec.mass.begin(), spec.mass.end()), radius(spec.radius.begin(), spec.radius.end());
  for (const auto* v : {&sc.state.x, &sc.state.y, &sc.state.vx, &sc.state.vy})
    init.insert(init.end(), v->begin(), v->end());
  std::vector<T> damping(scenes, T(0));
  const size_t traj_n = static_cast<size_t>(frames + 1) * 4 * n,
               ckpt_n = static_cast<size_t>(r.num_checkpoints(spec)) * 4 * n;
  const size_t scratch_n = static_cast<size_t>(r.resolved_k(spec)) * 4 * n;
  const size_t words_n = static_cast<size_t>(r.num_contact_words(spec));
  std::vector<T> w_bar(traj_n, T(1));
  std::vector<uint32_t> words(words_n);
  DiffRow row{cuda ? "cuda" : "cpu",
              sizeof(T) == 4 ? "float32" : "float64",
              world,
              scenes,
              spec.num_balls,
              r.substeps_total(spec),
              r.resolved_k(spec),
              contact_words};
  row.memory_bytes = static_cast<double>(ckpt_n + scratch_n) * sizeof(T) + (contact_words ? words_n * 4.0 : 0.0);
  row.default_k = k == 0;
  std::vector<double> tf, tb;
  auto clock = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  if (!cuda) {
    std::vector<T> traj(traj_n), ckpt(ckpt_n), gi(init.size()), gm(n), gr(n), gd(scenes);
    const DiffInputs<T> in{init.data(), mass.data(), radius.data(), damping.data(), nullptr};
    for (int rep = 0; rep < repeats + 1; ++rep) {
      const auto t0 = clock();
      uint32_t* cw = contact_words ? words.data() : nullptr;
      diff_forward_cpu(spec, r, in, traj.data(), ckpt.data(), cw, threads);
      const auto t1 = clock();
      diff_backward_cpu(spec, r, in, ckpt.data(), cw, w_bar.data(),
                        DiffGrads<T>{gi.data(), gm.data(), gr.data(), gd.data(), nullptr}, threads);
      const auto t2 = clock();
      if (rep > 0) tf.push_back(secs(t0, t1)), tb.push_back(secs(t0, t2));
    }
  } else {
    auto up = [](const std::vector<T>& h) {
      auto d = std::make_unique<DeviceBuffer>(h.size() * sizeof(T));
      d->copy_from_host(h.data(), h.size() * sizeof(T), nullptr);
      return d;
    };
    auto di = up(init), dm = up(mass), dr = up(radius), dd = up(damping), dw = up(w_bar);
    DeviceBuffer traj(traj_n * sizeof(T)), ckpt(ckpt_n * sizeof(T)), scratch(scratch_n * sizeof(T));
    DeviceBuffer d_words(words_n * sizeof(uint32_t));
    uint32_t* cw = contact_words ? static_cast<uint32_t*>(d_words.get()) : nullptr;
    DeviceBuffer gi(init.size() * sizeof(T)), gm(n * sizeof(T)), gr(n * sizeof(T)), gd(scenes * sizeof(T));
    auto p = [](const std::unique_ptr<DeviceBuffer>& b) { return static_cast<const T*>(b->get()); };
    const DiffInputs<T> in{p(di), p(dm), p(dr), p(dd), nullptr};
    const DiffGrads<T> g{static_cast<T*>(gi.get()), static_cast<T*>(gm.get()), static_cast<T*>(gr.get()),
                         static_cast<T*>(gd.get()), nullptr};
    for (int rep = 0; rep < repeats + 2; ++rep) {  // two warm-up runs
      synchronize_stream(nullptr);
      const auto t0 = clock();
      diff_forward_cuda(spec, r, in, static_cast<T*>(traj.get()), static_cast<T*>(ckpt.get()), cw, nullptr);
      synchronize_stream(nullptr);
      const auto t1 = clock();
      diff_backward_cuda(spec, r, in, static_cast<const T*>(ckpt.get()), cw, p(dw), g, static_cast<T*>(scratch.get()),
                         nullptr);
      synchronize_stream(nullptr);
      const auto t2 = clock();
      if (rep > 1) tf.push_back(secs(t0, t1)), tb.push_back(secs(t0, t2));
    }
    if (contact_words) {  // the last forward pass's words, for the contact share
      d_words.copy_to_host_async(words.data(), words_n * sizeof(uint32_t), nullptr);
      synchronize_stream(nullptr);
    }
  }
  if (contact_words) row.contact_share = share_of_set_bits(words, r.substeps_total(spec) * n);
  row.forward_s = median(tf);
  row.backward_s = median(tb);
  return row;
}

int bench_diffsim(bool do_cpu, bool do_cuda, bool quick, int repeats, int threads, const std::string& csv_path,
                  const std::string& json_path, int64_t only_scenes, int only_frames) {
  std::vector<DiffRow> rows;
  const uint64_t seed = 1;
  if (only_scenes > 0) {  // one case: the dataset world, float32 and float64 (bench/python_ops.py)
    for (bool cuda : {false, true}) {
      if (cuda ? !do_cuda : !do_cpu) continue;
      rows.push_back(run_diff<float>(cuda, "dataset", only_scenes, only_frames, 0, true, repeats, threads, seed));
      rows.push_back(run_diff<double>(cuda, "dataset", only_scenes, only_frames, 0, true, repeats, threads, seed));
    }
  }
  if (do_cpu && only_scenes == 0) {
    const int64_t s = quick ? 64 : 1024;
    rows.push_back(run_diff<float>(false, "dataset", s, 2, 0, true, repeats, threads, seed));
    rows.push_back(run_diff<double>(false, "dataset", s, 2, 0, true, repeats, threads, seed));
    rows.push_back(run_diff<double>(false, "dataset", s, 2, 0, false, repeats, threads, seed));
    rows.push_back(run_diff<double>(false, "crowded", s, 2, 0, true, repeats, threads, seed));
    rows.push_back(run_diff<double>(false, "crowded", s, 2, 0, false, repeats, threads, seed));
  }
  if (do_cuda && only_scenes == 0) {
    const int64_t s = quick ? 4096 : (int64_t{1} << 17);
    const int frames = quick ? 2 : 16;
    for (const char* world : {"dataset", "crowded"}) {
      rows.push_back(run_diff<float>(true, world, s, frames, 0, true, repeats, threads, seed));  // one state per frame
      rows.push_back(
          run_diff<float>(true, world, s, frames, 0, false, repeats, threads, seed));  // without contact words
      if (std::string(world) == "crowded") continue;
      rows.push_back(run_diff<float>(true, world, s, frames, frames * 64, true, repeats, threads,
                                     seed));  // one segment: most recomputation
      rows.push_back(
          run_diff<float>(true, world, s, frames, 1, true, repeats, threads, seed));  // every state stored: none
      rows.push_back(run_diff<double>(true, world, s, frames, 0, true, repeats, threads, seed));
      rows.push_back(run_diff<double>(true, world, s, frames, 0, false, repeats, threads, seed));
    }
  }
  std::string csv =
      "backend,precision,world,scenes,balls,substeps,checkpoint_every,contact_words,contact_share,forward_s,"
      "forward_backward_s,forward_body_steps_per_s,forward_backward_body_steps_per_s,ratio,memory_bytes,"
      "bytes_per_scene_step\n";
  nlohmann::json j = {{"benchmark", "diffsim"},
                      {"cuda_device", do_cuda ? npe::gpu::cuda_device_name() : ""},
                      {"rows", nlohmann::json::array()}};
  fmt::print("\n{:<5} {:<8} {:<8} {:>8} {:>6} {:>8} {:>6} {:>6} {:>8} {:>9} {:>11} {:>12} {:>12} {:>6} {:>10} {:>9}\n",
             "dev", "prec", "world", "scenes", "balls", "substeps", "K", "words", "contact", "fwd ms", "fwd+bwd ms",
             "fwd steps/s", "f+b steps/s", "ratio", "memory MB", "B/scene-step");
  for (const DiffRow& x : rows) {
    // against the forward pass of the same scenes with the default checkpoint interval (one state
    // per frame), so that storing more states does not flatter the ratio by slowing the forward
    const DiffRow* ref = &x;
    for (const DiffRow& y : rows)
      if (y.backend == x.backend && y.precision == x.precision && y.world == x.world &&
          y.contact_words == x.contact_words && y.default_k)
        ref = &y;
    const double ratio = x.rate(x.backward_s) / x.rate(ref->forward_s);
    const double per = x.memory_bytes / (static_cast<double>(x.scenes) * x.substeps);
    csv += fmt::format("{},{},{},{},{},{},{},{},{:.4f},{:.6g},{:.6g},{:.6g},{:.6g},{:.4f},{:.6g},{:.4g}\n", x.backend,
                       x.precision, x.world, x.scenes, x.balls, x.substeps, x.k, x.contact_words ? 1 : 0,
                       x.contact_share, x.forward_s, x.backward_s, x.rate(x.forward_s), x.rate(x.backward_s), ratio,
                       x.memory_bytes, per);
    j["rows"].push_back({{"backend", x.backend},
                         {"precision", x.precision},
                         {"world", x.world},
                         {"scenes", x.scenes},
                         {"balls", x.balls},
                         {"substeps", x.substeps},
                         {"checkpoint_every", x.k},
                         {"contact_words", x.contact_words},
                         {"contact_share", x.contact_share},
                         {"forward_s", x.forward_s},
                         {"forward_backward_s", x.backward_s},
                         {"ratio", ratio},
                         {"memory_bytes", x.memory_bytes},
                         {"bytes_per_scene_step", per}});
    fmt::print("{:<5} {:<8} {:<8} {:>8} {:>6} {:>8} {:>6} {:>6} {:>8.4f} {:>9.3f} {:>11.3f} {:>12.4g} {:>12.4g} "
               "{:>6.3f} {:>10.1f} {:>9.3g}\n",
               x.backend, x.precision, x.world, x.scenes, x.balls, x.substeps, x.k, x.contact_words ? "yes" : "no",
               x.contact_share, x.forward_s * 1e3, x.backward_s * 1e3, x.rate(x.forward_s), x.rate(x.backward_s), ratio,
               x.memory_bytes / 1e6, per);
  }
  npe::write_file_atomic(csv_path, csv);
  npe::write_file_atomic(json_path, j.dump(2) + "\n");
  fmt::print("wrote {} and {}\n", csv_path, json_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return npe::tools::run_tool("npe-bench", [&] {
    cxxopts::Options o(
        "npe-bench", "npe benchmarks.\n  npe-bench engine [flags]    the ball-world engine, body-steps/s\n"
                     "  npe-bench diffsim [flags]   the differentiable simulator, forward and forward + backward\n"
                     "  npe-bench train [flags]     npe-train's inner loop, samples/s (classic batch 50, modern 2048)\n"
                     "  npe-bench train-dp [flags]  data-parallel npe-train step, under a launcher: torchrun "
                     "--no-python --nproc_per_node=K npe-bench train-dp\n"
                     "  npe-bench control [flags]   herding environments, frames/s forward and forward + backward");
    o.add_options()("what", "benchmark: engine, diffsim, train, train-dp or control",
                    cxxopts::value<std::string>()->default_value(""))(
        "device", "cpu, cuda or all (all: cuda only where a device is present)",
        cxxopts::value<std::string>()->default_value("all"))("repeats", "timed repeats (median reported)",
                                                             cxxopts::value<int>()->default_value("7"))(
        "threads", "CPU threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))(
        "quick", "small sizes (a smoke test of the benchmark itself)")(
        "cases",
        "run only the cases whose names start with one of these (comma-separated: a, b, c, "
        "c_world_1000000, ...)",
        cxxopts::value<std::vector<std::string>>()->default_value(""))(
        "scenes",
        "diffsim: only the dataset world's float32 and float64 cases, with this many scenes (0: the whole "
        "benchmark)",
        cxxopts::value<int64_t>()->default_value("0"))("frames", "diffsim with --scenes: frames per rollout",
                                                       cxxopts::value<int>()->default_value("60"))(
        "out_csv", "CSV output (default bench/<what>.csv)", cxxopts::value<std::string>()->default_value(""))(
        "out_json", "JSON output (default bench/<what>.json)", cxxopts::value<std::string>()->default_value(""))(
        "h,help", "this help");
    o.parse_positional({"what"});
    auto r = npe::tools::parse(o, argc, argv);
    if (r.count("help")) {
      fmt::print("{}\n", o.help());
      return 0;
    }
    const std::string what = r["what"].as<std::string>();
    if (what != "engine" && what != "diffsim" && what != "train" && what != "train-dp" && what != "control")
      throw npe::Error(fmt::format(
          "npe-bench: expected a benchmark name (engine, diffsim, train, train-dp or control), found '{}'", what));
    const std::string device = r["device"].as<std::string>();
    if (device != "cpu" && device != "cuda" && device != "all")
      throw npe::Error(fmt::format("--device: expected cpu, cuda or all, found '{}'", device));
    const int repeats = r["repeats"].as<int>(), threads = r["threads"].as<int>();
    if (repeats < 1) throw npe::Error(fmt::format("--repeats: expected >= 1, found {}", repeats));
    const bool quick = r.count("quick") > 0;
    std::string why;
    const bool have_cuda = npe::gpu::cuda_available(&why);
    if (device == "cuda" && !have_cuda) throw npe::Error("--device cuda: " + why);
    const bool do_cuda = have_cuda && device != "cpu", do_cpu = device != "cuda";
    if (!have_cuda && device == "all") fmt::print(stderr, "npe-bench: {}: CPU reference only\n", why);
    std::string out_csv = r["out_csv"].as<std::string>(), out_json = r["out_json"].as<std::string>();
    if (out_csv.empty()) out_csv = "bench/" + what + ".csv";
    if (out_json.empty()) out_json = "bench/" + what + ".json";
    npe::check_distinct_files({{"--out_csv", out_csv, true}, {"--out_json", out_json, true}});
    for (const std::string& f : {out_csv, out_json}) npe::check_writable(f);
    if (what == "train-dp") return npe::tools::bench_train_data_parallel(quick, out_csv, out_json);
    if (what == "train") return npe::tools::bench_train(do_cpu, do_cuda, quick, threads, out_csv, out_json);
    if (what == "control") return npe::tools::bench_control(do_cpu, do_cuda, quick, repeats, out_csv, out_json);
    const int64_t scenes = r["scenes"].as<int64_t>();
    const int frames = r["frames"].as<int>();
    if (scenes < 0 || scenes > (int64_t{1} << 26))
      throw npe::Error(fmt::format("--scenes: expected 0 to 2^26, found {}", scenes));
    if (frames < 1 || frames > 100000)
      throw npe::Error(fmt::format("--frames: expected 1 to 100000, found {}", frames));
    if ((r.count("scenes") || r.count("frames")) && what != "diffsim")
      throw npe::Error(fmt::format("--scenes/--frames: used by npe-bench diffsim only, not {}", what));
    if (what == "diffsim")
      return bench_diffsim(do_cpu, do_cuda, quick, repeats, threads, out_csv, out_json, scenes, frames);

    std::vector<std::string> only;
    for (const auto& x : r["cases"].as<std::vector<std::string>>())
      if (!x.empty()) only.push_back(x);
    auto wanted = [&](const std::string& name) {
      if (only.empty()) return true;
      for (const auto& p : only)
        if (name.rfind(p, 0) == 0) return true;
      return false;
    };
    std::vector<Row> rows;
    const uint64_t seed = 1;
    auto progress = [](const Row& x) {
      fmt::print(stderr, "  {:<18} {:<4} {:<7} {:>10.3g} body-steps/s\n", x.name, x.backend, x.precision, x.rate());
    };
    if (do_cpu) {
      const int64_t s = quick ? 64 : 4096;
      if (wanted("a_4ball_recorded")) {
        const Case c = recorded_case(s, 64, seed);
        rows.push_back(run_cpu<float>(c, repeats, threads)), progress(rows.back());
        rows.push_back(run_cpu<double>(c, repeats, threads)), progress(rows.back());
      }
      if (wanted("b_4ball_final")) {
        const Case c = final_case(s, 256, seed);
        rows.push_back(run_cpu<float>(c, repeats, threads)), progress(rows.back());
        rows.push_back(run_cpu<double>(c, repeats, threads)), progress(rows.back());
      }
      for (int64_t n : quick ? std::vector<int64_t>{2000} : std::vector<int64_t>{10000, 100000, 1000000}) {
        if (!wanted("c_world_" + std::to_string(n))) continue;
        const Case c = world_case(n, n >= 1000000 ? 4 : 16, seed);
        rows.push_back(run_cpu<float>(c, n >= 1000000 ? 2 : repeats, threads)), progress(rows.back());
      }
    }
    if (do_cuda) {
      const int64_t s = quick ? 4096 : (int64_t{1} << 20);
      if (wanted("a_4ball_recorded"))
        rows.push_back(run_cuda<float>(recorded_case(s, 64, seed), repeats)), progress(rows.back());
      if (wanted("b_4ball_final")) {
        const Case b = final_case(s, 256, seed);
        rows.push_back(run_cuda<float>(b, repeats)), progress(rows.back());
        rows.push_back(run_cuda<double>(b, repeats)), progress(rows.back());
      }
      for (int64_t n : quick ? std::vector<int64_t>{2000} : std::vector<int64_t>{10000, 100000, 1000000}) {
        if (!wanted("c_world_" + std::to_string(n))) continue;
        rows.push_back(run_cuda<float>(world_case(n, 64, seed), repeats)), progress(rows.back());
      }
    }
    const double bw = do_cuda ? npe::gpu::cuda_copy_bandwidth() : 0;
    const std::string dev = do_cuda ? npe::gpu::cuda_device_name() : "";
    const unsigned cores = std::thread::hardware_concurrency();

    std::string csv = "case,backend,precision,scenes,balls,substeps,median_s,body_steps_per_s,bytes_per_body_step,"
                      "bytes_per_s,device_copy_bytes_per_s\n";
    nlohmann::json j = {{"benchmark", "engine"},
                        {"cuda_device", dev},
                        {"cpu_threads", threads > 0 ? threads : static_cast<int>(cores)},
                        {"device_copy_bytes_per_s", bw},
                        {"rows", nlohmann::json::array()}};
    fmt::print("\n{:<18} {:<5} {:<8} {:>9} {:>8} {:>9} {:>11} {:>14} {:>11}\n", "case", "dev", "prec", "scenes",
               "balls", "substeps", "median ms", "body-steps/s", "GB/s");
    for (const Row& x : rows) {
      const double bps = x.rate() * x.bytes_per_step;
      csv += fmt::format("{},{},{},{},{},{},{:.6g},{:.6g},{:.4g},{:.6g},{:.6g}\n", x.name, x.backend, x.precision,
                         x.scenes, x.balls, x.substeps, x.seconds, x.rate(), x.bytes_per_step, bps,
                         x.backend == "cuda" ? bw : 0.0);
      j["rows"].push_back({{"case", x.name},
                           {"backend", x.backend},
                           {"precision", x.precision},
                           {"scenes", x.scenes},
                           {"balls", x.balls},
                           {"substeps", x.substeps},
                           {"median_s", x.seconds},
                           {"body_steps_per_s", x.rate()},
                           {"bytes_per_body_step", x.bytes_per_step},
                           {"bytes_per_s", bps}});
      fmt::print("{:<18} {:<5} {:<8} {:>9} {:>8} {:>9} {:>11.3f} {:>14.4g} {:>11.1f}\n", x.name, x.backend, x.precision,
                 x.scenes, x.balls, x.substeps, x.seconds * 1e3, x.rate(), bps * 1e-9);
    }
    if (do_cuda) fmt::print("device {}: measured copy bandwidth {:.0f} GB/s (read + write)\n", dev, bw * 1e-9);
    npe::write_file_atomic(out_csv, csv);
    npe::write_file_atomic(out_json, j.dump(2) + "\n");
    fmt::print("wrote {} and {}\n", out_csv, out_json);
    return 0;
  });
}
