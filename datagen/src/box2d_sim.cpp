// Ball-world simulation with Box2D 2.4.1.
//
// Box2D works in metres and is tuned for objects of 0.1 to 10 m, so pixels are scaled by
// WorldDef::pixels_per_meter (60 px = 0.6 m). Two Box2D defaults would break elasticity here:
// - restitutionThreshold (1 m/s by default): contacts approaching slower than it get no
//   restitution, and every speed in this world (<= 0.6 m/s) is below it. Set to 0.
// - polygon skin (b2_polygonRadius = 0.01 m): walls are boxes whose collision surface lies one
//   skin outside the box, so each wall box is moved out by one skin to put the surface exactly
//   at x = 0, x = W, y = 0, y = H.
// Position correction (Baumgarte/NGS) moves positions only, never velocities, so it cannot change
// kinetic energy; sleeping is disabled so that slow balls keep moving.
#include <memory>

#include <box2d/box2d.h>

#include "npe/datagen/world.h"

namespace npe::datagen {
namespace {

struct Box2dScene {
  std::unique_ptr<b2World> world;
  std::vector<b2Body*> balls;
};

Box2dScene build(const WorldDef& d, const std::vector<BallInit>& init) {
  const float s = static_cast<float>(1.0 / d.pixels_per_meter);
  Box2dScene sc;
  sc.world = std::make_unique<b2World>(b2Vec2(0.0f, 0.0f));
  sc.world->SetAllowSleeping(false);

  // Four static walls: boxes 1 m thick outside the [0, W] x [0, H] box.
  const float W = static_cast<float>(d.width) * s, H = static_cast<float>(d.height) * s;
  const float t = 1.0f, skin = b2_polygonRadius;
  b2BodyDef wall_def;
  b2Body* walls = sc.world->CreateBody(&wall_def);
  auto add_wall = [&](float cx, float cy, float hx, float hy) {
    b2PolygonShape box;
    box.SetAsBox(hx, hy, b2Vec2(cx, cy), 0.0f);
    b2FixtureDef fd;
    fd.shape = &box;
    fd.friction = static_cast<float>(d.friction);
    fd.restitution = static_cast<float>(d.restitution);
    fd.restitutionThreshold = 0.0f;
    walls->CreateFixture(&fd);
  };
  add_wall(W / 2, -t / 2 - skin, W / 2 + 2 * t, t / 2);      // bottom, y = 0
  add_wall(W / 2, H + t / 2 + skin, W / 2 + 2 * t, t / 2);   // top, y = H
  add_wall(-t / 2 - skin, H / 2, t / 2, H / 2 + 2 * t);      // left, x = 0
  add_wall(W + t / 2 + skin, H / 2, t / 2, H / 2 + 2 * t);   // right, x = W

  for (const BallInit& b : init) {
    b2BodyDef bd;
    bd.type = b2_dynamicBody;
    bd.position.Set(static_cast<float>(b.x) * s, static_cast<float>(b.y) * s);
    bd.linearVelocity.Set(static_cast<float>(b.vx) * s, static_cast<float>(b.vy) * s);
    bd.fixedRotation = true;  // frictionless: no torque ever acts
    bd.linearDamping = 0.0f;
    bd.angularDamping = 0.0f;
    b2Body* body = sc.world->CreateBody(&bd);
    b2CircleShape circle;
    circle.m_radius = static_cast<float>(d.radius) * s;
    b2FixtureDef fd;
    fd.shape = &circle;
    fd.density = 1.0f;
    fd.friction = static_cast<float>(d.friction);
    fd.restitution = static_cast<float>(d.restitution);
    fd.restitutionThreshold = 0.0f;
    body->CreateFixture(&fd);
    b2MassData md;
    md.mass = static_cast<float>(b.mass);
    md.center.SetZero();
    md.I = 0.5f * md.mass * circle.m_radius * circle.m_radius;
    body->SetMassData(&md);
    sc.balls.push_back(body);
  }
  return sc;
}

template <typename Record>
void run(const WorldDef& d, const std::vector<BallInit>& init, Record record) {
  Box2dScene sc = build(d, init);
  const int substeps = d.substeps > 0 ? d.substeps : kBox2dDefaultSubsteps;
  const float h = static_cast<float>(d.frame_dt / substeps);
  for (int t = 0; t < d.timesteps; ++t) {
    if (t > 0)
      for (int k = 0; k < substeps; ++k)
        sc.world->Step(h, d.velocity_iterations, d.position_iterations);
    for (size_t i = 0; i < sc.balls.size(); ++i)
      record(t, static_cast<int>(i), sc.balls[i]->GetPosition(), sc.balls[i]->GetLinearVelocity(),
             init[i].mass);
  }
}

}  // namespace

void simulate_box2d(const WorldDef& d, const std::vector<BallInit>& init, float* out) {
  const double px = d.pixels_per_meter;
  const int n = static_cast<int>(init.size());
  run(d, init, [&](int t, int i, b2Vec2 p, b2Vec2 v, double m) {
    float* s = out + (static_cast<size_t>(t) * n + i) * kStateDim;
    s[0] = static_cast<float>(p.x * px / d.width);
    s[1] = static_cast<float>(p.y * px / d.width);
    s[2] = static_cast<float>(v.x * px / d.max_speed);
    s[3] = static_cast<float>(v.y * px / d.max_speed);
    s[4] = static_cast<float>(m);
  });
}

std::vector<std::vector<BallInit>> simulate_box2d_px(const WorldDef& d,
                                                      const std::vector<BallInit>& init) {
  const double px = d.pixels_per_meter;
  std::vector<std::vector<BallInit>> out(d.timesteps, std::vector<BallInit>(init.size()));
  run(d, init, [&](int t, int i, b2Vec2 p, b2Vec2 v, double m) {
    out[t][i] = {p.x * px, p.y * px, v.x * px, v.y * px, m};
  });
  return out;
}

}  // namespace npe::datagen
