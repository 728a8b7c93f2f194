// Tests of npe/datagen/walls.h: the four wall shapes cell by cell, their layouts' counts, the
// enclosed cells, the placement test, I's free blocks, the room outline and the dataset record.
#include "npe/datagen/walls.h"

#include <algorithm>
#include <cmath>
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

// The outline encloses exactly the enclosed cells: axis-aligned edges, corners only, a shoelace
// area of 6400 px^2 per cell, the room right of each edge (Box2D's chain normal), and every
// boundary point of an enclosed cell that faces a block on it. O: a rectangle; L: 6 corners; U:
// the rectangle with a 3-cell slit, 8 corners.
TEST(Walls, RoomOutlineEnclosesTheCells) {
  Rng rng(test::fresh_seed(), 0);
  for (const WallShape shape : {WallShape::kO, WallShape::kL, WallShape::kU, WallShape::kI})
    for (int n = 0; n < 50; ++n) {
      const WallLayout w = draw_walls(shape, rng);
      const auto loop = w.room_outline();
      const size_t m = loop.size();
      const size_t corners = shape == WallShape::kL ? 6 : shape == WallShape::kU ? 8 : 4;
      ASSERT_EQ(m, corners) << wall_shape_name(shape);
      double area2 = 0;  // twice the signed area
      for (size_t v = 0; v < m; ++v) {
        const auto &a = loop[v], &b = loop[(v + 1) % m];
        EXPECT_TRUE(a[0] == b[0] || a[1] == b[1]) << "an edge not axis-aligned";
        area2 += a[0] * b[1] - b[0] * a[1];
        // the point just right of the edge's middle lies in an enclosed cell, the one left of it not
        const double ex = b[0] - a[0], ey = b[1] - a[1], len = std::hypot(ex, ey);
        const double mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2;
        auto in_room = [&](double x, double y) {
          const int i = static_cast<int>(std::floor((x - wall_cell_x(0) + kWallBlock / 2) / kWallBlock));
          const int j = static_cast<int>(std::floor((y - wall_cell_y(0) + kWallBlock / 2) / kWallBlock));
          return has(w.inside, i, j);
        };
        EXPECT_TRUE(in_room(mx + ey / len, my - ex / len));
        EXPECT_FALSE(in_room(mx - ey / len, my + ex / len));
      }
      // walked with the room on the right in y-up terms: a clockwise loop, negative signed area
      EXPECT_DOUBLE_EQ(-area2 / 2, kWallBlock * kWallBlock * static_cast<double>(w.inside.size()));
    }
}

// I's two free blocks: inside the walls, clear of the balls and of each other by the authors'
// margin, 1.1 times the sum of the sizes (a block's size its half diagonal); other shapes have none.
TEST(Walls, IFreeBlocksArePlacedAmongTheBalls) {
  const uint64_t seed = test::fresh_seed();
  Rng rng(seed, 0);
  const double r = 60, diag = 40 * std::sqrt(2.0);
  for (int n = 0; n < 200; ++n) {
    WallLayout w = draw_walls(WallShape::kI, rng);
    std::vector<gpu::BallInit> balls;
    while (balls.size() < 2) {
      const double x = rng.uniform(r, 800 - r), y = rng.uniform(r, 600 - r);
      if (w.holds(x, y, r) && (balls.empty() || std::hypot(balls[0].x - x, balls[0].y - y) >= 2.2 * r))
        balls.push_back({x, y, 0, 0, 1});
    }
    place_free_blocks(w, balls, r, rng, n);
    ASSERT_EQ(w.free_blocks.size(), static_cast<size_t>(kIFreeBlocks)) << "seed " << seed;
    EXPECT_EQ(w.obstacles().size(), 30u);
    for (const FreeBlock& f : w.free_blocks) {
      EXPECT_GE(f.x - 40, 120 - 1e-9);  // within the ring's inner faces
      EXPECT_LE(f.x + 40, 680 + 1e-9);
      EXPECT_GE(f.y - 40, 100 - 1e-9);
      EXPECT_LE(f.y + 40, 500 + 1e-9);
      for (const auto& b : balls) EXPECT_GE(std::hypot(b.x - f.x, b.y - f.y), 1.1 * (r + diag));
      // a ball placed after them must clear them: holds() sees the free blocks
      EXPECT_FALSE(w.holds(f.x, f.y, 1));
    }
    EXPECT_GE(std::hypot(w.free_blocks[0].x - w.free_blocks[1].x, w.free_blocks[0].y - w.free_blocks[1].y),
              1.1 * 2 * diag);
  }
  WallLayout o = draw_walls(WallShape::kO, rng);
  place_free_blocks(o, {}, r, rng, 0);
  EXPECT_TRUE(o.free_blocks.empty());
}

// record_walls and recorded_walls are inverses: the shape, the grid blocks, the free blocks and
// the enclosed cells come back; empty rows after the blocks are zero.
TEST(Walls, RecordRoundTrips) {
  Rng rng(test::fresh_seed(), 0);
  for (const WallShape shape : {WallShape::kO, WallShape::kL, WallShape::kU, WallShape::kI}) {
    WallLayout w = draw_walls(shape, rng);
    if (shape == WallShape::kI) w.free_blocks = {{250.5, 310.25}, {530, 180}};
    std::vector<float> rows(kWallSlots * kWallDim, 9.0f);
    record_walls(w, 800, rows.data());
    const size_t used = w.obstacles().size();
    for (size_t k = used; k < static_cast<size_t>(kWallSlots); ++k)
      for (int c = 0; c < kWallDim; ++c) EXPECT_EQ(rows[k * kWallDim + c], 0.0f);
    EXPECT_EQ(rows[3], static_cast<float>(static_cast<int>(shape) + 1));
    EXPECT_FLOAT_EQ(rows[2] * 800, 40);
    const WallLayout back = recorded_walls(rows.data(), 800);
    EXPECT_EQ(back.shape, shape);
    EXPECT_EQ(as_set(back.blocks), as_set(w.blocks));
    EXPECT_EQ(as_set(back.inside), as_set(w.inside));
    ASSERT_EQ(back.free_blocks.size(), w.free_blocks.size());
    for (size_t k = 0; k < w.free_blocks.size(); ++k) {
      EXPECT_NEAR(back.free_blocks[k].x, w.free_blocks[k].x, 1e-3);
      EXPECT_NEAR(back.free_blocks[k].y, w.free_blocks[k].y, 1e-3);
    }
  }
  std::vector<float> bad(kWallSlots * kWallDim, 0.0f);
  bad[2] = 40.0f / 800, bad[3] = 7;
  EXPECT_THROW(recorded_walls(bad.data(), 800), Error);
}

TEST(Walls, ShapeLists) {
  const auto shapes = parse_wall_shapes("O,L");
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(format_wall_shapes(shapes), "O,L");
  EXPECT_EQ(format_wall_shapes(parse_wall_shapes("I")), "I");
  for (const char* bad : {"", "O,", ",L", "O,O", "O;L"}) {
    try {
      parse_wall_shapes(bad);
      FAIL() << bad;
    } catch (const FieldError& e) {
      EXPECT_EQ(e.field(), "walls") << bad;
    }
  }
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
