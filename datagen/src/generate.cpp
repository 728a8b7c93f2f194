#include "npe/datagen/generate.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "npe/datagen/dataset.h"
#include "npe/datagen/io.h"
#include "npe/datagen/npy.h"

namespace npe::datagen {
namespace fs = std::filesystem;

double dataset_bytes(const WorldDef& w, int64_t n) {
  return static_cast<double>(n) * w.timesteps * w.num_balls * kStateDim * sizeof(float);
}

namespace {
double max_drift(const float* scene, const WorldDef& w, const FrameEnergy& energy) {
  auto kinetic_energy = [&](const float* frame, int n) { return energy ? energy(frame) : datagen::kinetic_energy(frame, n); };
  const double e0 = kinetic_energy(scene, w.num_balls);
  if (!(e0 > 1e-12)) return 0.0;
  double worst = 0;
  for (int t = 1; t < w.timesteps; ++t) {
    const double e = kinetic_energy(scene + static_cast<size_t>(t) * w.num_balls * kStateDim, w.num_balls);
    if (!std::isnan(e)) worst = std::max(worst, std::abs(e - e0) / e0);  // NaN: frame not measured
  }
  return worst;
}

// Largest max_drift over the `n` scenes of a chunk, on `threads` threads (`energy` must be safe
// to call concurrently).
double chunk_drift(const float* scenes, int64_t n, const WorldDef& w, const FrameEnergy& energy, int threads) {
  const size_t per_scene = static_cast<size_t>(w.timesteps) * w.num_balls * kStateDim;
  const int t = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, n / 64)));
  std::vector<double> worst(t, 0.0);
  auto work = [&](int k) {
    for (int64_t i = n * k / t; i < n * (k + 1) / t; ++i)
      worst[k] = std::max(worst[k], max_drift(scenes + per_scene * i, w, energy));
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < t; ++k) pool.emplace_back(work, k);
  work(0);
  for (std::thread& th : pool) th.join();
  return *std::max_element(worst.begin(), worst.end());
}
}  // namespace

DatagenSummary write_dataset(const DatagenConfig& c, const std::string& engine,
                             int64_t chunk_scenes, const SceneSource& source, const FrameEnergy& energy) {
  validate(c.world);
  if (c.num_scenes < 3)
    throw Error(fmt::format("--num_scenes: expected at least 3 scenes (one per split), found {}", c.num_scenes));
  if (c.threads < 0) throw Error(fmt::format("--threads: expected >= 0 (0 = all cores), found {}", c.threads));
  if (c.out_prefix.empty() || fs::path(c.out_prefix).filename().empty())
    throw Error(fmt::format("--out_prefix: expected a path prefix such as data/x/x, found '{}'", c.out_prefix));
  check_writable(manifest_path(c.out_prefix));
  // Scenes are streamed to the files chunk by chunk, so memory is no limit; disk space is.
  const double bytes = dataset_bytes(c.world, c.num_scenes);
  struct statvfs vfs {};
  const fs::path dir = fs::absolute(manifest_path(c.out_prefix)).parent_path();
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const double free_bytes = static_cast<double>(vfs.f_bavail) * vfs.f_frsize;
    if (bytes > free_bytes)
      throw Error(fmt::format("--num_scenes {}: the dataset needs {:.1f} GiB of disk, {} has {:.1f} GiB "
                              "free; generate fewer scenes or write elsewhere (--out_prefix)",
                              c.num_scenes, bytes / (1 << 30), dir.string(), free_bytes / (1 << 30)));
  }

  const WorldDef& w = c.world;
  const size_t per_scene = static_cast<size_t>(w.timesteps) * w.num_balls * kStateDim;
  const int64_t chunk = std::max<int64_t>(1, std::min(chunk_scenes, c.num_scenes));
  const int threads = resolve_threads(c.threads);
  std::vector<float> buf(per_scene * static_cast<size_t>(chunk));
  DatagenSummary summary;
  Progress progress("npe-datagen", c.num_scenes);
  const auto t0 = std::chrono::steady_clock::now();

  // Splits by scene: [0, train) train, then val, then test. The three arrays go to temporary files
  // that are renamed into place together, then the manifest: a run stopped at any moment (an error,
  // SIGINT, SIGKILL) leaves the files of an earlier dataset with this prefix as they were.
  const SplitSizes sizes = split_sizes(c.num_scenes);
  Manifest m;
  m.world = w;
  m.seed = c.seed;
  m.engine = engine;
  m.npe_version = NPE_VERSION;
  m.num_scenes = c.num_scenes;
  int64_t first = 0;
  std::vector<std::unique_ptr<AtomicFile>> outputs;
  for (auto [name, count] : {std::pair<const char*, int64_t>{"train", sizes.train},
                             {"val", sizes.val}, {"test", sizes.test}}) {
    const fs::path path = split_path(c.out_prefix, name);
    outputs.push_back(std::make_unique<AtomicFile>(path));
    std::FILE* f = outputs.back()->get();
    const std::string header = npy_header_f32({count, w.timesteps, w.num_balls, kStateDim});
    if (std::fwrite(header.data(), 1, header.size(), f) != header.size())
      throw Error(fmt::format("error writing '{}'", path.string()));
    for (int64_t s = first; s < first + count; s += chunk) {
      throw_if_interrupted(fmt::format("interrupted at scene {} of {}; no file was written or changed", s,
                                       c.num_scenes));
      const int64_t n = std::min(chunk, first + count - s);
      source(s, n, buf.data());
      summary.max_energy_drift = std::max(summary.max_energy_drift, chunk_drift(buf.data(), n, w, energy, threads));
      const size_t nbytes = per_scene * n * sizeof(float);
      if (std::fwrite(buf.data(), 1, nbytes, f) != nbytes)
        throw Error(fmt::format("error writing '{}' (disk full?)", path.string()));
      if (c.progress) progress.update(s + n);
    }
    m.splits.push_back({name, path.filename().string(), first, count, count * (w.timesteps - 2)});
    summary.files.push_back(path.string());
    first += count;
  }
  throw_if_interrupted("interrupted after the last scene; no file was written or changed");
  for (auto& out : outputs) out->commit();
  if (c.progress) progress.update(c.num_scenes);
  progress.finish();
  const fs::path mpath = manifest_path(c.out_prefix);
  write_file_atomic(mpath, m.to_json().dump(2) + "\n");
  summary.files.push_back(mpath.string());

  summary.scenes = c.num_scenes;
  summary.windows = c.num_scenes * (w.timesteps - 2);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

DatagenSummary generate_dataset(const DatagenConfig& config) {
  DatagenConfig c = config;
  if (c.world.substeps == 0) c.world.substeps = kBox2dDefaultSubsteps;  // recorded in the manifest
  if (!c.world.obstacles.empty())
    throw Error("--obstacles: obstacles are simulated by the GPU engine only; add --engine gpu");
  validate(c.world);
  const WorldDef& w = c.world;
  const size_t per_scene = static_cast<size_t>(w.timesteps) * w.num_balls * kStateDim;
  const int threads = resolve_threads(c.threads);
  std::atomic<int64_t> redrawn{0};
  // Box2D scenes are independent: a chunk is shared out scene by scene among the threads.
  auto source = [&](int64_t first, int64_t count, float* out) {
    std::atomic<int64_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&] {
      try {
        for (int64_t i; (i = next.fetch_add(1)) < count;)
          redrawn += simulate_scene_box2d(w, c.seed, first + i, out + per_scene * i) - 1;
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next.store(count);
      }
    };
    std::vector<std::thread> pool;
    for (int k = 0; k < std::min<int64_t>(threads, count); ++k) pool.emplace_back(worker);
    for (std::thread& t : pool) t.join();
    if (failure) std::rethrow_exception(failure);
  };
  DatagenSummary summary = write_dataset(c, "box2d", std::max<int64_t>(256, 64 * threads), source);
  summary.redrawn = redrawn.load();
  return summary;
}

}  // namespace npe::datagen
