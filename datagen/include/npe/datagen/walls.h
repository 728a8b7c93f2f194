// npe/datagen/walls.h: the walls of Chang et al. 2017's walls worlds (arXiv:1612.00341, section
// 4): balls in an 800 x 600 px box inside walls of static 80 px square blocks on a 9 x 7 grid,
// shaped
//   O  the grid's border, a ring of 28 blocks (the same in every scene);
//   L  the ring with one corner pushed in by h x v cells (h in 2..6, v in 2..4, any corner:
//      60 layouts), still 28 blocks;
//   U  the ring with a bar of 3 blocks sticking in from one side (from the top or the bottom at
//      column 3, 4 or 5, from the left or the right at the middle row: 8 layouts), 31 blocks;
//   I  the ring with 2 free blocks inside (placed with the balls, not here).
// as the authors' generator builds them (github.com/mbchang/dynamics, src/js/demo/js/Examples.js,
// Walls.create_obstacle_L and Walls.create_obstacle_U), read cell by cell. Models are trained on
// O and L and tested on U and I.
#pragma once

#include <string>
#include <vector>

#include "npe/core/rng.h"
#include "npe/gpu/obstacles.h"

namespace npe::datagen {

enum class WallShape { kO, kL, kU, kI };

// "O", "L", "U" or "I"; throws npe::FieldError on the field "walls" otherwise.
WallShape parse_wall_shape(const std::string& name);
const char* wall_shape_name(WallShape shape);

// The grid: cell (i, j), i in [0, 9) from the left and j in [0, 7) from the top, is the 80 px
// square centred at (80 + 80 i, 60 + 80 j) px in the 800 x 600 px box.
constexpr double kWallBlock = 80;  // px, a block's side
constexpr int kWallColumns = 9, kWallRows = 7;
constexpr double kWallBoxWidth = 800, kWallBoxHeight = 600;  // px
struct WallCell {
  int i = 0, j = 0;
  bool operator==(const WallCell& o) const { return i == o.i && j == o.j; }
};
double wall_cell_x(int i);  // centre, px
double wall_cell_y(int j);

// One scene's walls: the cells of its blocks and those of the free space inside them (for an L,
// the pushed-in corner is outside).
struct WallLayout {
  WallShape shape = WallShape::kO;
  std::vector<WallCell> blocks;  // wall blocks, no cell twice
  std::vector<WallCell> inside;  // the cells enclosed by the blocks
  // The blocks as the engine's and npe-render's obstacles: axis-aligned boxes, half extents 40 px.
  std::vector<gpu::Obstacle> obstacles() const;
  // Whether a ball of `radius` px centred at (x, y) px lies in the enclosed cells, clear of every
  // block.
  bool holds(double x, double y, double radius) const;
};

// Draws a scene's walls of `shape` from `rng` (L and U draw their layout; O and I draw nothing:
// I's free blocks are placed with the balls).
WallLayout draw_walls(WallShape shape, Rng& rng);

}  // namespace npe::datagen
