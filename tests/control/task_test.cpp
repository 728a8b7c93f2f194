// Tests of npe/control/task.h: the built-in tasks, task files and their errors, the engine's world.
#include "npe/control/task.h"

#include <fstream>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe::control {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Task, BuiltInTasksAreValidAndSized) {
  for (const auto& t : {billiards_task(), herding_task(), reach_task()}) {
    EXPECT_NO_THROW(validate_task(t)) << task_kind_name(t.kind);
    const auto w = task_world(t, 3);
    EXPECT_EQ(w.num_balls, task_bodies(t));
    EXPECT_EQ(w.num_scenes, 3);
    EXPECT_GE(w.substeps, 1);
    // the contact is resolved: omega h <= 1 (validate), and the box holds the playing area and the lane
    EXPECT_GT(w.width, t.width + 2 * t.radius);
  }
  EXPECT_EQ(task_bodies(billiards_task()), 10);
  EXPECT_EQ(task_bodies(herding_task()), 4);
  EXPECT_EQ(task_bodies(reach_task()), 1);
  EXPECT_EQ(task_obs_dim(billiards_task()), 6 + 3 * 8);
  EXPECT_EQ(task_obs_dim(herding_task()), 4 + 15 + 1);
  EXPECT_EQ(task_world(herding_task(), 1).obstacles.size(), 3u);  // the lane's wall and the pen's two
}

TEST(Task, ParkingSpotsAreBehindTheWallAndApart) {
  const TaskSpec t = billiards_task();
  for (int k = 0; k < task_bodies(t); ++k) {
    const auto [x, y] = parking_spot(t, k);
    EXPECT_GT(x - t.radius, t.width);
    EXPECT_LE(y + t.radius, t.height);
    if (k > 0) {
      EXPECT_GT(y - parking_spot(t, k - 1).second, 2 * t.radius);
    }
  }
}

TEST(Task, TaskFilesOverrideTheirKindsDefaults) {
  test::TempDir dir;
  std::ofstream(dir / "t.json") << R"({"kind": "herding", "max_balls": 2, "episode_frames": 50, "drag": 2.5})";
  const TaskSpec t = load_task(dir / "t.json");
  EXPECT_EQ(t.kind, TaskKind::kHerding);
  EXPECT_EQ(t.max_balls, 2);
  EXPECT_EQ(t.episode_frames, 50);
  EXPECT_EQ(t.drag, 2.5);
  EXPECT_EQ(t.width, herding_task().width);
  // the JSON form reads back to the same task
  std::ofstream(dir / "u.json") << task_to_json(t).dump();
  EXPECT_EQ(task_to_json(load_task(dir / "u.json")), task_to_json(t));
}

TEST(Task, BadTasksAreNamed) {
  test::TempDir dir;
  auto file = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  EXPECT_NE(error_of([] { load_task("pool"); }).find("expected billiards, herding, reach or a task file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_task(file("a.json", "{")); }).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([&] { load_task(file("b.json", "[1]")); }).find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of([&] { load_task(file("c.json", R"({"kind": "golf"})")); }).find("found 'golf'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_task(file("d.json", R"({"kind": "reach", "colour": 1})"));
            }).find("unknown task field 'colour'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_task(file("e.json", R"({"kind": "reach", "drag": "x"})")); }).find("'drag'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_task(file("f.json", R"({"kind": "billiards", "max_balls": 40})")); }).find("max_balls"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_task(file("g.json", R"({"kind": "herding", "restitution": 0})"));
            }).find("g.json': task field 'restitution': expected a value in (0, 1], found 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_task(file("h.json", R"({"kind": "reach", "max_balls": 2})"));
            }).find("expected min_balls = max_balls = 0"),
            std::string::npos);
  // a playing area too small for the layouts names what to change
  TaskSpec t = billiards_task();
  t.width = 100;
  EXPECT_NE(error_of([&] { validate_task(t); }).find("enlarge width or height"), std::string::npos);
  // every error names its field
  try {
    load_task("pool");
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "task");
  }
}

}  // namespace
}  // namespace npe::control
