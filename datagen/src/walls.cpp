// The walls worlds' walls (walls.h), cell by cell as the authors' generator lays its blocks.
#include "npe/datagen/walls.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::datagen {
namespace {

// The ring of border cells.
std::vector<WallCell> ring() {
  std::vector<WallCell> c;
  for (int i = 0; i < kWallColumns; ++i) c.push_back({i, 0}), c.push_back({i, kWallRows - 1});
  for (int j = 1; j < kWallRows - 1; ++j) c.push_back({0, j}), c.push_back({kWallColumns - 1, j});
  return c;
}

// The L with its top-left corner pushed in by h x v cells (Walls.create_obstacle_L, orientation
// 1): the inner corner block at (h - 1, v - 1), wall running left from it to the border and down
// the left border, up from it to the top border and right along it; the right and bottom borders
// whole.
std::vector<WallCell> l_top_left(int h, int v) {
  std::vector<WallCell> c;
  for (int j = 0; j < kWallRows; ++j) c.push_back({kWallColumns - 1, j});
  for (int i = 0; i < kWallColumns - 1; ++i) c.push_back({i, kWallRows - 1});
  for (int i = 0; i < h; ++i) c.push_back({i, v - 1});
  for (int j = v; j < kWallRows - 1; ++j) c.push_back({0, j});
  for (int j = 0; j < v - 1; ++j) c.push_back({h - 1, j});
  for (int i = h; i < kWallColumns - 1; ++i) c.push_back({i, 0});
  return c;
}

// The free cells the blocks enclose: those not reachable from outside the grid through free cells
// (4-connected).
std::vector<WallCell> enclosed(const std::vector<WallCell>& blocks) {
  // a grid one cell larger on every side, so that "outside" is connected
  const int W = kWallColumns + 2, H = kWallRows + 2;
  std::vector<char> wall(W * H, 0), out(W * H, 0);
  for (const WallCell& b : blocks) wall[(b.j + 1) * W + b.i + 1] = 1;
  std::vector<int> stack{0};
  out[0] = 1;
  while (!stack.empty()) {
    const int k = stack.back();
    stack.pop_back();
    const int x = k % W, y = k / W;
    const int next[4][2] = {{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}};
    for (const auto& n : next) {
      if (n[0] < 0 || n[0] >= W || n[1] < 0 || n[1] >= H) continue;
      const int m = n[1] * W + n[0];
      if (!wall[m] && !out[m]) out[m] = 1, stack.push_back(m);
    }
  }
  std::vector<WallCell> in;
  for (int j = 0; j < kWallRows; ++j)
    for (int i = 0; i < kWallColumns; ++i)
      if (!wall[(j + 1) * W + i + 1] && !out[(j + 1) * W + i + 1]) in.push_back({i, j});
  return in;
}

}  // namespace

WallShape parse_wall_shape(const std::string& name) {
  if (name == "O") return WallShape::kO;
  if (name == "L") return WallShape::kL;
  if (name == "U") return WallShape::kU;
  if (name == "I") return WallShape::kI;
  throw FieldError("walls", fmt::format(": expected O, L, U or I (Chang et al. 2017's wall shapes), found '{}'", name));
}

const char* wall_shape_name(WallShape shape) {
  switch (shape) {
    case WallShape::kO: return "O";
    case WallShape::kL: return "L";
    case WallShape::kU: return "U";
    case WallShape::kI: return "I";
  }
  return "?";
}

double wall_cell_x(int i) { return kWallBlock / 2 + (kWallBoxWidth - kWallColumns * kWallBlock) / 2 + kWallBlock * i; }
double wall_cell_y(int j) { return kWallBlock / 2 + (kWallBoxHeight - kWallRows * kWallBlock) / 2 + kWallBlock * j; }

std::vector<gpu::Obstacle> WallLayout::obstacles() const {
  std::vector<gpu::Obstacle> o;
  for (const WallCell& b : blocks) {
    gpu::Obstacle ob;
    ob.kind = gpu::Obstacle::Kind::kBox;
    ob.ax = wall_cell_x(b.i);
    ob.ay = wall_cell_y(b.j);
    ob.bx = ob.by = kWallBlock / 2;
    o.push_back(ob);
  }
  return o;
}

bool WallLayout::holds(double x, double y, double radius) const {
  const int i = static_cast<int>(std::floor((x - wall_cell_x(0) + kWallBlock / 2) / kWallBlock));
  const int j = static_cast<int>(std::floor((y - wall_cell_y(0) + kWallBlock / 2) / kWallBlock));
  if (std::find(inside.begin(), inside.end(), WallCell{i, j}) == inside.end()) return false;
  return gpu::clear_of_obstacles(obstacles(), radius, x, y);
}

WallLayout draw_walls(WallShape shape, Rng& rng) {
  WallLayout w;
  w.shape = shape;
  if (shape == WallShape::kO || shape == WallShape::kI) {
    w.blocks = ring();
  } else if (shape == WallShape::kL) {
    // random_int(2, 6), random_int(2, 4), random_int(1, 4): inclusive bounds
    const int h = 2 + static_cast<int>(rng.below(5)), v = 2 + static_cast<int>(rng.below(3));
    const int corner = static_cast<int>(rng.below(4));  // top left, top right, bottom right, bottom left
    w.blocks = l_top_left(h, v);
    for (WallCell& c : w.blocks) {  // the other corners are the generator's mirror images
      if (corner == 1 || corner == 2) c.i = kWallColumns - 1 - c.i;
      if (corner == 2 || corner == 3) c.j = kWallRows - 1 - c.j;
    }
  } else {
    w.blocks = ring();
    const int side = static_cast<int>(rng.below(4));        // from the top, left, bottom, right
    const int column = 3 + static_cast<int>(rng.below(3));  // h_offset = random_int(3, 5)
    const int row = 3;                                      // v_offset
    for (int k = 1; k <= 3; ++k) {
      if (side == 0) w.blocks.push_back({column, k});
      if (side == 1) w.blocks.push_back({k, row});
      if (side == 2) w.blocks.push_back({column, kWallRows - 1 - k});
      if (side == 3) w.blocks.push_back({kWallColumns - 1 - k, row});
    }
  }
  w.inside = enclosed(w.blocks);
  return w;
}

}  // namespace npe::datagen
