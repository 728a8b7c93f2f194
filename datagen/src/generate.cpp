#include "npe/datagen/generate.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>
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
double max_drift(const float* scene, const WorldDef& w) {
  const double e0 = kinetic_energy(scene, w.num_balls);
  if (!(e0 > 1e-12)) return 0.0;
  double worst = 0;
  for (int t = 1; t < w.timesteps; ++t)
    worst = std::max(worst, std::abs(kinetic_energy(scene + static_cast<size_t>(t) * w.num_balls * kStateDim,
                                                      w.num_balls) - e0) / e0);
  return worst;
}
}  // namespace

DatagenSummary generate_dataset(const DatagenConfig& c) {
  validate(c.world);
  if (c.num_scenes < 3)
    throw Error(fmt::format("--num_scenes: expected at least 3 scenes (one per split), found {}", c.num_scenes));
  if (c.threads < 0) throw Error(fmt::format("--threads: expected >= 0 (0 = all cores), found {}", c.threads));
  const double bytes = dataset_bytes(c.world, c.num_scenes);
  const double phys = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE);
  if (bytes > 0.8 * phys)
    throw Error(fmt::format("--num_scenes {}: the dataset needs {:.1f} GiB of memory and disk, "
                            "this machine has {:.1f} GiB of memory; generate fewer scenes",
                            c.num_scenes, bytes / (1 << 30), phys / (1 << 30)));
  if (c.out_prefix.empty() || fs::path(c.out_prefix).filename().empty())
    throw Error(fmt::format("--out_prefix: expected a path prefix such as data/x/x, found '{}'", c.out_prefix));
  check_writable(manifest_path(c.out_prefix));

  const WorldDef& w = c.world;
  const size_t per_scene = static_cast<size_t>(w.timesteps) * w.num_balls * kStateDim;
  std::vector<float> all(per_scene * c.num_scenes);
  std::vector<double> drift(c.num_scenes);

  const int threads = c.threads > 0 ? c.threads : std::max(1u, std::thread::hardware_concurrency());
  std::atomic<int64_t> next{0}, done{0};
  std::exception_ptr failure;  // the first worker error, guarded by failure_mutex
  std::mutex failure_mutex;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    try {
      for (int64_t i; (i = next.fetch_add(1)) < c.num_scenes;) {
        float* out = all.data() + per_scene * i;
        simulate_box2d(w, sample_scene(w, c.seed, i), out);
        drift[i] = max_drift(out, w);
        done.fetch_add(1);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      failed.store(true);
      next.store(c.num_scenes);
    }
  };

  Progress progress("npe-datagen", c.num_scenes);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k) pool.emplace_back(worker);
  while (done.load() < c.num_scenes && !failed.load()) {
    if (c.progress) progress.update(done.load());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  if (c.progress) progress.update(c.num_scenes);
  progress.finish();

  // Splits by scene: [0, train) train, then val, then test.
  const SplitSizes sizes = split_sizes(c.num_scenes);
  Manifest m;
  m.world = w;
  m.seed = c.seed;
  m.engine = "box2d";
  m.npe_version = NPE_VERSION;
  m.num_scenes = c.num_scenes;
  DatagenSummary summary;
  int64_t first = 0;
  for (auto [name, count] : {std::pair<const char*, int64_t>{"train", sizes.train},
                             {"val", sizes.val}, {"test", sizes.test}}) {
    const fs::path path = split_path(c.out_prefix, name);
    write_npy_f32(path, {count, w.timesteps, w.num_balls, kStateDim}, all.data() + per_scene * first);
    m.splits.push_back({name, path.filename().string(), first, count, count * (w.timesteps - 2)});
    summary.files.push_back(path.string());
    first += count;
  }
  const fs::path mpath = manifest_path(c.out_prefix);
  write_file_atomic(mpath, m.to_json().dump(2) + "\n");
  summary.files.push_back(mpath.string());

  summary.scenes = c.num_scenes;
  summary.windows = c.num_scenes * (w.timesteps - 2);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (double d : drift) summary.max_energy_drift = std::max(summary.max_energy_drift, d);
  return summary;
}

}  // namespace npe::datagen
