// npe-datagen --engine gpu: scenes sampled on the host, simulated by the engine chunk by chunk,
// recorded straight into the dataset layout, streamed to the files by write_dataset.
#include "npe/datagen/engine_world.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "npe/datagen/dataset.h"
#include "npe/core/error.h"
#include "npe/core/parallel.h"

namespace npe::datagen {

using gpu::CudaWorld;
using gpu::DeviceBuffer;
using gpu::PinnedBuffer;
using gpu::WorldSpec;
using gpu::WorldState;
namespace {


// Initial conditions and masses of scenes [first, first + count) for a world of `capacity`
// scenes (unused scenes repeat the first one, so every simulated scene is a valid one).
void sample_chunk(const DatagenConfig& c, int64_t first, int64_t count, int64_t capacity, WorldState<float>& st,
                  std::vector<double>& mass, int threads) {
  const WorldDef& w = c.world;
  const int64_t N = w.num_balls;
  st = WorldState<float>(N * capacity);
  mass.assign(static_cast<size_t>(N * capacity), w.mass);
  auto is_free = [&](double x, double y) { return clear_of_obstacles(w, x, y); };
  auto work = [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const auto balls = sample_scene(w, c.seed, first + std::min(s, count - 1), is_free);
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
  parallel_for(capacity, threads, work);  // rethrows a sampling error on this thread
}

// CUDA: two slots (world, device frames, pinned frames); while the caller writes chunk k, the
// GPU simulates chunk k + 1 (as write_dataset asks for them: in order, within the run's scenes,
// never across a split's end).
class CudaSource {
 public:
  CudaSource(const DatagenConfig& c, int64_t chunk) : c_(c), chunk_(chunk) {
    const auto sizes = split_sizes(c.num_scenes);
    const SceneRange r = scene_range(c);  // all scenes, or the shard's
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
    const Normalisation unit = normalisation(w);
    const auto rec = gpu::dataset_layout(static_cast<float*>(s.frames->get()), s.world->spec(), w.timesteps,
                                         unit.pos_scale, unit.vel_scale);
    s.world->record(rec, 0);
    s.world->advance(w.timesteps - 1, rec, 1);
    s.frames->copy_to_host_async(s.host->get(), per_scene_ * count * sizeof(float), s.world->stream());
    s.first = first;
    s.count = count;
  }

  const DatagenConfig& c_;
  int64_t chunk_;
  size_t per_scene_;
  int64_t end_;                // one past the last scene written
  std::vector<int64_t> ends_;  // where the splits end within the scenes written, then end_
  Slot slots_[2];
};

}  // namespace

EngineSettings resolve_engine(const WorldDef& w) {
  const EngineSettings& e = w.engine;
  const gpu::ContactChoice c = gpu::choose_contact(2 * w.max_speed, w.radius, w.frame_dt);
  EngineSettings r;
  r.contact_omega = e.contact_omega > 0 ? e.contact_omega : c.omega;
  r.substeps = e.substeps > 0 ? e.substeps : c.substeps;
  // a quarter of the peak penetration at the largest approach speed, for the omega in use
  r.contact_ramp = e.contact_ramp >= 0 ? e.contact_ramp : 0.25 * (2 * w.max_speed) / r.contact_omega;
  return r;
}

bool clear_of_obstacles(const WorldDef& w, double x, double y) {
  return gpu::clear_of_obstacles(w.obstacles, w.radius, x, y);
}

WorldSpec spec_from_world(const WorldDef& w, int64_t num_scenes) {
  if (!w.ball_counts.empty())
    throw FieldError("num_balls", fmt::format(" {}: the engine simulates scenes of one ball count; datasets mixing "
                                              "counts are made with Box2D",
                                              format_ball_counts(w)));
  WorldSpec s;
  s.num_scenes = num_scenes;
  s.num_balls = w.num_balls;
  s.width = w.width;
  s.height = w.height;
  s.radius.assign(static_cast<size_t>(s.num_bodies()), w.radius);
  s.mass.assign(static_cast<size_t>(s.num_bodies()), w.mass);
  s.restitution = w.restitution;
  s.frame_dt = w.frame_dt;
  s.obstacles = w.obstacles;
  const EngineSettings e = resolve_engine(w);
  s.contact_omega = e.contact_omega;
  s.substeps = e.substeps;
  s.contact_ramp = e.contact_ramp;
  return s;
}

gpu::Scene dataset_scenes(const WorldDef& w, int64_t num_scenes, uint64_t seed, int64_t first_scene) {
  gpu::Scene sc;
  sc.spec = spec_from_world(w, num_scenes);
  sc.state = WorldState<double>(sc.spec.num_bodies());
  auto is_free = [&](double x, double y) { return clear_of_obstacles(w, x, y); };
  for (int64_t s = 0; s < num_scenes; ++s) {
    const auto balls = sample_scene(w, seed, first_scene + s, is_free);
    for (int64_t i = 0; i < w.num_balls; ++i) {
      const int64_t b = i * num_scenes + s;
      sc.state.x[b] = balls[i].x, sc.state.y[b] = balls[i].y;
      sc.state.vx[b] = balls[i].vx, sc.state.vy[b] = balls[i].vy;
      sc.spec.mass[b] = balls[i].mass;
    }
  }
  return sc;
}

DatagenSummary generate_dataset_gpu(const DatagenConfig& config, bool use_cuda, int64_t chunk_scenes) {
  if (!config.world.walls.empty())
    throw FieldError("walls", ": walls worlds are simulated with Box2D only (npe's engine takes one obstacle layout "
                              "per dataset, a walls world one per scene); use the Box2D engine");
  if (config.world.reject_speed > 0)
    throw FieldError("preset", fmt::format(" {}: its rejection of scenes (speeds over {} px/s, balls leaving the box) "
                                           "runs with Box2D only",
                                           config.world.preset, config.world.reject_speed));
  DatagenConfig c = config;
  c.world.engine = resolve_engine(config.world);  // once; the manifest records what ran
  validate(c.world);
  const WorldSpec espec = spec_from_world(c.world, 1);  // one scene: validation and the energy check
  gpu::validate(espec);
  const size_t per_scene = static_cast<size_t>(c.world.timesteps) * c.world.num_balls * kStateDim;
  if (chunk_scenes <= 0)  // about 256 MiB of frames per chunk
    chunk_scenes = std::max<int64_t>(1, (int64_t{256} << 20) / static_cast<int64_t>(per_scene * sizeof(float)));
  if (c.num_scenes >= 3)  // else write_dataset refuses it
    chunk_scenes = std::min(chunk_scenes, scene_range(c).count);
  const Normalisation unit = normalisation(c.world);
  // energy drift of the summary: kinetic energy of contact-free frames
  const FrameEnergy energy = [&](const float* f) {
    thread_local std::vector<BallInit> balls;  // called for every frame: no allocation
    balls.resize(c.world.num_balls);
    for (int i = 0; i < c.world.num_balls; ++i) {
      const float* b = f + i * kStateDim;
      balls[i] = {b[0] * unit.pos_scale, b[1] * unit.pos_scale, b[2] * unit.vel_scale, b[3] * unit.vel_scale, b[4]};
    }
    return gpu::contact_free_energy(espec, balls, c.world.radius);
  };
  if (use_cuda) {
    std::unique_ptr<CudaSource> src;
    if (c.num_scenes >= 3) src = std::make_unique<CudaSource>(c, chunk_scenes);
    return write_dataset(
        c, "npe-gpu", chunk_scenes,
        [&](int64_t first, int64_t count, float* out, float*) { src->fetch(first, count, out); }, energy);
  }
  // CPU reference, float32: the same operations as the CUDA kernels, hence the same bytes.
  const int threads = resolve_threads(c.threads);
  return write_dataset(
      c, "npe-gpu", chunk_scenes,
      [&](int64_t first, int64_t count, float* out, float*) {
    WorldSpec spec = spec_from_world(c.world, count);
    WorldState<float> st;
    sample_chunk(c, first, count, count, st, spec.mass, threads);
    const auto rec = gpu::dataset_layout(out, spec, c.world.timesteps, unit.pos_scale, unit.vel_scale);
    gpu::record_cpu(spec, st, rec, 0);
    gpu::advance_cpu(spec, st, c.world.timesteps - 1, rec, 1, threads);
      },
      energy);
}

}  // namespace npe::datagen
