// The engine's spec: validation, contact choice, kernel parameters, recording layouts.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine_internal.h"
#include "npe/core/error.h"

namespace npe::gpu {

BroadPhase WorldSpec::resolved_broad_phase() const {
  if (broad_phase != BroadPhase::kAuto) return broad_phase;
  return num_balls <= kAllPairsMaxBalls ? BroadPhase::kAllPairs : BroadPhase::kGrid;
}

double damping_ratio(double e) {
  if (!(e > 0 && e <= 1)) throw FieldError("restitution", fmt::format(": expected a value in (0, 1], found {}", e));
  if (e == 1.0) return 0.0;
  return detail::dashpot_zeta(e);  // the CUDA dashpot's bits (physics.h)
}

ContactChoice choose_contact(double v, double r, double frame_dt, double penetration, int steps_per_contact) {
  if (!(v > 0) || !(r > 0) || !(frame_dt > 0) || !(penetration > 0) || steps_per_contact < 1)
    throw Error(fmt::format("choose_contact: expected positive speed, radius, frame_dt, penetration "
                            "and steps, found {}, {}, {}, {}, {}",
                            v, r, frame_dt, penetration, steps_per_contact));
  ContactChoice c;
  c.omega = v / (penetration * r);
  c.ramp = 0.25 * penetration * r;
  const double s = std::ceil(frame_dt * c.omega * steps_per_contact / M_PI - 1e-9);
  if (!(s <= 1e7))
    throw Error(fmt::format("contact: {:.3g} substeps per frame would be needed for speed {} px/s "
                            "and radius {} px; lower the speed or enlarge the balls",
                            s, v, r));
  c.substeps = std::max(1, static_cast<int>(s));
  return c;
}

void validate(const WorldSpec& s) {
  auto bad = [](const std::string& field, const std::string& expected, auto found) {
    throw FieldError(field, fmt::format(": expected {}, found {}", expected, found));
  };
  if (s.num_scenes < 1) bad("num_scenes", "at least 1 scene", s.num_scenes);
  if (s.num_balls < 1) bad("num_balls", "at least 1 ball", s.num_balls);
  if (s.num_scenes > (int64_t{1} << 40) / s.num_balls)
    bad("num_scenes * num_balls", "at most 2^40 bodies", static_cast<double>(s.num_scenes) * s.num_balls);
  if (!(s.width > 0 && std::isfinite(s.width))) bad("width", "a positive width in px", s.width);
  if (!(s.height > 0 && std::isfinite(s.height))) bad("height", "a positive height in px", s.height);
  const size_t n = static_cast<size_t>(s.num_bodies());
  if (s.radius.size() != n)
    bad("WorldSpec::radius", fmt::format("{} entries (num_balls * num_scenes)", n), s.radius.size());
  if (s.mass.size() != n) bad("WorldSpec::mass", fmt::format("{} entries (num_balls * num_scenes)", n), s.mass.size());
  for (size_t b = 0; b < n; ++b) {
    if (!(s.radius[b] > 0 && std::isfinite(s.radius[b])))
      bad(fmt::format("radius of body {}", b), "a positive finite radius in px", s.radius[b]);
    if (!(s.mass[b] > 0 && std::isfinite(s.mass[b])))
      bad(fmt::format("mass of body {}", b), "a positive finite mass", s.mass[b]);
    if (2 * s.radius[b] >= std::min(s.width, s.height))
      throw Error(fmt::format("radius of body {}: a ball of radius {} px does not fit in the {} x {} px box", b,
                              s.radius[b], s.width, s.height));
  }
  if (!(s.restitution > 0 && s.restitution <= 1)) bad("restitution", "a value in (0, 1]", s.restitution);
  if (!(s.contact_omega > 0 && std::isfinite(s.contact_omega)))
    bad("contact_omega", "a positive stiffness in 1/s", s.contact_omega);
  if (!(s.frame_dt > 0 && std::isfinite(s.frame_dt))) bad("frame_dt", "a positive frame interval in s", s.frame_dt);
  if (!(s.contact_ramp >= 0 && std::isfinite(s.contact_ramp)))
    bad("contact_ramp", "a ramp >= 0 px (0 = linear contact law)", s.contact_ramp);
  if (s.substeps < 1 || s.substeps > 10000000) bad("substeps", "1 to 10^7 substeps per frame", s.substeps);
  if (!std::isfinite(s.gravity_x) || !std::isfinite(s.gravity_y)) bad("gravity", "finite values", "non-finite");
  // Symplectic Euler on the contact spring is stable for omega h < 2; demand a resolved contact.
  const double oh = s.contact_omega * s.substep();
  if (oh > 1.0)
    throw FieldError("substeps", fmt::format(": omega * h = {:.3g} (omega {} /s, h {} s): a contact lasts only "
                                             "{:.2g} substeps; expected omega * h <= 1 (use at least {} substeps, or "
                                             "leave substeps at 0 to choose them)",
                                             oh, s.contact_omega, s.substep(), M_PI / oh,
                                             static_cast<int>(std::ceil(s.contact_omega * s.frame_dt))));
  if (s.obstacles.size() > static_cast<size_t>(kMaxObstacles))
    bad("obstacles", fmt::format("at most {} obstacles", kMaxObstacles), s.obstacles.size());
  for (size_t k = 0; k < s.obstacles.size(); ++k) {
    const Obstacle& o = s.obstacles[k];
    const bool finite = std::isfinite(o.ax) && std::isfinite(o.ay) && std::isfinite(o.bx) && std::isfinite(o.by) &&
                        std::isfinite(o.radius) && std::isfinite(o.angle);
    if (!finite) bad(fmt::format("obstacles[{}]", k), "finite numbers", "a non-finite value");
    if (o.kind == Obstacle::Kind::kCapsule && !(o.radius > 0))
      bad(fmt::format("obstacles[{}]", k), "a positive capsule radius", o.radius);
    if (o.kind == Obstacle::Kind::kBox && !(o.bx > 0 && o.by > 0))
      bad(fmt::format("obstacles[{}]", k), "positive box half extents", fmt::format("{} x {}", o.bx, o.by));
  }
  if (s.resolved_broad_phase() == BroadPhase::kGrid) {
    if (s.num_bodies() >= (int64_t{1} << 31))
      bad("num_scenes * num_balls", "fewer than 2^31 bodies for the grid broad phase", s.num_bodies());
    if (detail::grid_cells(s) >= (int64_t{1} << 31)) bad("grid", "fewer than 2^31 cells", detail::grid_cells(s));
  }
}

template <class T>
Recorder<T> engine_layout(T* out, const WorldSpec& s) {
  Recorder<T> r;
  r.out = out;
  r.scene = 1;
  r.ball_stride = s.num_scenes;
  r.field = s.num_bodies();
  r.frame = 4 * s.num_bodies();
  r.fields = 4;
  return r;
}

template <class T>
Recorder<T> dataset_layout(T* out, const WorldSpec& s, int frames, double pos_scale, double vel_scale) {
  Recorder<T> r;
  r.out = out;
  r.field = 1;
  r.ball_stride = 5;
  r.frame = 5 * s.num_balls;
  r.scene = static_cast<int64_t>(frames) * 5 * s.num_balls;
  r.fields = 5;
  r.scale[0] = r.scale[1] = static_cast<T>(1.0 / pos_scale);
  r.scale[2] = r.scale[3] = static_cast<T>(1.0 / vel_scale);
  r.scale[4] = T(1);
  return r;
}

namespace detail {

template <class T>
std::vector<ObstacleK<T>> kernel_obstacles(const WorldSpec& s) {
  std::vector<ObstacleK<T>> out;
  for (const Obstacle& o : s.obstacles) {
    ObstacleK<T> k{};
    k.kind = o.kind == Obstacle::Kind::kCapsule ? 0 : 1;
    k.ax = static_cast<T>(o.ax);
    k.ay = static_cast<T>(o.ay);
    k.bx = static_cast<T>(o.bx);
    k.by = static_cast<T>(o.by);
    k.radius = static_cast<T>(o.radius);
    k.cos_a = static_cast<T>(std::cos(o.angle));
    k.sin_a = static_cast<T>(std::sin(o.angle));
    out.push_back(k);
  }
  return out;
}

template <class T>
StepParams<T> step_params(const WorldSpec& s, const ObstacleK<T>* obstacles) {
  StepParams<T> p{};
  p.width = static_cast<T>(s.width);
  p.height = static_cast<T>(s.height);
  p.h = static_cast<T>(s.substep());
  p.gx = static_cast<T>(s.gravity_x);
  p.gy = static_cast<T>(s.gravity_y);
  p.law.omega2 = static_cast<T>(s.contact_omega * s.contact_omega);
  p.law.damping = static_cast<T>(dashpot_constant(s.restitution, s.contact_omega));  // c = 2 zeta omega
  p.law.ramp = static_cast<T>(s.contact_ramp);
  p.law.inv_ramp = s.contact_ramp > 0 ? static_cast<T>(1.0 / s.contact_ramp) : T(0);
  p.num_obstacles = static_cast<int>(s.obstacles.size());
  p.obstacles = obstacles;
  return p;
}

namespace {
double cell_side(const WorldSpec& s) {
  const double rmax = *std::max_element(s.radius.begin(), s.radius.end());
  const double max_cells = std::max<double>(4.0 * s.num_balls + 16.0, 1024.0);
  return std::max(2.0 * rmax, std::sqrt(s.width * s.height / max_cells));
}
}  // namespace

int64_t grid_cells(const WorldSpec& s) {
  const double c = cell_side(s);
  return static_cast<int64_t>(std::ceil(s.width / c)) * static_cast<int64_t>(std::ceil(s.height / c)) * s.num_scenes;
}

template <class T>
GridK<T> grid_params(const WorldSpec& s) {
  const double c = cell_side(s);
  GridK<T> g{};
  g.cell = static_cast<T>(c);
  g.inv_cell = static_cast<T>(1.0 / c);
  g.nx = std::max(1, static_cast<int>(std::ceil(s.width / c)));
  g.ny = std::max(1, static_cast<int>(std::ceil(s.height / c)));
  return g;
}

template <class T>
void check_state(const WorldSpec& s, const WorldState<T>& st, const char* who) {
  const size_t n = static_cast<size_t>(s.num_bodies());
  if (st.x.size() != n || st.y.size() != n || st.vx.size() != n || st.vy.size() != n)
    throw Error(fmt::format("{}: expected a state of {} bodies (num_balls {} x num_scenes {}), found "
                            "{}/{}/{}/{} entries in x/y/vx/vy",
                            who, n, s.num_balls, s.num_scenes, st.x.size(), st.y.size(), st.vx.size(), st.vy.size()));
}

template std::vector<ObstacleK<float>> kernel_obstacles(const WorldSpec&);
template std::vector<ObstacleK<double>> kernel_obstacles(const WorldSpec&);
template StepParams<float> step_params(const WorldSpec&, const ObstacleK<float>*);
template StepParams<double> step_params(const WorldSpec&, const ObstacleK<double>*);
template GridK<float> grid_params(const WorldSpec&);
template GridK<double> grid_params(const WorldSpec&);
template void check_state(const WorldSpec&, const WorldState<float>&, const char*);
template void check_state(const WorldSpec&, const WorldState<double>&, const char*);

}  // namespace detail

template Recorder<float> engine_layout(float*, const WorldSpec&);
template Recorder<double> engine_layout(double*, const WorldSpec&);
template Recorder<float> dataset_layout(float*, const WorldSpec&, int, double, double);
template Recorder<double> dataset_layout(double*, const WorldSpec&, int, double, double);

}  // namespace npe::gpu
