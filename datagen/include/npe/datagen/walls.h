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

#include <array>
#include <string>
#include <vector>

#include "npe/core/rng.h"
#include "npe/gpu/obstacles.h"
#include "npe/gpu/scenes.h"

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

// A block off the grid (the I walls' free blocks), centred at (x, y) px.
struct FreeBlock {
  double x = 0, y = 0;
};
// The I walls' free blocks per scene.
constexpr int kIFreeBlocks = 2;

// One scene's walls: the cells of its blocks and those of the free space inside them (for an L,
// the pushed-in corner is outside), and the I walls' free blocks.
struct WallLayout {
  WallShape shape = WallShape::kO;
  std::vector<WallCell> blocks;        // wall blocks, no cell twice
  std::vector<WallCell> inside;        // the cells enclosed by the blocks
  std::vector<FreeBlock> free_blocks;  // I only, placed by place_free_blocks
  // Every block (grid blocks, then free blocks) as the engine's and npe-render's obstacles:
  // axis-aligned boxes, half extents 40 px.
  std::vector<gpu::Obstacle> obstacles() const;
  // Whether a ball of `radius` px centred at (x, y) px lies in the enclosed cells, clear of every
  // block (free blocks included).
  bool holds(double x, double y, double radius) const;
  // The outline of the enclosed cells (px, corners only), the surface the balls meet: a closed
  // loop (the last vertex joins the first) along which the enclosed space lies to the right, in
  // Box2D's sense: right of the direction (ex, ey) is (ey, -ex). Simulators collide with it instead
  // of the blocks' boxes, whose seams a ball sliding along a wall would catch on (ghost collisions
  // that gained up to 2% kinetic energy in Box2D). Throws npe::Error on cells touching only at a
  // corner (no layout of draw_walls has them).
  std::vector<std::array<double, 2>> room_outline() const;
};

// Draws a scene's walls of `shape` from `rng` (L and U draw their layout; O and I draw nothing:
// I's free blocks are placed with the balls).
WallLayout draw_walls(WallShape shape, Rng& rng);

// Places the I walls' kIFreeBlocks free blocks after the scene's balls (radius `radius` px), as the
// authors' generator does (initialize_positions_variable_size with the margin 1.1): centres
// uniform over the enclosed cells' span, each block inside the enclosed space, and every pair of
// objects at least 1.1 (s_a + s_b) apart, s a ball's radius or a block's half diagonal 40 sqrt(2).
// Throws npe::Error naming the scene when `max_tries` draws place none.
void place_free_blocks(WallLayout& walls, const std::vector<gpu::BallInit>& balls, double radius, Rng& rng,
                       int64_t scene, int max_tries = 100000);

// A dataset's record of a scene's walls (P_<split>_walls.npy, datagen/dataset.h): kWallSlots rows
// of kWallDim values, a block per row (the grid blocks, then the free blocks) and zero rows after:
//   x / pos_scale, y / pos_scale   the block's centre, normalised as the balls' positions
//   half / pos_scale               half its side (40 px): > 0 marks a block, 0 an empty row
//   shape                          the scene's wall shape, 1 O, 2 L, 3 U, 4 I (0 on empty rows)
constexpr int kWallSlots = 32;  // U has 31 blocks, I 30
constexpr int kWallDim = 4;
// Writes `walls` as kWallSlots x kWallDim floats into `out`.
void record_walls(const WallLayout& walls, double pos_scale, float* out);
// The walls of a recorded scene (kWallSlots x kWallDim floats, record_walls) back: its shape, its
// grid blocks and enclosed cells, its free blocks. Throws npe::Error on rows record_walls does not
// write (a shape code outside 1-4, a block of another size).
WallLayout recorded_walls(const float* rows, double pos_scale);
// Parses a list such as "O,L" (npe-datagen --walls); throws npe::FieldError on "walls".
std::vector<WallShape> parse_wall_shapes(const std::string& list);
std::string format_wall_shapes(const std::vector<WallShape>& shapes);  // "O,L"

}  // namespace npe::datagen
