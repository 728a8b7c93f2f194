// The differentiable simulator's CPU path (gpu/src/diffsim.cpp, adjoint.h): forward equal to the
// engine, gradients against central finite differences and analytic Jacobians, checkpointing,
// scenes that never mix.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "npe/datagen/engine_world.h"
#include "npe/core/error.h"
#include "npe/gpu/diffsim.h"
#include "adjoint.h"
#include "engine_internal.h"
#include "npe/gpu/scenes.h"
#include "test_util.h"

namespace npe::gpu {
namespace {

// A rollout problem in the engine layout, in T.
template <class T>
struct Problem {
  WorldSpec spec;
  DiffRollout rollout;
  std::vector<T> init, mass, radius, damping, controls;  // controls empty = none
  DiffInputs<T> inputs() const {
    return {init.data(), mass.data(), radius.data(), damping.data(), controls.empty() ? nullptr : controls.data()};
  }
  size_t traj_size() const { return static_cast<size_t>(rollout.frames + 1) * 4 * spec.num_bodies(); }
  size_t ckpt_size() const { return static_cast<size_t>(rollout.num_checkpoints(spec)) * 4 * spec.num_bodies(); }
  size_t words_size() const { return static_cast<size_t>(rollout.num_contact_words(spec)); }
  std::vector<T> forward() const {
    std::vector<T> traj(traj_size()), ckpt(ckpt_size());
    std::vector<uint32_t> words(words_size());
    diff_forward_cpu(spec, rollout, inputs(), traj.data(), ckpt.data(), words.data(), 2);
    return traj;
  }
  struct Grads {
    std::vector<T> init, mass, radius, damping, controls;
  };
  // `dense`: the backward sweep without the forward pass's contact words
  Grads backward(const std::vector<T>& traj_bar, bool dense = false) const {
    std::vector<T> traj(traj_size()), ckpt(ckpt_size());
    std::vector<uint32_t> words(words_size());
    diff_forward_cpu(spec, rollout, inputs(), traj.data(), ckpt.data(), words.data(), 2);
    Grads g{std::vector<T>(init.size()), std::vector<T>(mass.size()), std::vector<T>(radius.size()),
            std::vector<T>(damping.size()), std::vector<T>(controls.size())};
    diff_backward_cpu(spec, rollout, inputs(), ckpt.data(), dense ? nullptr : words.data(), traj_bar.data(),
                      DiffGrads<T>{g.init.data(), g.mass.data(), g.radius.data(), g.damping.data(),
                                   controls.empty() ? nullptr : g.controls.data()},
                      2);
    return g;
  }
};

template <class T>
Problem<T> from_scene(const Scene& sc, int frames, double restitution, bool controls, uint64_t seed) {
  Problem<T> p;
  p.spec = sc.spec;
  p.rollout.frames = frames;
  const int64_t n = sc.spec.num_bodies();
  for (const auto* v : {&sc.state.x, &sc.state.y, &sc.state.vx, &sc.state.vy})
    p.init.insert(p.init.end(), v->begin(), v->end());
  p.mass.assign(sc.spec.mass.begin(), sc.spec.mass.end());
  p.radius.assign(sc.spec.radius.begin(), sc.spec.radius.end());
  datagen::Rng rng(seed, 77);
  for (int64_t s = 0; s < sc.spec.num_scenes; ++s)
    p.damping.push_back(
        static_cast<T>(dashpot(restitution < 0 ? rng.uniform(0.5, 1.0) : restitution, sc.spec.contact_omega)));
  if (controls)
    for (int64_t k = 0; k < static_cast<int64_t>(frames) * 2 * n; ++k)
      p.controls.push_back(static_cast<T>(rng.uniform(-300, 300)));
  return p;
}

// Random 4-ball scenes with frequent collisions (speeds up to 200 px/s), variable masses.
Scene busy_scenes(int64_t scenes, uint64_t seed, const std::string& obstacles = "") {
  datagen::WorldDef w;
  w.obstacles = datagen::parse_obstacles(obstacles);  // balls start clear of them
  w.variable_mass = true;
  w.max_speed = 200;
  w.radius = 70;
  return datagen::dataset_scenes(w, scenes, seed);
}

// The backward sweep recomputes each ball's force on its own (ball_contact_force, one CUDA lane
// per ball): it must give contact_forces' bits, or the recomputed states drift from the forward
// trajectory. Crowded random scenes (every pair overlapping or near it, some centres coincident,
// balls against the walls), 2 to 8 balls, with the ramp and the dashpot.
template <class T>
void check_ball_force_bits(uint64_t seed) {
  datagen::Rng rng(seed, 5);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 2 + static_cast<int>(rng.below(7));
    std::vector<T> x(n), y(n), vx(n), vy(n), r(n), m(n), fx(n), fy(n);
    for (int i = 0; i < n; ++i) {
      r[i] = T(rng.uniform(5, 30));
      m[i] = T(rng.uniform(0.5, 25));
      x[i] = T(rng.uniform(0, 60));
      y[i] = T(rng.uniform(0, 60));
      vx[i] = T(rng.uniform(-300, 300));
      vy[i] = T(rng.uniform(-300, 300));
      if (i > 0 && rng.below(8) == 0) x[i] = x[i - 1], y[i] = y[i - 1];  // coincident centres
    }
    detail::StepParams<T> p{};
    p.width = p.height = T(400);
    p.h = T(1e-4);
    p.law = {T(rng.uniform(1e5, 1e6)), T(rng.uniform(0, 300)), T(rng.uniform(0, 0.5)), T(0)};
    p.law.inv_ramp = p.law.ramp > T(0) ? T(1) / p.law.ramp : T(0);
    detail::contact_forces(n, x.data(), y.data(), vx.data(), vy.data(), r.data(), m.data(), fx.data(), fy.data(), p);
    std::vector<T> gx(n), gy(n);
    const detail::SceneView<T> v{x.data(), y.data(), vx.data(), vy.data(), gx.data(), gy.data(), r.data(), m.data(), 1};
    for (int i = 0; i < n; ++i) {
      T bx, by;
      detail::ball_contact_force(n, i, x[i], y[i], vx[i], vy[i], r[i], m[i], v, p, bx, by);
      ASSERT_EQ(0, std::memcmp(&bx, &fx[i], sizeof(T)))
          << "trial " << trial << " ball " << i << ": " << bx << " vs " << fx[i];
      ASSERT_EQ(0, std::memcmp(&by, &fy[i], sizeof(T)))
          << "trial " << trial << " ball " << i << ": " << by << " vs " << fy[i];
    }
  }
}

TEST(DiffSim, PerBallForceEqualsTheSceneForceBitForBit) {
  check_ball_force_bits<double>(test::fresh_seed());
  check_ball_force_bits<float>(test::fresh_seed());
}

TEST(DiffSim, ForwardEqualsTheEngineBitForBit) {
  const Scene sc = busy_scenes(50, test::fresh_seed());
  for (int k : {0, 5}) {
    Problem<double> p = from_scene<double>(sc, 6, 1.0, false, 1);
    p.rollout.checkpoint_every = k;
    const std::vector<double> traj = p.forward();
    WorldState<double> st = sc.state;
    std::vector<double> rec(p.traj_size());
    record_cpu(sc.spec, st, engine_layout(rec.data(), sc.spec), 0);
    advance_cpu(sc.spec, st, 6, engine_layout(rec.data(), sc.spec), 1, 1);
    EXPECT_EQ(0, std::memcmp(traj.data(), rec.data(), rec.size() * sizeof(double))) << "K " << k;
  }
}

// L = sum(w * traj), in float64 (the loss of the central differences below).
double loss(const Problem<double>& p, const std::vector<double>& w) {
  const auto traj = p.forward();
  double l = 0;
  for (size_t k = 0; k < traj.size(); ++k) l += w[k] * traj[k];
  return l;
}

// Relative error of the gradient of one input group against central differences (Richardson-
// extrapolated), entries whose two extrapolations disagree (the force's second derivative jumps
// within the steps, at the ends of the onset ramp) left out.
double fd_group(Problem<double>& p, std::vector<double>& x, const std::vector<double>& grad, double h,
                const std::vector<double>& w, int& skipped) {
  double num = 0, den = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    const double x0 = x[k];
    const auto d = test::richardson_derivative(
        [&](double e) {
      x[k] = x0 + e;
      const double l = loss(p, w);
      x[k] = x0;
      return l;
        },
        h);
    if (!d) {
      ++skipped;
      continue;
    }
    num = std::max(num, std::abs(grad[k] - *d));
    den = std::max(den, std::abs(*d));
  }
  return den > 0 ? num / den : num;
}

TEST(DiffSim, GradientsMatchCentralDifferencesInFloat64) {
  const uint64_t seed = test::fresh_seed();
  const Scene sc = busy_scenes(12, seed, "capsule:300,250,500,320,25;box:620,420,60,30,35");
  Problem<double> p = from_scene<double>(sc, 3, -1, true, seed);
  std::vector<double> w(p.traj_size());
  datagen::Rng rng(seed, 5);
  for (double& v : w) v = rng.uniform(-1, 1);
  const auto g = p.backward(w);
  int skipped = 0;
  // steps large enough that the simulation's own rounding (about 1e-12 px per trajectory
  // entry) stays far below the differences, small enough (1e-6 to 3e-3 of each input's scale:
  // positions ~500 px, masses 1-25, dashpot constants 20-90 /s, controls +-300) for the
  // extrapolated truncation error
  const double e_init = fd_group(p, p.init, g.init, 1e-3, w, skipped);
  const double e_mass = fd_group(p, p.mass, g.mass, 1e-3, w, skipped);
  const double e_radius = fd_group(p, p.radius, g.radius, 1e-3, w, skipped);
  const double e_damping = fd_group(p, p.damping, g.damping, 5e-2, w, skipped);
  const double e_controls = fd_group(p, p.controls, g.controls, 1e-1, w, skipped);
  const size_t total = p.init.size() + p.mass.size() + p.radius.size() + p.damping.size() + p.controls.size();
  std::printf("float64 gradient vs central differences, relative error: init %.2e, mass %.2e, radius %.2e, "
              "damping %.2e, controls %.2e (%d of %zu entries near a contact onset left out)\n",
              e_init, e_mass, e_radius, e_damping, e_controls, skipped, total);
  EXPECT_LT(e_init, 1e-6);
  EXPECT_LT(e_mass, 1e-6);
  EXPECT_LT(e_radius, 1e-6);
  EXPECT_LT(e_damping, 1e-6);
  EXPECT_LT(e_controls, 1e-6);
  EXPECT_LT(skipped, static_cast<int>(total / 10));
  // the scenes did collide: some radius gradient is non-zero
  double rmax = 0;
  for (double v : g.radius) rmax = std::max(rmax, std::abs(v));
  EXPECT_GT(rmax, 0.0);
}

// Two balls at the same centre: pair_force's fixed normal (+-x by index order) gives a force with
// no derivative in the positions but one in velocities, radii, masses and the dashpot, which
// pair_adjoint_ball must return (checked against central differences of pair_force), along with
// Fbar_i . F_i for the integration's mass term.
TEST(DiffSim, PairAdjointAtCoincidentCentresMatchesDifferences) {
  datagen::Rng rng(test::fresh_seed(), 7);
  for (int trial = 0; trial < 50; ++trial) {
    const double x = rng.uniform(0, 500), y = rng.uniform(0, 500);
    double vx[2] = {rng.uniform(-300, 300), rng.uniform(-300, 300)},
           vy[2] = {rng.uniform(-300, 300), rng.uniform(-300, 300)};
    double r[2] = {rng.uniform(5, 30), rng.uniform(5, 30)}, m[2] = {rng.uniform(1, 25), rng.uniform(1, 25)};
    detail::ContactLaw<double> law{rng.uniform(1e4, 1e6), rng.uniform(1, 300), 0.15, 1 / 0.15};
    const double gi[2] = {rng.uniform(-1, 1), rng.uniform(-1, 1)}, gj[2] = {rng.uniform(-1, 1), rng.uniform(-1, 1)};
    const bool i_lower = rng.below(2) == 0;
    // L = (g_i - g_j) . F_i, F_i the force on ball 0 (i) from ball 1 (j)
    auto L = [&] {
      double fx = 0, fy = 0;
      if (!detail::pair_force(x, y, vx[0], vy[0], r[0], m[0], x, y, vx[1], vy[1], r[1], m[1], i_lower, law, fx, fy))
        return 0.0;
      return (gi[0] - gj[0]) * fx + (gi[1] - gj[1]) * fy;
    };
    double ax = 0, ay = 0, avx = 0, avy = 0, rbar = 0, mbar = 0, cbar = 0, fdot = 0;
    detail::pair_adjoint_ball(x, y, vx[0], vy[0], r[0], m[0], x, y, vx[1], vy[1], r[1], m[1], i_lower, law, gi[0],
                              gi[1], gj[0], gj[1], ax, ay, avx, avy, rbar, mbar, cbar, fdot);
    // (past the onset ramp the force is linear in v, r and c and smooth in m: central
    // differences with steps of about 1e-5 of each scale suffice)
    // A central difference (L(v+h) - L(v-h)) / 2h carries a rounding error of about
    // eps |L| / h: with stiffness up to 1e6 and radii up to 30 px, |L| reaches 1e7 and that error
    // 1e-6 at h = 1e-3, so the tolerance adds it to the relative 1e-6 (seen: 1.3e-6 in 1 run of 8
    // without it).
    double rounding = 0;
    auto fd = [&](double& v, double h) {
      const double v0 = v;
      v = v0 + h;
      const double lp = L();
      v = v0 - h;
      const double lm = L();
      v = v0;
      rounding = 8 * std::numeric_limits<double>::epsilon() * std::max(std::abs(lp), std::abs(lm)) / h;
      return (lp - lm) / (2 * h);
    };
    auto near = [&](double a, double b) { return std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(b)) + rounding; };
    double d = fd(vx[0], 1e-3);
    EXPECT_TRUE(near(avx, d)) << "trial " << trial << " vx: " << avx << " vs " << d;
    d = fd(vy[0], 1e-3);
    EXPECT_TRUE(near(avy, d)) << "trial " << trial;
    d = fd(r[0], 1e-4);
    EXPECT_TRUE(near(rbar, d)) << "trial " << trial << " r: " << rbar << " vs " << d;
    d = fd(m[0], 1e-4);
    EXPECT_TRUE(near(mbar, d)) << "trial " << trial << " m: " << mbar << " vs " << d;
    d = fd(law.damping, 1e-3);
    EXPECT_TRUE(near(cbar, d)) << "trial " << trial;
    EXPECT_EQ(ax, 0.0);
    EXPECT_EQ(ay, 0.0);
    double fx = 0, fy = 0;
    detail::pair_force(x, y, vx[0], vy[0], r[0], m[0], x, y, vx[1], vy[1], r[1], m[1], i_lower, law, fx, fy);
    rounding = 0;  // no difference quotient here
    EXPECT_TRUE(near(fdot, gi[0] * fx + gi[1] * fy)) << "trial " << trial << " fdot " << fdot;
  }
}

// Per-scene comparison of float32 gradients with float64 ones over every input group (each
// laid out with the scene as its fastest index): the largest entry difference over the scene's
// largest entry, the normwise error, and sign flips among entries above `sign_floor` of the
// scene's largest.
struct SceneErrors {
  std::vector<double> worst, norm;
  std::vector<int> flips;
};
template <class A, class B>
SceneErrors scene_errors(int64_t S, const A& a, const B& b, double sign_floor) {
  SceneErrors e{std::vector<double>(S, 0.0), std::vector<double>(S, 0.0), std::vector<int>(S, 0)};
  std::vector<double> den(S, 0.0), num2(S, 0.0), den2(S, 0.0);
  const auto groups = {
      std::pair{&a.init, &b.init}, {&a.mass, &b.mass}, {&a.radius, &b.radius}, {&a.controls, &b.controls}};
  for (const auto& [x, y] : groups)
    for (size_t k = 0; k < x->size(); ++k) den[k % S] = std::max(den[k % S], std::abs((*x)[k]));
  for (const auto& [x, y] : groups)
    for (size_t k = 0; k < x->size(); ++k) {
      const int64_t s = static_cast<int64_t>(k % S);
      if (den[s] == 0) continue;
      const double u = (*x)[k], v = static_cast<double>((*y)[k]);
      e.worst[s] = std::max(e.worst[s], std::abs(u - v) / den[s]);
      num2[s] += (u - v) * (u - v);
      den2[s] += u * u;
      if (std::abs(u) > sign_floor * den[s] && (u > 0) != (v > 0)) ++e.flips[s];
    }
  for (int64_t s = 0; s < S; ++s) e.norm[s] = den2[s] > 0 ? std::sqrt(num2[s] / den2[s]) : 0.0;
  return e;
}

// float32 against float64 gradients of 2-frame rollouts of the same scenes (random dashpots and
// controls), for the loss sum(w * trajectory) with random weights.
SceneErrors float32_vs_float64(const Scene& sc, uint64_t seed, double sign_floor) {
  const Problem<double> pd = from_scene<double>(sc, 2, -1, true, seed);
  const Problem<float> pf = from_scene<float>(sc, 2, -1, true, seed);
  std::vector<double> wd(pd.traj_size());
  datagen::Rng rng(seed, 9);
  for (double& v : wd) v = rng.uniform(-1, 1);
  const std::vector<float> wf(wd.begin(), wd.end());
  return scene_errors(sc.spec.num_scenes, pd.backward(wd), pf.backward(wf), sign_floor);
}

// float32 gradients against float64 with the linear contact law (ramp 0): its rollout is
// piecewise smooth, and on the same piece float32 follows float64 to 1e-2 (relative to the
// scene's largest entry), every sign matching. A scene where a contact is shallower than float32
// resolves (a grazing touch that one precision sees and the other does not, or sees a substep
// later) sits on another piece; such scenes are counted and must stay rare (at most 4 of 64).
TEST(DiffSim, Float32GradientsFollowFloat64WithTheLinearLaw) {
  const uint64_t seed = test::fresh_seed();
  Scene sc = busy_scenes(64, seed);
  sc.spec.contact_ramp = 0;
  const int64_t S = sc.spec.num_scenes;
  const SceneErrors e = float32_vs_float64(sc, seed, 1e-3);
  int off_piece = 0;
  double worst_on = 0;
  for (int64_t s = 0; s < S; ++s) {
    if (e.worst[s] >= 1e-2 || e.flips[s] > 0)
      ++off_piece;
    else
      worst_on = std::max(worst_on, e.worst[s]);
  }
  std::printf("linear law, float32 vs float64 gradients: largest relative error %.2e over %lld scenes; %d "
              "scenes on another piece\n",
              worst_on, static_cast<long long>(S - off_piece), off_piece);
  EXPECT_LE(off_piece, 4);
  EXPECT_LT(worst_on, 1e-2);
}

// With the C1 onset ramp (the default) the gradient has no pieces, but it depends on where in
// the ramp (0.15 px wide) each substep lands, and float32 positions of a few hundred px carry
// 3e-5 to 1e-4 px of rounding: the per-contact Jacobian is off by about ulp / ramp, which the
// flight after the contact carries into the position gradients. Per scene (normwise): median
// under 1e-4 (observed 3e-6 to 6e-6), 90th percentile under 3e-2 (observed 1e-3 to 1.3e-2 over
// 200 runs), the worst scene a few percent (up to 0.1), and no sign flip (of entries above 1% of
// the scene's largest) in the scenes within 1e-3. Use float64 where gradients must be exact
// (gpu/README.md, "Gradients through contact").
TEST(DiffSim, Float32GradientsFollowFloat64WithTheRamp) {
  const uint64_t seed = test::fresh_seed();
  const Scene sc = busy_scenes(64, seed);
  const int64_t S = sc.spec.num_scenes;
  const SceneErrors e = float32_vs_float64(sc, seed, 1e-2);
  std::vector<double> norm = e.norm;
  std::sort(norm.begin(), norm.end());
  int flips = 0;
  for (int64_t s = 0; s < S; ++s)
    if (e.norm[s] < 1e-3) flips += e.flips[s];
  std::printf("ramp, float32 vs float64 gradients (normwise, per scene): median %.2e, 90th percentile %.2e, "
              "largest %.2e; %d sign flips in the scenes within 1e-3\n",
              norm[S / 2], norm[S * 9 / 10], norm.back(), flips);
  EXPECT_LT(norm[S / 2], 1e-4);
  EXPECT_LT(norm[S * 9 / 10], 3e-2);
  EXPECT_EQ(flips, 0);
}

TEST(DiffSim, CheckpointIntervalDoesNotChangeTheGradient) {
  const uint64_t seed = test::fresh_seed();
  const Scene sc = busy_scenes(8, seed);
  Problem<double> p = from_scene<double>(sc, 3, -1, true, seed);
  std::vector<double> w(p.traj_size());
  datagen::Rng rng(seed, 3);
  for (double& v : w) v = rng.uniform(-1, 1);
  p.rollout.checkpoint_every = 0;
  const auto a = p.backward(w);
  for (int k : {1, 7, 100, 1000}) {
    p.rollout.checkpoint_every = k;
    const auto b = p.backward(w);
    EXPECT_EQ(a.init, b.init) << "K " << k;
    EXPECT_EQ(a.mass, b.mass) << "K " << k;
    EXPECT_EQ(a.controls, b.controls) << "K " << k;
  }
}

// The forward pass's contact words (DiffArrays::contacts): bit g % 32 of word [g / 32][i][s] is
// set exactly when ball i touched a ball, wall or obstacle in substep g. Checked against
// contact_forces on the states the forward pass stored (K = 1: every state), with a last word
// that is partial.
TEST(DiffSim, ContactWordsMarkExactlyTheBallsInContact) {
  const uint64_t seed = test::fresh_seed();
  const Scene sc = busy_scenes(10, seed, "capsule:300,250,500,320,25;box:620,420,60,30,35");
  Problem<double> p = from_scene<double>(sc, 3, -1, true, seed);
  p.spec.substeps += 6;  // whatever the world's substeps per frame, make the last word partial
  p.rollout.checkpoint_every = 1;
  std::vector<double> traj(p.traj_size()), ckpt(p.ckpt_size());
  std::vector<uint32_t> words(p.words_size(), 0xdeadbeefu);
  diff_forward_cpu(p.spec, p.rollout, p.inputs(), traj.data(), ckpt.data(), words.data(), 1);
  const int64_t S = p.spec.num_scenes, N = p.spec.num_balls, total = p.rollout.substeps_total(p.spec);
  ASSERT_NE(total % 32, 0);
  ASSERT_EQ(p.words_size(), static_cast<size_t>((total + 31) / 32 * N * S));
  const auto obstacles = detail::kernel_obstacles<double>(p.spec);
  detail::StepParams<double> sp = detail::step_params<double>(p.spec, obstacles.data());
  int64_t set = 0;
  for (int64_t s = 0; s < S; ++s) {
    sp.law.damping = p.damping[static_cast<size_t>(s)];
    for (int64_t g = 0; g < total; ++g) {
      std::vector<double> x(N), y(N), vx(N), vy(N), r(N), m(N), fx(N), fy(N);
      detail::load_state(static_cast<int>(N), ckpt.data(), g, S, s, x.data(), y.data(), vx.data(), vy.data());
      for (int64_t i = 0; i < N; ++i) {
        const size_t b = static_cast<size_t>(i * S + s);
        r[i] = p.radius[b], m[i] = p.mass[b];
      }
      const uint32_t touched = detail::contact_forces(static_cast<int>(N), x.data(), y.data(), vx.data(), vy.data(),
                                                      r.data(), m.data(), fx.data(), fy.data(), sp);
      for (int64_t i = 0; i < N; ++i) {
        const bool want = (touched >> i) & 1u;
        const bool got = (words[static_cast<size_t>(((g / 32) * N + i) * S + s)] >> (g % 32)) & 1u;
        ASSERT_EQ(want, got) << "scene " << s << " ball " << i << " substep " << g;
        set += got;
        if (!want) {  // contact_forces' promise: exactly (+0, +0)
          ASSERT_TRUE(fx[i] == 0.0 && fy[i] == 0.0 && !std::signbit(fx[i]) && !std::signbit(fy[i]));
        }
      }
    }
  }
  // the scenes have contacts, but not at every substep: the check can fail both ways
  EXPECT_GT(set, 0);
  EXPECT_LT(set, total * N * S);
}

// The contact-sparse backward sweep (the forward pass's contact words) gives the dense sweep's
// bits: float32 and float64, controls, obstacles, checkpoint intervals within a word, across
// words, leaving a one-substep last segment, and longer than the rollout; and a rollout shorter
// than one word whose balls touch a wall from the first substep.
template <class T>
void check_sparse_equals_dense(uint64_t seed) {
  const Scene sc = busy_scenes(10, seed, "capsule:300,250,500,320,25;box:620,420,60,30,35");
  auto same = [](const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
  };
  auto compare = [&](const Problem<T>& p, const std::string& what) {
    std::vector<T> w(p.traj_size());
    datagen::Rng rng(seed, 4);
    for (T& v : w) v = static_cast<T>(rng.uniform(-1, 1));
    const auto sparse = p.backward(w), dense = p.backward(w, true);
    EXPECT_TRUE(same(sparse.init, dense.init)) << what;
    EXPECT_TRUE(same(sparse.mass, dense.mass)) << what;
    EXPECT_TRUE(same(sparse.radius, dense.radius)) << what;
    EXPECT_TRUE(same(sparse.damping, dense.damping)) << what;
    EXPECT_TRUE(same(sparse.controls, dense.controls)) << what;
    EXPECT_TRUE(std::all_of(sparse.mass.begin(), sparse.mass.end(), [](T v) { return std::isfinite(v); })) << what;
  };
  Problem<T> p = from_scene<T>(sc, 3, -1, true, seed);
  const int64_t total = p.rollout.substeps_total(p.spec);
  for (int k : {0, 1, 7, 33, 1000, static_cast<int>(total - 1)}) {  // the last: segments of total - 1 substeps, then 1
    p.rollout.checkpoint_every = k;
    compare(p, "K " + std::to_string(k));
  }
  // one frame of 20 substeps (the same substep), ball 0 of every scene pressed into the left wall
  Problem<T> q = from_scene<T>(sc, 1, -1, true, seed);
  q.spec.frame_dt = q.spec.substep() * 20;
  q.spec.substeps = 20;
  const int64_t S = q.spec.num_scenes;
  for (int64_t s = 0; s < S; ++s) q.init[static_cast<size_t>(s)] = q.radius[static_cast<size_t>(s)] * T(0.98);
  compare(q, "one partial word");
}

TEST(DiffSim, ContactSparseSweepGivesTheDenseSweepsBits) {
  check_sparse_equals_dense<double>(test::fresh_seed());
  check_sparse_equals_dense<float>(test::fresh_seed());
}

TEST(DiffSim, GradientsOfSeveralScenesNeverMix) {
  const uint64_t seed = test::fresh_seed();
  const Scene sc = busy_scenes(12, seed);
  Problem<double> p = from_scene<double>(sc, 2, std::getenv("NPE_E") ? 1.0 : -1.0, !std::getenv("NPE_NOCTL"), seed);
  std::vector<double> w(p.traj_size(), 0.0);
  const int64_t S = sc.spec.num_scenes, N = sc.spec.num_balls;
  for (size_t k = 0; k < w.size(); ++k)
    if (k % S == 5) w[k] = 1.0;  // only scene 5's trajectory enters the loss
  const auto g = p.backward(w);
  for (int64_t b = 0; b < N * S; ++b)
    for (int f = 0; f < 4; ++f) {
      if (b % S == 5) continue;
      ASSERT_EQ(g.init[f * N * S + b], 0.0);
      ASSERT_EQ(g.mass[b], 0.0);
    }
  EXPECT_NE(g.init[5], 0.0);
}

// Contact onset: a penalty contact begins between two substeps, at a phase tau in [0, h) of
// the substep. The discrete rollout is piecewise smooth in the inputs, with a piece for each
// onset substep, and its exact gradient (the one computed here; the central differences above
// agree to 1e-8) carries a term from the phase: an outgoing velocity that wobbles by A(omega h)
// over one period h of tau has a slope of order A / h in the initial position. With the linear
// law's onset A is first order in omega h, so this term does not vanish as substeps grow; the C1
// ramp makes it second order, and single rollouts converge (the test after these two;
// gpu/README.md, "Gradients through contact"). Averaged over the phase (x0 moved across one
// substep's travel v h), the wobble's slope averages to zero whatever the law, and the gradient
// is the analytic Jacobian of the elastic collision; these tests check that (default ramp).
template <class Fn>
std::vector<double> phase_average(int phases, const Fn& gradient_at) {
  std::vector<double> sum;
  for (int k = 0; k < phases; ++k) {
    const std::vector<double> g = gradient_at((k + 0.5) / phases);
    if (sum.empty()) sum.assign(g.size(), 0.0);
    for (size_t i = 0; i < g.size(); ++i) sum[i] += g[i] / phases;
  }
  return sum;
}

// One ball into the left wall (elastic, linear spring): the contact lasts pi / omega, so after it
// x_T = 2 r - x0 - v0 (T - pi / omega) (v0 < 0): dx_T/dx0 = -1, dx_T/dv0 = -T + pi / omega,
// dv_T/dv0 = -1, dv_T/dx0 = 0.
TEST(DiffSim, WallBounceHasTheAnalyticJacobianOverTheOnsetPhase) {
  const double r = 60, v0 = -45, omega = 200, T = 2.0;
  const int substeps = 256;
  const double h = 0.1 / substeps;
  const auto g = phase_average(1024, [&](double phase) {
    const double x0 = r + 30 + phase * std::abs(v0) * h;
    Scene sc = explicit_scene({{x0, 300, v0, 0, 2.0}}, r, 800, 600, omega, substeps);
    Problem<double> p = from_scene<double>(sc, 20, 1.0, false, 0);  // 2 s: the bounce is over
    std::vector<double> w(p.traj_size(), 0.0);
    const size_t last = static_cast<size_t>(p.rollout.frames) * 4;  // [frame][field][1][1]
    w[last + 0] = 1.0;                                              // x_T
    const auto gx = p.backward(w);
    std::fill(w.begin(), w.end(), 0.0);
    w[last + 2] = 1.0;  // vx_T
    const auto gv = p.backward(w);
    return std::vector<double>{gx.init[0], gx.init[2], gv.init[0], gv.init[2], gx.mass[0]};
  });
  std::printf("wall bounce, phase-averaged: dx/dx0 %.5f (-1), dx/dv0 %.5f (%.5f), dv/dx0 %.5f (0), dv/dv0 %.5f (-1)\n",
              g[0], g[1], -T + M_PI / omega, g[2], g[3]);
  EXPECT_NEAR(g[0], -1.0, 1e-2);
  EXPECT_NEAR(g[1], -T + M_PI / omega, 2e-2);
  EXPECT_NEAR(g[2], 0.0, 2e-2);
  EXPECT_NEAR(g[3], -1.0, 2e-2);
  EXPECT_NEAR(g[4], 0.0, 1e-9);  // the bounce does not depend on the mass
}

// Head-on elastic collision: v1 = ((m1 - m2) u1 + 2 m2 u2) / M, v2 = ((m2 - m1) u2 + 2 m1 u1) / M.
TEST(DiffSim, HeadOnCollisionHasTheElasticJacobianOverTheOnsetPhase) {
  for (auto [m1, m2] : {std::pair<double, double>{1, 1}, {5, 1}, {1, 25}}) {
    const double u1 = 30, u2 = -50, M = m1 + m2;
    const int substeps = 256;
    const double h = 0.1 / substeps;
    const auto g = phase_average(1024, [&](double phase) {
      Scene sc = explicit_scene({{330 - phase * (u1 - u2) * h, 1000, u1, 0, m1}, {470, 1000, u2, 0, m2}}, 60, 2000,
                                2000, 200, substeps);
      Problem<double> p = from_scene<double>(sc, 8, 1.0, false, 0);
      const size_t last = static_cast<size_t>(p.rollout.frames) * 4 * 2;  // [frame][field][2][1]
      std::vector<double> w(p.traj_size(), 0.0);
      w[last + 2 * 2 + 0] = 1.0;  // v1_T
      const auto g1 = p.backward(w);
      std::fill(w.begin(), w.end(), 0.0);
      w[last + 2 * 2 + 1] = 1.0;  // v2_T
      const auto g2 = p.backward(w);
      return std::vector<double>{g1.init[4], g1.init[5], g1.mass[0], g1.mass[1],
                                 g2.init[4], g2.init[5], g2.mass[0], g2.mass[1]};
    });
    // d v1 / d(u1, u2, m1, m2), then d v2 / d(u1, u2, m1, m2)
    const double expect[8] = {
        (m1 - m2) / M, 2 * m2 / M,    2 * m2 * (u1 - u2) / (M * M), -2 * m1 * (u1 - u2) / (M * M),
        2 * m1 / M,    (m2 - m1) / M, 2 * m2 * (u1 - u2) / (M * M), -2 * m1 * (u1 - u2) / (M * M)};
    for (int k = 0; k < 8; ++k) {
      std::printf("head-on m %g,%g entry %d: %.5f (%.5f)\n", m1, m2, k, g[k], expect[k]);
      EXPECT_NEAR(g[k], expect[k], 2e-2 * (1 + std::abs(expect[k]))) << "m " << m1 << "," << m2 << " entry " << k;
    }
  }
}

// Per-rollout gradients converge (gpu/README.md, "Gradients through contact"). One ball into
// the left wall, elastic: whatever the conservative contact law, v_T = -v0, so dv_T/dx0 = 0 and
// dv_T/dv0 = -1 exactly in continuous time. The discrete rollout's gradient, taken at single
// rollouts (onset phases 0.1 ... 0.85 of a substep, no averaging), converges to these as the
// substeps grow: fast with the C1 onset ramp; with the linear law (ramp 0) it does not converge
// (printed for the record). As the stiffness rises (ramp and substep scaled with 1 / omega) the
// contact time (about pi / omega) vanishes and dx_T/dv0 tends to the rigid bounce's -T.
TEST(DiffSim, GradientConvergesAsSubstepsGrowAndStiffnessRises) {
  const double r = 60, v0 = -45, T = 2.0;
  auto worst_at = [&](double omega, double ramp, int substeps) {
    const double h = 0.1 / substeps;
    std::array<double, 3> worst{0, 0, 0};  // |dv/dx0|, |dv/dv0 + 1|, |dx/dv0 + T|
    for (double phase : {0.1, 0.37, 0.62, 0.85}) {
      Scene sc = explicit_scene({{r + 30 + phase * std::abs(v0) * h, 300, v0, 0, 2.0}}, r, 800, 600, omega, substeps);
      sc.spec.contact_ramp = ramp;
      Problem<double> p = from_scene<double>(sc, 20, 1.0, false, 0);
      const size_t last = static_cast<size_t>(p.rollout.frames) * 4;
      std::vector<double> w(p.traj_size(), 0.0);
      w[last + 2] = 1.0;  // v_T
      const auto gv = p.backward(w);
      std::fill(w.begin(), w.end(), 0.0);
      w[last + 0] = 1.0;  // x_T
      const auto gx = p.backward(w);
      worst[0] = std::max(worst[0], std::abs(gv.init[0]));
      worst[1] = std::max(worst[1], std::abs(gv.init[2] + 1));
      worst[2] = std::max(worst[2], std::abs(gx.init[2] + T));
    }
    return worst;
  };
  std::vector<double> ramped, linear;
  for (int substeps : {64, 256, 1024, 4096}) {
    const auto a = worst_at(200, 0.15, substeps), b = worst_at(200, 0.0, substeps);
    std::printf("substeps %5d: ramp 0.15 px: |dv/dx0| %.2e |dv/dv0 + 1| %.2e;  linear law: %.2e %.2e\n", substeps, a[0],
                a[1], b[0], b[1]);
    ramped.push_back(std::max(a[0], a[1]));
    linear.push_back(std::max(b[0], b[1]));
  }
  for (size_t k = 1; k < ramped.size(); ++k) EXPECT_LT(ramped[k], 0.5 * ramped[k - 1]) << k;
  EXPECT_LT(ramped.back(), 1e-3);
  EXPECT_GT(*std::max_element(linear.begin() + 1, linear.end()), 0.1);  // the record: no convergence
  // stiffness: ramp a quarter of the peak penetration 2 |v0| / omega; omega h must shrink too
  // (as omega^-1/2): at fixed omega h the contact is resolved alike, but a change of v0 moves
  // the onset phase by (30 px / v0^2) / h, which grows with omega
  std::vector<double> dxdv;
  for (double omega : {200.0, 800.0, 3200.0}) {
    const int substeps = static_cast<int>(std::lround(4096 * std::pow(omega / 200, 1.5)));
    const auto a = worst_at(omega, 0.25 * 2 * std::abs(v0) / omega, substeps);
    std::printf("omega %6.0f (%d substeps): |dx/dv0 + T| %.2e (pi / omega %.2e), |dv/dv0 + 1| %.2e\n", omega, substeps,
                a[2], M_PI / omega, a[1]);
    dxdv.push_back(a[2]);
    EXPECT_LT(a[1], 1e-4);
    EXPECT_NEAR(a[2], M_PI / omega, 0.05 * M_PI / omega);  // the contact's duration
  }
  EXPECT_LT(dxdv[1], 0.4 * dxdv[0]);
  EXPECT_LT(dxdv[2], 0.4 * dxdv[1]);
  EXPECT_LT(dxdv[2], 2e-3);
}

TEST(DiffSim, DashpotDerivativeMatchesDifferences) {
  for (double e : {0.3, 0.7, 0.95, 1.0}) {
    const double h = 1e-6, a = dashpot(e - h, 200), b = e + h <= 1 ? dashpot(e + h, 200) : dashpot(e, 200);
    const double fd = e + h <= 1 ? (b - a) / (2 * h) : (b - a) / h;
    EXPECT_NEAR(dashpot_derivative(e, 200), fd, 1e-4 * std::abs(fd)) << e;
  }
  EXPECT_THROW(dashpot_derivative(0.0, 200), Error);
}

TEST(DiffSim, RejectsWhatItCannotSimulate) {
  Scene sc = busy_scenes(2, 1);
  DiffRollout r;
  r.frames = 0;
  EXPECT_THROW(validate_diff(sc.spec, r, kDiffMaxBallsCpu), Error);
  r.frames = 1;
  sc.spec.num_balls = 40;
  EXPECT_THROW(validate_diff(sc.spec, r, kDiffMaxBallsCpu), Error);
}

}  // namespace
}  // namespace npe::gpu
