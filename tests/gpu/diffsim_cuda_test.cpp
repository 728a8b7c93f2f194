// The differentiable simulator on CUDA (gpu/src/diffsim_cuda.cu) against its CPU reference: the
// same functions, no fused multiply-add on either side, so trajectories and gradients agree bit
// for bit. Skipped, with the reason, where no CUDA device is present.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "npe/datagen/engine_world.h"
#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"
#include "npe/gpu/scenes.h"
#include "test_util.h"

namespace npe::gpu {
namespace {

template <class T>
struct Host {
  std::vector<T> init, mass, radius, damping, controls;
};

// Copies a host vector to a new device buffer.
template <class T>
std::unique_ptr<DeviceBuffer> to_device(const std::vector<T>& h, void* stream) {
  auto d = std::make_unique<DeviceBuffer>(std::max<size_t>(1, h.size()) * sizeof(T));
  d->copy_from_host(h.data(), h.size() * sizeof(T), stream);
  return d;
}
template <class T>
std::vector<T> to_host(const DeviceBuffer& d, size_t n, void* stream) {
  std::vector<T> h(n);
  d.copy_to_host_async(h.data(), n * sizeof(T), stream);
  synchronize_stream(stream);
  return h;
}

template <class T>
void check_backend_equality(const Scene& sc, int frames, int k, uint64_t seed) {
  const WorldSpec& spec = sc.spec;
  const int64_t n = spec.num_bodies(), S = spec.num_scenes;
  DiffRollout r;
  r.frames = frames;
  r.checkpoint_every = k;
  datagen::Rng rng(seed, 1);
  Host<T> h;
  for (const auto* v : {&sc.state.x, &sc.state.y, &sc.state.vx, &sc.state.vy})
    h.init.insert(h.init.end(), v->begin(), v->end());
  h.mass.assign(spec.mass.begin(), spec.mass.end());
  h.radius.assign(spec.radius.begin(), spec.radius.end());
  for (int64_t s = 0; s < S; ++s)
    h.damping.push_back(static_cast<T>(dashpot(rng.uniform(0.5, 1.0), spec.contact_omega)));
  for (int64_t i = 0; i < static_cast<int64_t>(frames) * 2 * n; ++i)
    h.controls.push_back(static_cast<T>(rng.uniform(-200, 200)));
  std::vector<T> w(static_cast<size_t>(frames + 1) * 4 * n);
  for (T& v : w) v = static_cast<T>(rng.uniform(-1, 1));
  const size_t traj_n = w.size(), ckpt_n = static_cast<size_t>(r.num_checkpoints(spec)) * 4 * n;

  // CPU
  std::vector<T> traj(traj_n), ckpt(ckpt_n);
  const size_t words_n = static_cast<size_t>(r.num_contact_words(spec));
  std::vector<uint32_t> words(words_n);
  const DiffInputs<T> in{h.init.data(), h.mass.data(), h.radius.data(), h.damping.data(), h.controls.data()};
  diff_forward_cpu(spec, r, in, traj.data(), ckpt.data(), words.data(), 0);
  Host<T> g{std::vector<T>(h.init.size()), std::vector<T>(n), std::vector<T>(n), std::vector<T>(S),
            std::vector<T>(h.controls.size())};
  diff_backward_cpu(spec, r, in, ckpt.data(), words.data(), w.data(),
                    DiffGrads<T>{g.init.data(), g.mass.data(), g.radius.data(), g.damping.data(), g.controls.data()},
                    0);

  // CUDA
  void* st = nullptr;
  auto d_init = to_device(h.init, st), d_mass = to_device(h.mass, st), d_radius = to_device(h.radius, st);
  auto d_damping = to_device(h.damping, st), d_controls = to_device(h.controls, st), d_w = to_device(w, st);
  DeviceBuffer d_traj(traj_n * sizeof(T)), d_ckpt(ckpt_n * sizeof(T)), d_words(words_n * sizeof(uint32_t));
  d_traj.fill_nan();
  d_words.fill_nan();
  const DiffInputs<T> din{static_cast<T*>(d_init->get()), static_cast<T*>(d_mass->get()),
                          static_cast<T*>(d_radius->get()), static_cast<T*>(d_damping->get()),
                          static_cast<T*>(d_controls->get())};
  diff_forward_cuda(spec, r, din, static_cast<T*>(d_traj.get()), static_cast<T*>(d_ckpt.get()),
                    static_cast<uint32_t*>(d_words.get()), st);
  DeviceBuffer g_init(h.init.size() * sizeof(T)), g_mass(n * sizeof(T)), g_radius(n * sizeof(T)),
      g_damping(S * sizeof(T)), g_controls(h.controls.size() * sizeof(T)),
      scratch(static_cast<size_t>(r.resolved_k(spec)) * 4 * n * sizeof(T));
  auto same = [](const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(T)))
        << what << (sizeof(T) == 4 ? " float" : " double");
  };
  same(to_host<T>(d_traj, traj_n, st), traj, "trajectory");
  std::vector<uint32_t> d_words_h(words_n);
  d_words.copy_to_host_async(d_words_h.data(), words_n * sizeof(uint32_t), st);
  synchronize_stream(st);
  EXPECT_EQ(d_words_h, words) << "contact words";
  // with the contact words (each warp exchanges states at the substeps where one of its balls had
  // a contact), and without them (every substep): the CPU's bits either way
  for (const bool dense : {false, true}) {
    for (DeviceBuffer* b : {&g_init, &g_mass, &g_radius, &g_damping, &g_controls, &scratch}) b->fill_nan();
    diff_backward_cuda(
        spec, r, din, static_cast<T*>(d_ckpt.get()), dense ? nullptr : static_cast<const uint32_t*>(d_words.get()),
        static_cast<T*>(d_w->get()),
        DiffGrads<T>{static_cast<T*>(g_init.get()), static_cast<T*>(g_mass.get()), static_cast<T*>(g_radius.get()),
                     static_cast<T*>(g_damping.get()), static_cast<T*>(g_controls.get())},
        static_cast<T*>(scratch.get()), st);
    const std::string tag = dense ? " (dense)" : " (contact words)";
    same(to_host<T>(g_init, h.init.size(), st), g.init, "init gradient" + tag);
    same(to_host<T>(g_mass, n, st), g.mass, "mass gradient" + tag);
    same(to_host<T>(g_radius, n, st), g.radius, "radius gradient" + tag);
    same(to_host<T>(g_damping, S, st), g.damping, "damping gradient" + tag);
    same(to_host<T>(g_controls, h.controls.size(), st), g.controls, "controls gradient" + tag);
  }
}

TEST(DiffSimCuda, ForwardAndGradientsEqualTheCpuReferenceBitForBit) {
  std::string why;
  if (!cuda_available(&why)) GTEST_SKIP() << why;
  const uint64_t seed = test::fresh_seed();
  datagen::WorldDef w;
  w.variable_mass = true;
  w.max_speed = 200;
  w.obstacles = datagen::parse_obstacles("capsule:300,250,500,320,25;box:620,420,60,30,35");
  for (int balls : {1, 4, 5, 8, 11, 16}) {
    w.num_balls = balls;
    w.radius = balls > 8 ? 30 : balls > 4 ? 40 : 60;
    // 301 scenes: a partial last warp for every ball count (5 balls: 6 scenes and 2 idle lanes a
    // warp; 11 balls: 2 scenes and 10 idle lanes)
    const Scene sc = datagen::dataset_scenes(w, 301, seed);
    check_backend_equality<double>(sc, 3, 0, seed);
    check_backend_equality<float>(sc, 3, 37, seed);
    check_backend_equality<float>(sc, 2, 1, seed);  // one-substep segments: the adjoint reads the checkpoints
  }
}

}  // namespace
}  // namespace npe::gpu
