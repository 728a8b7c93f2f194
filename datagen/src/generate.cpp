#include "npe/datagen/generate.h"

#include <algorithm>
#include <atomic>
#include <charconv>
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
#include "npe/core/interrupt.h"
#include "npe/core/progress.h"
#include "npe/core/io.h"
#include "npe/core/npy.h"
#include "npe/core/parallel.h"

namespace npe::datagen {
namespace fs = std::filesystem;
using nlohmann::json;

double dataset_bytes(const WorldDef& w, int64_t n) {
  const double walls = w.walls.empty() ? 0.0 : double{kWallSlots} * kWallDim;
  return static_cast<double>(n) * (double{1} * w.timesteps * w.num_balls * kStateDim + walls) * sizeof(float);
}

SceneRange shard_range(int64_t s, int64_t k, int64_t n) {
  if (n < 1 || k < 0 || k >= n)
    throw FieldError("shard", fmt::format(" {}/{}: expected shard k of N with 0 <= k < N", k, n));
  if (n > s)
    throw FieldError("shard", fmt::format(" {}/{}: expected N <= num_scenes ({}) so that every shard holds a scene, "
                                          "found N = {}",
                                          k, n, s, n));
  // floor(k S / N) in 128 bits: k S overflows int64_t from S N > 9.2e18
  auto start = [&](int64_t i) {
    return static_cast<int64_t>(static_cast<unsigned __int128>(i) * static_cast<uint64_t>(s) /
                                static_cast<uint64_t>(n));
  };
  return {start(k), start(k + 1) - start(k)};
}

SceneRange scene_range(const DatagenConfig& c) {
  if (c.num_shards == 0) return {0, c.num_scenes};
  return shard_range(c.num_scenes, c.shard, c.num_shards);
}

void parse_shard(const std::string& text, DatagenConfig& c) {
  // k/N: two unsigned decimal numbers, nothing else
  const size_t slash = text.find('/');
  auto number = [&](size_t from, size_t to, int64_t& out) {
    if (from >= to) return false;
    for (size_t i = from; i < to; ++i)
      if (text[i] < '0' || text[i] > '9') return false;
    const auto [end, ec] = std::from_chars(text.data() + from, text.data() + to, out);
    return ec == std::errc() && end == text.data() + to;
  };
  int64_t k = 0, n = 0;
  if (slash == std::string::npos || !number(0, slash, k) || !number(slash + 1, text.size(), n))
    throw FieldError("shard",
                     fmt::format(": expected k/N, shard k of N with 0 <= k < N (such as 3/10), found '{}'", text));
  if (n < 1) throw FieldError("shard", fmt::format(" {}: expected N >= 1 shards, found N = {}", text, n));
  if (k >= n) throw FieldError("shard", fmt::format(" {}: expected 0 <= k < N, found k = {} with N = {}", text, k, n));
  c.shard = k;
  c.num_shards = n;
}

namespace {
double max_drift(const float* scene, const WorldDef& w, const FrameEnergy& energy) {
  auto kinetic_energy = [&](const float* frame, int n) {
    return energy ? energy(frame) : datagen::kinetic_energy(frame, n);
  };
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

DatagenSummary write_dataset(const DatagenConfig& c, const std::string& engine, int64_t chunk_scenes,
                             const SceneSource& source, const FrameEnergy& energy) {
  validate(c.world);
  if (c.num_scenes < 3)
    throw FieldError("num_scenes", fmt::format(": expected at least 3 scenes (one per split), found {}", c.num_scenes));
  if (c.threads < 0) throw FieldError("threads", fmt::format(": expected >= 0 (0 = all cores), found {}", c.threads));
  if (c.out_prefix.empty() || fs::path(c.out_prefix).filename().empty())
    throw FieldError("out_prefix", fmt::format(": expected a path prefix such as data/x/x, found '{}'", c.out_prefix));
  if (c.num_shards < 0) throw FieldError("shard", fmt::format(": expected N >= 1 shards, found N = {}", c.num_shards));
  const SceneRange range = scene_range(c);  // all scenes, or the shard's
  const bool sharded = c.num_shards > 0;
  const bool walls = !c.world.walls.empty();
  if (sharded && walls)
    throw FieldError("shard", ": walls worlds are written whole (the merge does not list walls files yet); write them "
                              "unsharded");
  const std::string prefix = sharded ? shard_prefix(c.out_prefix, c.shard, c.num_shards) : c.out_prefix;
  // one writer per dataset: a second run on this prefix is refused while this one writes
  const OutputLock lock(manifest_path(prefix), "out_prefix");
  check_writable(manifest_path(prefix));
  // Scenes are streamed to the files chunk by chunk, so memory is no limit; disk space is.
  const double bytes = dataset_bytes(c.world, range.count);
  struct statvfs vfs {};
  const fs::path dir = fs::absolute(manifest_path(prefix)).parent_path();
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const double free_bytes = static_cast<double>(vfs.f_bavail) * vfs.f_frsize;
    if (bytes > free_bytes)
      throw FieldError("num_scenes",
                       fmt::format(" {}{}: the {} needs {:.1f} GiB of disk, {} has {:.1f} GiB "
                                   "free; generate fewer scenes or write elsewhere",
                                   c.num_scenes, sharded ? fmt::format(" (shard {}/{})", c.shard, c.num_shards) : "",
                                   sharded ? fmt::format("shard ({} scenes)", range.count) : "dataset",
                                   bytes / (1 << 30), dir.string(), free_bytes / (1 << 30)));
  }

  const WorldDef& w = c.world;
  const size_t per_scene = static_cast<size_t>(w.timesteps) * w.num_balls * kStateDim;
  const int64_t chunk = std::max<int64_t>(1, std::min(chunk_scenes, range.count));
  const int threads = resolve_threads(c.threads);
  std::vector<float> buf(per_scene * static_cast<size_t>(chunk));
  constexpr size_t per_walls = size_t{kWallSlots} * kWallDim;
  std::vector<float> walls_buf(walls ? per_walls * static_cast<size_t>(chunk) : 0);
  DatagenSummary summary;
  Progress progress("npe-datagen", range.count);
  const auto t0 = std::chrono::steady_clock::now();

  // Splits by scene: [0, train) train, then val, then test, of the whole dataset; a shard writes
  // the part of each split within its scenes (if any). The arrays go to temporary files that are
  // renamed into place together, then the manifest: a run stopped at any moment (an error,
  // SIGINT, SIGKILL) leaves the files of an earlier dataset with this prefix as they were.
  const SplitSizes sizes = split_sizes(c.num_scenes);
  Manifest m;
  m.world = w;
  m.seed = c.seed;
  m.engine = engine;
  m.npe_version = NPE_VERSION;
  m.num_scenes = c.num_scenes;
  if (sharded) m.shard = {c.shard, c.num_shards, range.first, range.count};
  int64_t split_first = 0;
  std::vector<std::unique_ptr<AtomicFile>> outputs;
  for (auto [name, size] :
       {std::pair<const char*, int64_t>{"train", sizes.train}, {"val", sizes.val}, {"test", sizes.test}}) {
    // this run's scenes of the split: [lo, hi)
    const int64_t lo = std::max(split_first, range.first);
    const int64_t hi = std::min(split_first + size, range.first + range.count);
    split_first += size;
    if (lo >= hi) continue;  // a shard that holds none of this split: no file
    const int64_t count = hi - lo;
    const fs::path path = split_path(prefix, name);
    outputs.push_back(std::make_unique<AtomicFile>(path));
    std::FILE* f = outputs.back()->get();
    const std::string header = npy_header_f32({count, w.timesteps, w.num_balls, kStateDim});
    if (std::fwrite(header.data(), 1, header.size(), f) != header.size())
      throw Error(fmt::format("error writing '{}'", path.string()));
    const fs::path wpath = walls_path(prefix, name);
    std::FILE* wf = nullptr;
    if (walls) {
      outputs.push_back(std::make_unique<AtomicFile>(wpath));
      wf = outputs.back()->get();
      const std::string wheader = npy_header_f32({count, kWallSlots, kWallDim});
      if (std::fwrite(wheader.data(), 1, wheader.size(), wf) != wheader.size())
        throw Error(fmt::format("error writing '{}'", wpath.string()));
    }
    for (int64_t s = lo; s < hi; s += chunk) {
      throw_if_interrupted(
          fmt::format("interrupted at scene {} of {}; no file was written or changed", s, c.num_scenes));
      const int64_t n = std::min(chunk, hi - s);
      source(s, n, buf.data(), walls ? walls_buf.data() : nullptr);
      summary.max_energy_drift = std::max(summary.max_energy_drift, chunk_drift(buf.data(), n, w, energy, threads));
      const size_t nbytes = per_scene * n * sizeof(float);
      if (std::fwrite(buf.data(), 1, nbytes, f) != nbytes)
        throw Error(fmt::format("error writing '{}' (disk full?)", path.string()));
      const size_t wbytes = per_walls * n * sizeof(float);
      if (walls && std::fwrite(walls_buf.data(), 1, wbytes, wf) != wbytes)
        throw Error(fmt::format("error writing '{}' (disk full?)", wpath.string()));
      if (c.progress) progress.update(s - range.first + n);
    }
    m.splits.push_back({name, path.filename().string(), lo, count, count * (w.timesteps - 2)});
    summary.files.push_back(path.string());
    if (walls) {
      m.splits.back().walls_file = wpath.filename().string();
      summary.files.push_back(wpath.string());
    }
  }
  throw_if_interrupted("interrupted after the last scene; no file was written or changed");
  for (auto& out : outputs) out->commit();
  if (c.progress) progress.update(range.count);
  progress.finish();
  const fs::path mpath = manifest_path(prefix);
  write_file_atomic(mpath, m.to_json().dump(2) + "\n");
  summary.files.push_back(mpath.string());

  summary.scenes = range.count;
  summary.windows = range.count * (w.timesteps - 2);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

namespace {
// "; found shard manifests of N = a, b there" when `prefix`'s directory holds shard manifests
// of counts other than `n` (a --merge_shards N that does not match the --shard k/N), else "".
std::string other_shard_counts(const std::string& prefix, int64_t n) {
  const fs::path mpath = manifest_path(prefix);
  const std::string stem = fs::path(prefix).filename().string() + ".shard-";
  std::vector<int64_t> counts;
  std::error_code ec;
  for (fs::directory_iterator it(mpath.parent_path().empty() ? "." : mpath.parent_path(), ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t of = name.rfind("-of-");
    if (name.compare(0, stem.size(), stem) != 0 || of == std::string::npos || name.size() < 5 ||
        name.compare(name.size() - 5, 5, ".json") != 0)
      continue;
    int64_t count = 0;
    const char* b = name.data() + of + 4;
    const char* e = name.data() + name.size() - 5;
    const auto [p, err] = std::from_chars(b, e, count);
    if (err == std::errc() && p == e && count != n && std::find(counts.begin(), counts.end(), count) == counts.end())
      counts.push_back(count);
  }
  if (counts.empty()) return "";
  std::sort(counts.begin(), counts.end());
  std::string list;
  for (int64_t c : counts) list += (list.empty() ? "" : ", ") + std::to_string(c);
  return fmt::format("; found shard manifests of N = {} there", list);
}
}  // namespace

Manifest merge_shards(const std::string& prefix, int64_t n) {
  if (n < 1) throw FieldError("merge_shards", fmt::format(": expected the number of shards N >= 1, found {}", n));
  if (prefix.empty() || fs::path(prefix).filename().empty())
    throw FieldError("out_prefix",
                     fmt::format(": expected the path prefix the shards were written with, such as data/x/x, "
                                 "found '{}'",
                                 prefix));
  const fs::path dir = manifest_path(prefix).parent_path();
  const OutputLock lock(manifest_path(prefix), "out_prefix");
  Manifest merged;
  std::string first_path;  // shard 0's manifest, the reference the others are compared with
  json first_world;
  for (int64_t k = 0; k < n; ++k) {
    const std::string sp = shard_prefix(prefix, k, n);
    const std::string path = manifest_path(sp).string();
    std::error_code ec;
    if (!fs::exists(manifest_path(sp), ec))
      throw FieldError("merge_shards",
                       fmt::format(" {}: shard {} of {}: '{}' is missing (no such file); expected the "
                                   "manifest that npe-datagen --shard {}/{} --out_prefix {} writes last{}",
                                   n, k, n, path, k, n, prefix, other_shard_counts(prefix, n)));
    const Manifest s = read_shard_manifest(sp);
    auto differs = [&](const std::string& what, const auto& expected, const auto& found) {
      return Error(fmt::format("{}: {} expected {} (as in '{}'), found {}; the shards of one dataset are written "
                               "with the same flags",
                               path, what, expected, first_path, found));
    };
    if (s.shard.index != k || s.shard.count != n)
      throw Error(fmt::format("{}: expected shard {} of {} (merging {} shards), found shard {} of {}", path, k, n, n,
                              s.shard.index, s.shard.count));
    if (k == 0) {
      merged = s;
      merged.shard = {};
      merged.splits.clear();
      first_path = path;
      first_world = s.to_json()["world"];
    } else {
      if (s.num_scenes != merged.num_scenes) throw differs("num_scenes", merged.num_scenes, s.num_scenes);
      if (s.seed != merged.seed) throw differs("seed", merged.seed, s.seed);
      if (s.engine != merged.engine) throw differs("engine", merged.engine, s.engine);
      if (s.npe_version != merged.npe_version) throw differs("npe_version", merged.npe_version, s.npe_version);
      const json world = s.to_json()["world"];
      for (const auto& [key, value] : first_world.items())
        if (!world.contains(key) || world[key] != value)
          throw differs("world." + key, value.dump(), world.contains(key) ? world[key].dump() : "nothing");
      for (const auto& [key, value] : world.items())
        if (!first_world.contains(key)) throw differs("world." + key, "nothing", value.dump());
    }
    // its scenes, and the part of each split within them, where a single run puts them
    const SceneRange r = shard_range(merged.num_scenes, k, n);
    if (s.shard.first_scene != r.first || s.shard.scenes != r.count)
      throw Error(
          fmt::format("{}: shard.first_scene and shard.scenes expected {} and {} (shard {} of {} of {} scenes), "
                      "found {} and {}",
                      path, r.first, r.count, k, n, merged.num_scenes, s.shard.first_scene, s.shard.scenes));
    const SplitSizes sizes = split_sizes(merged.num_scenes);
    int64_t split_first = 0;
    size_t next = 0;  // the shard's split expected next
    for (auto [name, size] :
         {std::pair<const char*, int64_t>{"train", sizes.train}, {"val", sizes.val}, {"test", sizes.test}}) {
      const int64_t lo = std::max(split_first, r.first), hi = std::min(split_first + size, r.first + r.count);
      const int64_t split_start = split_first;
      split_first += size;
      if (lo >= hi) continue;
      if (next >= s.splits.size() || s.splits[next].name != name || s.splits[next].first_scene != lo ||
          s.splits[next].scenes != hi - lo)
        throw Error(fmt::format(
            "{}: expected split '{}' with {} scenes from scene {} next in 'splits', found {}", path, name, hi - lo, lo,
            next < s.splits.size() ? fmt::format("split '{}' with {} scenes from scene {}", s.splits[next].name,
                                                 s.splits[next].scenes, s.splits[next].first_scene)
                                   : std::string("no more splits")));
      const SplitInfo& part = s.splits[next++];
      // the array is there and complete (the shard wrote it before its manifest); its values are
      // checked when it is loaded
      const fs::path file = dir / part.file;
      const uintmax_t need = static_cast<uintmax_t>(dataset_bytes(merged.world, part.scenes));
      const uintmax_t have = fs::file_size(file, ec);
      if (ec || have < need)
        throw Error(fmt::format("{}: expected split '{}' of {} at least {} bytes ([{}, {}, {}, 5] float32), found {}",
                                file.string(), name, path, need, part.scenes, merged.world.timesteps,
                                merged.world.num_balls, ec ? ec.message() : fmt::format("{} bytes", have)));
      if (merged.splits.empty() || merged.splits.back().name != name)
        merged.splits.push_back({name, "", split_start, size, size * (merged.world.timesteps - 2)});
      merged.splits.back().parts.push_back({part.file, part.first_scene, part.scenes});
    }
    if (next != s.splits.size())
      throw Error(fmt::format("{}: expected {} splits (those holding scenes [{}, {})), found {}", path, next, r.first,
                              r.first + r.count, s.splits.size()));
  }
  // what the readers will read back
  const fs::path mpath = manifest_path(prefix);
  const std::string text = merged.to_json().dump(2) + "\n";
  parse_manifest(text, mpath.string());
  write_file_atomic(mpath, text);
  return merged;
}

DatagenSummary generate_dataset(const DatagenConfig& config) {
  DatagenConfig c = config;
  if (c.world.box2d.substeps == 0) c.world.box2d.substeps = kBox2dDefaultSubsteps;  // recorded in the manifest
  if (!c.world.obstacles.empty())
    throw FieldError("obstacles", ": obstacles are simulated by npe's engine only, not Box2D");
  validate(c.world);
  validate_box2d(c.world);
  const WorldDef& w = c.world;
  const size_t per_scene = static_cast<size_t>(w.timesteps) * w.num_balls * kStateDim;
  const int threads = resolve_threads(c.threads);
  std::atomic<int64_t> redrawn{0};
  // Box2D scenes are independent: a chunk is shared out scene by scene among the threads.
  auto source = [&](int64_t first, int64_t count, float* out, float* walls) {
    std::atomic<int64_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&] {
      try {
        for (int64_t i; (i = next.fetch_add(1)) < count;)
          redrawn += simulate_scene_box2d(w, c.seed, first + i, out + per_scene * i,
                                          walls ? walls + size_t{kWallSlots} * kWallDim * i : nullptr) -
                     1;
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
