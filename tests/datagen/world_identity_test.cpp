#include "npe/datagen/world_identity.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "npe/core/error.h"

namespace npe::datagen {
namespace {

Manifest default_manifest() {
  Manifest m;
  m.engine = "box2d";
  return m;
}

// One change per identity field: the manifest edit, the field it must change and nothing else.
struct FieldCase {
  std::string field;
  std::function<void(Manifest&)> edit;
};

std::vector<FieldCase> field_cases() {
  return {
      {"width", [](Manifest& m) { m.world.width = 640; }},
      {"height", [](Manifest& m) { m.world.height = 480; }},
      {"radius", [](Manifest& m) { m.world.radius = 40; }},
      {"masses", [](Manifest& m) { m.world.variable_mass = true; }},
      {"masses", [](Manifest& m) { m.world.mass = 2; }},
      {"restitution", [](Manifest& m) { m.world.restitution = 0.5; }},
      {"friction", [](Manifest& m) { m.world.friction = 0.2; }},
      {"obstacles", [](Manifest& m) { m.world.obstacles = parse_obstacles("capsule:100,100,300,100,10"); }},
      {"engine", [](Manifest& m) { m.engine = "npe-gpu"; }},
      {"frame_dt", [](Manifest& m) { m.world.frame_dt = 0.05; }},
      {"pos_scale", [](Manifest& m) { m.world.width = 801; }},  // pos_scale is the width
      {"vel_scale", [](Manifest& m) { m.world.max_speed = 30; }},
      {"walls", [](Manifest& m) { m.world.walls = parse_wall_shapes("O,L"); }},
  };
}

TEST(WorldIdentity, EachFieldIsComparedAndNamedWithBothValues) {
  const WorldIdentity base = world_identity(default_manifest());
  EXPECT_TRUE(identity_differences(base, base).empty());
  std::vector<std::string> seen;
  for (const FieldCase& c : field_cases()) {
    Manifest m = default_manifest();
    c.edit(m);
    const auto diffs = identity_differences(base, world_identity(m));
    ASSERT_FALSE(diffs.empty()) << c.field;
    bool found = false;
    for (const auto& d : diffs) {
      // a width change also changes pos_scale: every reported field is a real difference
      EXPECT_NE(d.first, d.second) << d.field;
      found = found || d.field == c.field;
    }
    EXPECT_TRUE(found) << c.field;
    if (c.field != "pos_scale" && c.field != "width") {
      EXPECT_EQ(diffs.size(), 1u) << c.field;
    }
    seen.push_back(c.field);
  }
  // every compared field has a case above
  for (const auto& f : identity_fields()) EXPECT_NE(std::find(seen.begin(), seen.end(), f), seen.end()) << f;
}

TEST(WorldIdentity, ReportsTheValuesOfBothWorlds) {
  Manifest a = default_manifest(), b = default_manifest();
  b.world.variable_mass = true;
  b.world.restitution = 0.5;
  const auto d = identity_differences(world_identity(a), world_identity(b));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].field, "masses");
  EXPECT_EQ(d[0].first, "[1]");
  EXPECT_EQ(d[0].second, "[1, 5, 25]");
  EXPECT_EQ(d[1].field, "restitution");
  EXPECT_EQ(d[1].first, "1");
  EXPECT_EQ(d[1].second, "0.5");
}

TEST(WorldIdentity, MassesCompareAsASet) {
  Manifest a = default_manifest(), b = default_manifest();
  a.world.variable_mass = b.world.variable_mass = true;
  b.world.mass_choices = {25, 1, 5};
  EXPECT_TRUE(identity_differences(world_identity(a), world_identity(b)).empty());
  b.world.mass_choices = {25, 1};
  EXPECT_EQ(identity_differences(world_identity(a), world_identity(b)).size(), 1u);
}

TEST(WorldIdentity, BallCountsMayDiffer) {
  Manifest a = default_manifest(), b = default_manifest();
  b.world.num_balls = 6;
  b.world.ball_counts = {3, 4, 5, 6};
  EXPECT_TRUE(identity_differences(world_identity(a), world_identity(b)).empty());
  EXPECT_EQ(world_identity(b).ball_counts, (std::vector<int>{3, 4, 5, 6}));
  EXPECT_EQ(world_identity(a).ball_counts, (std::vector<int>{4}));
}

// The wall shapes may differ (trained on O and L, tested on U and I); walls or none may not.
// Checkpoints older than the walls worlds read as no walls.
TEST(WorldIdentity, WallShapesMayDiffer) {
  Manifest a = default_manifest(), b = default_manifest();
  a.world.walls = parse_wall_shapes("O,L");
  b.world.walls = parse_wall_shapes("U");
  EXPECT_TRUE(identity_differences(world_identity(a), world_identity(b)).empty());
  const auto d = identity_differences(world_identity(a), world_identity(default_manifest()));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].first, "walls");
  EXPECT_EQ(d[0].second, "none");
  nlohmann::json old = world_identity(default_manifest()).to_json();
  old.erase("walls");
  EXPECT_FALSE(WorldIdentity::from_json(old, "old.pt").walls);
  EXPECT_TRUE(WorldIdentity::from_json(world_identity(a).to_json(), "new.pt").walls);
}

TEST(WorldIdentity, JsonRoundTripAndMissingFields) {
  Manifest m = default_manifest();
  m.world.variable_mass = true;
  m.world.obstacles = parse_obstacles("box:400,300,50,20,30");
  const WorldIdentity w = world_identity(m);
  const WorldIdentity back = WorldIdentity::from_json(w.to_json(), "test");
  EXPECT_TRUE(identity_differences(w, back).empty());
  EXPECT_EQ(back.ball_counts, w.ball_counts);
  for (const auto& f : identity_fields()) {
    if (f == "walls") continue;  // optional: checkpoints older than the walls worlds lack it
    nlohmann::json j = w.to_json();
    j.erase(f);
    try {
      WorldIdentity::from_json(j, "ck.pt");
      ADD_FAILURE() << "missing " << f << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + f + "' is missing"), std::string::npos) << e.what();
    }
  }
  nlohmann::json j = w.to_json();
  j["radius"] = "sixty";
  EXPECT_THROW(WorldIdentity::from_json(j, "ck.pt"), Error);
}

}  // namespace
}  // namespace npe::datagen
