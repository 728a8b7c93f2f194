// Tests of npe/datagen/walls.h: the four wall shapes cell by cell, their layouts' counts, the
// enclosed cells and the placement test.
#include "npe/datagen/walls.h"

#include <algorithm>
#include <set>
#include <utility>

#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe::datagen {
namespace {

bool has(const std::vector<WallCell>& cells, int i, int j) {
  return std::find(cells.begin(), cells.end(), WallCell{i, j}) != cells.end();
}

std::set<std::pair<int, int>> as_set(const std::vector<WallCell>& cells) {
  std::set<std::pair<int, int>> s;
  for (const WallCell& c : cells) s.insert({c.i, c.j});
  return s;
}

// Every layout: blocks on the grid, none twice; the enclosed cells free and closed in (each
// neighbour of an enclosed cell is enclosed or a block).
void expect_closed(const WallLayout& w) {
  EXPECT_EQ(as_set(w.blocks).size(), w.blocks.size()) << "a block twice";
  for (const WallCell& b : w.blocks) {
    EXPECT_TRUE(b.i >= 0 && b.i < kWallColumns && b.j >= 0 && b.j < kWallRows);
    EXPECT_FALSE(has(w.inside, b.i, b.j));
  }
  ASSERT_FALSE(w.inside.empty());
  for (const WallCell& c : w.inside) {
    const int next[4][2] = {{c.i + 1, c.j}, {c.i - 1, c.j}, {c.i, c.j + 1}, {c.i, c.j - 1}};
    for (const auto& n : next) EXPECT_TRUE(has(w.inside, n[0], n[1]) || has(w.blocks, n[0], n[1]));
  }
}

TEST(Walls, OAndIAreTheGridsBorder) {
  Rng rng(1, 0);
  for (const WallShape s : {WallShape::kO, WallShape::kI}) {
    const WallLayout w = draw_walls(s, rng);
    expect_closed(w);
    EXPECT_EQ(w.blocks.size(), 28u);
    EXPECT_EQ(w.inside.size(), 35u);  // 7 x 5
    for (const WallCell& b : w.blocks)
      EXPECT_TRUE(b.i == 0 || b.i == kWallColumns - 1 || b.j == 0 || b.j == kWallRows - 1);
  }
}

// 5 x 3 x 4 = 60 layouts of 28 blocks; pushing an h x v corner in leaves 35 - (h-1)(v-1) cells.
TEST(Walls, LHasSixtyLayouts) {
  Rng rng(test::fresh_seed(), 0);
  std::set<std::set<std::pair<int, int>>> layouts;
  std::set<size_t> inside_sizes;
  for (int n = 0; n < 3000; ++n) {
    const WallLayout w = draw_walls(WallShape::kL, rng);
    expect_closed(w);
    EXPECT_EQ(w.blocks.size(), 28u);
    layouts.insert(as_set(w.blocks));
    inside_sizes.insert(w.inside.size());
    // exactly one corner cell of the grid is outside the walls
    int corners_out = 0;
    for (const auto& c :
         {std::pair{0, 0}, {kWallColumns - 1, 0}, {0, kWallRows - 1}, {kWallColumns - 1, kWallRows - 1}})
      corners_out += !has(w.blocks, c.first, c.second);
    EXPECT_EQ(corners_out, 1);
  }
  EXPECT_EQ(layouts.size(), 60u);
  std::set<size_t> expected;
  for (int h = 2; h <= 6; ++h)
    for (int v = 2; v <= 4; ++v) expected.insert(static_cast<size_t>(35 - (h - 1) * (v - 1)));
  EXPECT_EQ(inside_sizes, expected);
}

// The authors' first orientation, cell by cell: the inner corner block at (h-1, v-1) = (2, 1).
TEST(Walls, LMatchesTheGeneratorsTopLeftCorner) {
  bool found = false;
  for (uint64_t seed = 0; seed < 100000 && !found; ++seed) {
    Rng rng(seed, 0);
    const WallLayout w = draw_walls(WallShape::kL, rng);
    // top left, h = 3, v = 2: the corner (0, 0) out, (1, 0) out and (2, 0) in, the inner row 1
    if (has(w.blocks, 0, 0) || has(w.blocks, 1, 0) || !has(w.blocks, 2, 0) || !has(w.blocks, 2, 1) ||
        has(w.blocks, 3, 1) || has(w.blocks, 2, 2))
      continue;
    found = true;
    // h = 3, v = 2, top left: the top border from column 2 on, the left border from row 1 on
    const std::set<std::pair<int, int>> expected = [] {
      std::set<std::pair<int, int>> s;
      for (int i = 2; i < 9; ++i) s.insert({i, 0});
      for (int j = 0; j < 7; ++j) s.insert({8, j});
      for (int i = 0; i < 8; ++i) s.insert({i, 6});
      for (int j = 1; j < 6; ++j) s.insert({0, j});
      s.insert({1, 1});
      s.insert({2, 1});
      return s;
    }();
    EXPECT_EQ(as_set(w.blocks), expected);
    EXPECT_EQ(w.inside.size(), 33u);
  }
  EXPECT_TRUE(found) << "no L of h = 3, v = 2 at the top left in 100,000 draws";
}

// 8 layouts: a bar of 3 blocks from the top or bottom at column 3, 4 or 5, or from the left or
// right at row 3; 31 blocks (data_process.lua's 33 objects with the 2 balls).
TEST(Walls, UHasEightLayouts) {
  Rng rng(test::fresh_seed(), 0);
  std::set<std::set<std::pair<int, int>>> layouts;
  for (int n = 0; n < 1000; ++n) {
    const WallLayout w = draw_walls(WallShape::kU, rng);
    expect_closed(w);
    EXPECT_EQ(w.blocks.size(), 31u);
    EXPECT_EQ(w.inside.size(), 32u);
    layouts.insert(as_set(w.blocks));
  }
  EXPECT_EQ(layouts.size(), 8u);
  bool top_at_4 = false;
  for (const auto& l : layouts) top_at_4 |= l.count({4, 1}) && l.count({4, 2}) && l.count({4, 3});
  EXPECT_TRUE(top_at_4);
}

TEST(Walls, ObstaclesAndPlacement) {
  Rng rng(3, 0);
  const WallLayout w = draw_walls(WallShape::kO, rng);
  const auto o = w.obstacles();
  ASSERT_EQ(o.size(), 28u);
  for (const auto& b : o) {
    EXPECT_EQ(b.kind, gpu::Obstacle::Kind::kBox);
    EXPECT_EQ(b.bx, 40);
    EXPECT_EQ(b.by, 40);
  }
  EXPECT_EQ(wall_cell_x(0), 80);
  EXPECT_EQ(wall_cell_x(8), 720);
  EXPECT_EQ(wall_cell_y(0), 60);
  EXPECT_EQ(wall_cell_y(6), 540);
  // the box's centre cell holds a ball of radius 60; next to a wall (40 px from its face) not
  EXPECT_TRUE(w.holds(400, 300, 60));
  EXPECT_FALSE(w.holds(wall_cell_x(1), wall_cell_y(3), 60));
  EXPECT_TRUE(w.holds(wall_cell_x(1) + 30, wall_cell_y(3), 60));
  EXPECT_FALSE(w.holds(wall_cell_x(0), wall_cell_y(3), 10));  // inside a block
  EXPECT_FALSE(w.holds(10, 10, 1));                           // outside the walls
}

TEST(Walls, ShapesByName) {
  for (const char* n : {"O", "L", "U", "I"}) EXPECT_STREQ(wall_shape_name(parse_wall_shape(n)), n);
  try {
    parse_wall_shape("T");
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "walls");
    EXPECT_NE(std::string(e.what()).find("found 'T'"), std::string::npos);
  }
}

}  // namespace
}  // namespace npe::datagen
