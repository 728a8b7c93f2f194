// npe-datagen --engine gpu: scenes sampled on the host, simulated by the engine chunk by chunk,
// recorded straight into the dataset layout, streamed to the files by datagen::write_dataset.
#include "npe/gpu/generate.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "engine_internal.h"
#include "npe/gpu/scenes.h"
#include "npe/datagen/dataset.h"
#include "npe/datagen/io.h"

namespace npe::gpu {
namespace {

using datagen::kStateDim;
using datagen::WorldDef;

// Initial conditions and masses of scenes [first, first + count) for a world of `capacity`
// scenes (unused scenes repeat the first one, so every simulated scene is a valid one).
void sample_chunk(const datagen::DatagenConfig& c, int64_t first, int64_t count, int64_t capacity,
                  WorldState<float>& st, std::vector<double>& mass, int threads) {
  const WorldDef& w = c.world;
  const int64_t N = w.num_balls;
  st = WorldState<float>(N * capacity);
  mass.assign(static_cast<size_t>(N * capacity), w.mass);
  auto is_free = [&](double x, double y) { return clear_of_obstacles(w, x, y); };
  auto work = [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const auto balls = datagen::sample_scene(w, c.seed, first + std::min(s, count - 1), is_free);
      for (int64_t i = 0; i < N; ++i) {
        const int64_t b = i * capacity + s;
        st.x[b] = static_cast<float>(balls[i].x);
        st.y[b] = static_cast<float>(balls[i].y);
        st.vx[b] = static_cast<float>(balls[i].vx);
        st.vy[b] = static_cast<float>(balls[i].vy);
        mass[b] = balls[i].mass;
      }
    }
  };
  detail::parallel_for(capacity, threads, work);  // rethrows a sampling error on this thread
}

// CUDA: two slots (world, device frames, pinned frames); while the caller writes chunk k, the
// GPU simulates chunk k + 1 (as write_dataset asks for them: in order, within the run's scenes,
// never across a split's end).
class CudaSource {
 public:
  CudaSource(const datagen::DatagenConfig& c, int64_t chunk) : c_(c), chunk_(chunk) {
    const auto sizes = datagen::split_sizes(c.num_scenes);
    const datagen::SceneRange r = datagen::scene_range(c);  // all scenes, or the shard's
    end_ = r.first + r.count;
    auto clip = [&](int64_t i) { return std::clamp(i, r.first, end_); };
    ends_ = {clip(sizes.train), clip(sizes.train + sizes.val), end_};
    per_scene_ = static_cast<size_t>(c.world.timesteps) * c.world.num_balls * kStateDim;
    for (Slot& s : slots_) {
      s.world = std::make_unique<CudaWorld<float>>(spec_from_world(c.world, chunk));
      s.frames = std::make_unique<DeviceBuffer>(per_scene_ * chunk * sizeof(float));
      s.host = std::make_unique<PinnedBuffer>(per_scene_ * chunk * sizeof(float));
    }
  }

  void fetch(int64_t first, int64_t count, float* out) {
    int k = 0;
    while (k < 2 && !(slots_[k].first == first && slots_[k].count == count)) ++k;
    if (k == 2) {
      k = 0;
      launch(slots_[0], first, count);
    }
    Slot& s = slots_[k];
    s.world->synchronize();
    s.first = -1;
    // queue the next chunk before copying this one out, so the GPU works meanwhile
    const int64_t next = first + count;
    if (next < end_) {
      const int64_t end = *std::upper_bound(ends_.begin(), ends_.end(), next);
      launch(slots_[1 - k], next, std::min(chunk_, end - next));
    }
    std::memcpy(out, s.host->get(), per_scene_ * count * sizeof(float));
  }

 private:
  struct Slot {
    std::unique_ptr<CudaWorld<float>> world;
    std::unique_ptr<DeviceBuffer> frames;
    std::unique_ptr<PinnedBuffer> host;
    int64_t first = -1, count = 0;
  };

  void launch(Slot& s, int64_t first, int64_t count) {
    WorldState<float> st;
    std::vector<double> mass;
    sample_chunk(c_, first, count, chunk_, st, mass, resolve_threads(c_.threads));
    s.world->set_state(st);
    s.world->set_masses(mass);
    const WorldDef& w = c_.world;
    const auto rec = dataset_layout(static_cast<float*>(s.frames->get()), s.world->spec(), w.timesteps,
                                    w.width, w.max_speed);
    s.world->record(rec, 0);
    s.world->advance(w.timesteps - 1, rec, 1);
    s.frames->copy_to_host_async(s.host->get(), per_scene_ * count * sizeof(float), s.world->stream());
    s.first = first;
    s.count = count;
  }

  const datagen::DatagenConfig& c_;
  int64_t chunk_;
  size_t per_scene_;
  int64_t end_;                // one past the last scene written
  std::vector<int64_t> ends_;  // where the splits end within the scenes written, then end_
  Slot slots_[2];
};

}  // namespace

WorldDef resolve_engine_world(const WorldDef& world) {
  const WorldSpec spec = spec_from_world(world, 1);
  WorldDef w = world;
  w.substeps = spec.substeps;
  w.contact_omega = spec.contact_omega;
  w.contact_ramp = spec.contact_ramp;
  return w;
}

bool clear_of_obstacles(const WorldDef& w, double x, double y) {
  WorldSpec s;
  s.obstacles = w.obstacles;
  for (const auto& o : detail::kernel_obstacles<double>(s))
    if (!(detail::sdf_obstacle(o, x, y).phi > w.radius)) return false;
  return true;
}

datagen::DatagenSummary generate_dataset_gpu(const datagen::DatagenConfig& config, bool use_cuda,
                                             int64_t chunk_scenes) {
  if (config.world.reject_speed > 0)
    throw Error(fmt::format("--preset {}: its rejection of scenes (speeds over {} px/s, balls leaving the box) "
                            "runs with --engine box2d only", config.world.preset, config.world.reject_speed));
  datagen::DatagenConfig c = config;
  c.world = resolve_engine_world(config.world);
  datagen::validate(c.world);
  const WorldSpec espec = spec_from_world(c.world, 1);  // one scene: validation and the energy check
  validate(espec);
  const size_t per_scene = static_cast<size_t>(c.world.timesteps) * c.world.num_balls * kStateDim;
  if (chunk_scenes <= 0)  // about 256 MiB of frames per chunk
    chunk_scenes = std::max<int64_t>(1, (int64_t{256} << 20) / static_cast<int64_t>(per_scene * sizeof(float)));
  if (c.num_scenes >= 3)  // else write_dataset refuses it
    chunk_scenes = std::min(chunk_scenes, datagen::scene_range(c).count);
  // energy drift of the summary: kinetic energy of contact-free frames
  const datagen::FrameEnergy energy = [&](const float* f) {
    thread_local std::vector<datagen::BallInit> balls;  // called for every frame: no allocation
    balls.resize(c.world.num_balls);
    for (int i = 0; i < c.world.num_balls; ++i) {
      const float* b = f + i * kStateDim;
      balls[i] = {b[0] * c.world.width, b[1] * c.world.width, b[2] * c.world.max_speed, b[3] * c.world.max_speed, b[4]};
    }
    return contact_free_energy(espec, balls, c.world.radius);
  };
  if (use_cuda) {
    std::unique_ptr<CudaSource> src;
    if (c.num_scenes >= 3) src = std::make_unique<CudaSource>(c, chunk_scenes);
    return datagen::write_dataset(c, "npe-gpu", chunk_scenes, [&](int64_t first, int64_t count, float* out) {
      src->fetch(first, count, out);
    }, energy);
  }
  // CPU reference, float32: the same operations as the CUDA kernels, hence the same bytes.
  const int threads = resolve_threads(c.threads);
  return datagen::write_dataset(c, "npe-gpu", chunk_scenes, [&](int64_t first, int64_t count, float* out) {
    WorldSpec spec = spec_from_world(c.world, count);
    WorldState<float> st;
    sample_chunk(c, first, count, count, st, spec.mass, threads);
    const auto rec = dataset_layout(out, spec, c.world.timesteps, c.world.width, c.world.max_speed);
    record_cpu(spec, st, rec, 0);
    advance_cpu(spec, st, c.world.timesteps - 1, rec, 1, threads);
  }, energy);
}

}  // namespace npe::gpu
