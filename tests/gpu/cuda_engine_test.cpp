// The CUDA backend (gpu/src/cuda_engine.cu) against the CPU reference. Skipped, with the
// reason, where no CUDA device is present.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "npe/datagen/engine_world.h"
#include "npe/core/error.h"
#include "npe/gpu/engine.h"
#include "npe/gpu/scenes.h"
#include "test_util.h"

namespace npe::gpu {
namespace {

#define NPE_REQUIRE_CUDA()                          \
  do {                                              \
    std::string why;                                \
    if (!cuda_available(&why)) GTEST_SKIP() << why; \
  } while (0)

template <class T>
WorldState<T> run_cuda(const Scene& sc, int frames) {
  CudaWorld<T> w(sc.spec);
  w.set_state(cast_state<T>(sc.state));
  w.advance(frames, Recorder<T>{}, 0);
  return w.state();
}

template <class T>
WorldState<T> run_cpu(const Scene& sc, int frames) {
  WorldState<T> st = cast_state<T>(sc.state);
  advance_cpu(sc.spec, st, frames, Recorder<T>{}, 0, 0);
  return st;
}

template <class T>
void expect_same_bits(const WorldState<T>& a, const WorldState<T>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(0, std::memcmp(a.x.data(), b.x.data(), a.x.size() * sizeof(T))) << what << ": x differs";
  EXPECT_EQ(0, std::memcmp(a.y.data(), b.y.data(), a.y.size() * sizeof(T))) << what << ": y differs";
  EXPECT_EQ(0, std::memcmp(a.vx.data(), b.vx.data(), a.vx.size() * sizeof(T))) << what << ": vx differs";
  EXPECT_EQ(0, std::memcmp(a.vy.data(), b.vy.data(), a.vy.size() * sizeof(T))) << what << ": vy differs";
}

// A large world with frames of `substeps` substeps (the chosen substep kept).
Scene world(int64_t balls, double radius, double phi, double speed, int substeps = 100) {
  Scene sc = large_world(balls, radius, phi, speed, test::fresh_seed());
  sc.spec.frame_dt = sc.spec.substep() * substeps;
  sc.spec.substeps = substeps;
  return sc;
}

Scene random_scenes(int balls, int64_t scenes, bool obstacles = false) {
  datagen::WorldDef w;
  w.num_balls = balls;
  w.radius = balls > 6 ? 40 : 60;
  w.variable_mass = true;
  w.max_speed = 200;  // more collisions per frame than the default world
  if (obstacles) w.obstacles = datagen::parse_obstacles("capsule:300,200,500,260,25;box:620,420,60,30,35");
  return datagen::dataset_scenes(w, scenes, test::fresh_seed());
}

// Same operations in the same order (no FMA on either side): CUDA float32 == CPU float32.
TEST(CudaEngine, FusedKernelEqualsCpuReferenceBitForBit) {
  NPE_REQUIRE_CUDA();
  for (int balls : {1, 3, 4, 8}) {
    const Scene sc = random_scenes(balls, 1000);
    expect_same_bits(run_cuda<float>(sc, 5), run_cpu<float>(sc, 5), fmt::format("float, {} balls", balls));
    expect_same_bits(run_cuda<double>(sc, 2), run_cpu<double>(sc, 2), fmt::format("double, {} balls", balls));
  }
  const Scene obs = random_scenes(4, 500, true);
  expect_same_bits(run_cuda<float>(obs, 5), run_cpu<float>(obs, 5), "obstacles");
}

TEST(CudaEngine, PerBodyKernelsEqualCpuReferenceBitForBit) {
  NPE_REQUIRE_CUDA();
  Scene pairs = random_scenes(12, 64);  // 12 balls: per-body all-pairs kernel
  expect_same_bits(run_cuda<float>(pairs, 3), run_cpu<float>(pairs, 3), "all pairs, 12 balls");
  Scene grid = world(5000, 5, 0.4, 200);
  expect_same_bits(run_cuda<float>(grid, 1), run_cpu<float>(grid, 1), "grid, 5000 balls");
  expect_same_bits(run_cuda<double>(grid, 1), run_cpu<double>(grid, 1), "grid, 5000 balls, double");
}

// float32 on the GPU against the float64 reference, field by field, with the tolerance that
// gpu/README.md documents. Both runs integrate the same chaotic system (a collision of impact
// parameter b turns a position offset dx into a direction error of about 2 dx / sqrt(4 r^2 - b^2),
// unbounded for grazing collisions), so the bound grows with the horizon and is stated for all
// scenes and for 99% of them:
// - positions, every scene: within 2.5e-4 px per substep (float32 rounding of x += h v at
//   |x| ~ 800 px is about 5e-5 px per substep, times the amplification of a collision or two);
// - velocities, every scene: within omega times the position bound (inside a contact an offset
//   dx shifts the contact in time, and the velocity, which turns at up to v omega, differs by
//   up to omega dx); 99% of scenes: within 1e-3 px/s per substep.
TEST(CudaEngine, Float32StaysCloseToTheFloat64Reference) {
  NPE_REQUIRE_CUDA();
  datagen::WorldDef w;  // the dataset world
  w.variable_mass = true;
  const Scene sc = datagen::dataset_scenes(w, 2000, test::fresh_seed());
  for (int frames : {1, 4}) {  // 64 and 256 substeps
    const double substeps = static_cast<double>(frames) * sc.spec.substeps;
    const double tol_x = 2.5e-4 * substeps, tol_v99 = 1e-3 * substeps;
    const double tol_v = sc.spec.contact_omega * tol_x;
    const WorldState<float> g = run_cuda<float>(sc, frames);
    const WorldState<double> ref = run_cpu<double>(sc, frames);
    std::vector<double> ex(sc.spec.num_scenes, 0.0), ev(sc.spec.num_scenes, 0.0);
    for (int64_t s = 0; s < sc.spec.num_scenes; ++s)
      for (int64_t i = 0; i < sc.spec.num_balls; ++i) {
        const int64_t b = i * sc.spec.num_scenes + s;
        ex[s] = std::max({ex[s], std::abs(g.x[b] - ref.x[b]), std::abs(g.y[b] - ref.y[b])});
        ev[s] = std::max({ev[s], std::abs(g.vx[b] - ref.vx[b]), std::abs(g.vy[b] - ref.vy[b])});
      }
    std::sort(ex.begin(), ex.end());
    std::sort(ev.begin(), ev.end());
    const double ev99 = ev[static_cast<size_t>(0.99 * (ev.size() - 1))];
    std::printf("[float32 vs float64, %d x %d substeps, %lld scenes] max |dx| %.3g px (bound %.3g); "
                "max |dv| %.3g px/s (bound %.3g), 99%% of scenes %.3g px/s (bound %.3g)\n",
                frames, sc.spec.substeps, static_cast<long long>(sc.spec.num_scenes), ex.back(), tol_x, ev.back(),
                tol_v, ev99, tol_v99);
    EXPECT_LT(ex.back(), tol_x) << frames << " frames";
    EXPECT_LT(ev.back(), tol_v) << frames << " frames";
    EXPECT_LT(ev99, tol_v99) << frames << " frames";
    EXPECT_GT(ev.back(), 0.0) << "float32 and float64 runs cannot agree exactly";
  }
}

TEST(CudaEngine, RunsRepeatBitForBit) {
  NPE_REQUIRE_CUDA();
  const Scene sc = random_scenes(4, 4096);
  expect_same_bits(run_cuda<float>(sc, 4), run_cuda<float>(sc, 4), "fused");
  const Scene grid = world(20000, 3, 0.45, 300);
  expect_same_bits(run_cuda<float>(grid, 1), run_cuda<float>(grid, 1), "grid");
}

TEST(CudaEngine, RecordsEveryElementAsTheCpuDoes) {
  NPE_REQUIRE_CUDA();
  const Scene sc = random_scenes(4, 777);
  const int frames = 6;
  for (bool dataset : {false, true}) {
    const size_t n = static_cast<size_t>(frames) * (dataset ? 5 : 4) * sc.spec.num_bodies();
    DeviceBuffer dev(n * sizeof(float));
    dev.fill_nan();
    CudaWorld<float> w(sc.spec);
    w.set_state(cast_state<float>(sc.state));
    auto rec = dataset ? dataset_layout(static_cast<float*>(dev.get()), sc.spec, frames, 800, 60)
                       : engine_layout(static_cast<float*>(dev.get()), sc.spec);
    w.record(rec, 0);
    w.advance(frames - 1, rec, 1);
    PinnedBuffer host(n * sizeof(float));
    dev.copy_to_host_async(host.get(), n * sizeof(float), w.stream());
    w.synchronize();
    std::vector<float> ref(n, std::nanf(""));
    WorldState<float> st = cast_state<float>(sc.state);
    auto crec = dataset ? dataset_layout(ref.data(), sc.spec, frames, 800, 60) : engine_layout(ref.data(), sc.spec);
    record_cpu(sc.spec, st, crec, 0);
    advance_cpu(sc.spec, st, frames - 1, crec, 1);
    const float* h = static_cast<const float*>(host.get());
    for (size_t k = 0; k < n; ++k) ASSERT_FALSE(std::isnan(h[k])) << "element " << k << " not written";
    EXPECT_EQ(0, std::memcmp(h, ref.data(), n * sizeof(float))) << (dataset ? "dataset" : "engine") << " layout";
  }
}

TEST(CudaEngine, GridAndAllPairsGiveTheSameContactSet) {
  NPE_REQUIRE_CUDA();
  const Scene sc = overlapping_world(4000, 4, 0.45, 300, test::fresh_seed());
  CudaWorld<double> w(sc.spec);
  w.set_state(sc.state);
  const auto grid = w.contact_pairs(BroadPhase::kGrid);
  const auto all = w.contact_pairs(BroadPhase::kAllPairs);
  EXPECT_GT(grid.size(), 100u);
  EXPECT_EQ(grid, all);
  EXPECT_EQ(grid, contact_pairs_cpu(sc.spec, sc.state, BroadPhase::kAllPairs));
}

TEST(CudaEngine, ErrorsAreClear) {
  NPE_REQUIRE_CUDA();
  const Scene sc = random_scenes(4, 10);
  CudaWorld<float> w(sc.spec);
  EXPECT_THROW(w.set_state(WorldState<float>(3)), Error);
  EXPECT_THROW(w.set_masses(std::vector<double>(40, -1.0)), Error);
}

}  // namespace
}  // namespace npe::gpu
