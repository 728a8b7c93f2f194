// The walls worlds' walls (walls.h), cell by cell as the authors' generator lays its blocks.
#include "npe/datagen/walls.h"

#include <algorithm>
#include <array>
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

namespace {
gpu::Obstacle block_at(double x, double y) {
  gpu::Obstacle ob;
  ob.kind = gpu::Obstacle::Kind::kBox;
  ob.ax = x;
  ob.ay = y;
  ob.bx = ob.by = kWallBlock / 2;
  return ob;
}
}  // namespace

std::vector<gpu::Obstacle> WallLayout::obstacles() const {
  std::vector<gpu::Obstacle> o;
  for (const WallCell& b : blocks) o.push_back(block_at(wall_cell_x(b.i), wall_cell_y(b.j)));
  for (const FreeBlock& f : free_blocks) o.push_back(block_at(f.x, f.y));
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

void place_free_blocks(WallLayout& w, const std::vector<gpu::BallInit>& balls, double radius, Rng& rng, int64_t scene,
                       int max_tries) {
  w.free_blocks.clear();
  if (w.shape != WallShape::kI) return;
  // the enclosed cells' span, and a block's reach from its centre
  double lo_x = 1e300, hi_x = -1e300, lo_y = 1e300, hi_y = -1e300;
  for (const WallCell& c : w.inside) {
    lo_x = std::min(lo_x, wall_cell_x(c.i) - kWallBlock / 2), hi_x = std::max(hi_x, wall_cell_x(c.i) + kWallBlock / 2);
    lo_y = std::min(lo_y, wall_cell_y(c.j) - kWallBlock / 2), hi_y = std::max(hi_y, wall_cell_y(c.j) + kWallBlock / 2);
  }
  const double half = kWallBlock / 2, diagonal = half * std::sqrt(2.0), margin = 1.1;
  int tries = 0;
  while (static_cast<int>(w.free_blocks.size()) < kIFreeBlocks) {
    if (++tries > max_tries)
      throw Error(fmt::format("scene {}: could not place the I walls' {} free blocks among {} balls of radius {} px "
                              "after {} draws",
                              scene, kIFreeBlocks, balls.size(), radius, max_tries));
    const FreeBlock f{rng.uniform(lo_x + half, hi_x - half), rng.uniform(lo_y + half, hi_y - half)};
    bool ok = true;
    for (const gpu::BallInit& b : balls) {
      const double d = margin * (radius + diagonal);
      if ((b.x - f.x) * (b.x - f.x) + (b.y - f.y) * (b.y - f.y) < d * d) ok = false;
    }
    for (const FreeBlock& g : w.free_blocks) {
      const double d = margin * 2 * diagonal;
      if ((g.x - f.x) * (g.x - f.x) + (g.y - f.y) * (g.y - f.y) < d * d) ok = false;
    }
    if (ok) w.free_blocks.push_back(f);
  }
}

void record_walls(const WallLayout& w, double pos_scale, float* out) {
  std::fill(out, out + kWallSlots * kWallDim, 0.0f);
  const std::vector<gpu::Obstacle> blocks = w.obstacles();
  if (blocks.size() > static_cast<size_t>(kWallSlots))
    throw Error(fmt::format("walls of {} blocks: a dataset records at most {}", blocks.size(), kWallSlots));
  for (size_t k = 0; k < blocks.size(); ++k) {
    float* row = out + k * kWallDim;
    row[0] = static_cast<float>(blocks[k].ax / pos_scale);
    row[1] = static_cast<float>(blocks[k].ay / pos_scale);
    row[2] = static_cast<float>(blocks[k].bx / pos_scale);
    row[3] = static_cast<float>(static_cast<int>(w.shape) + 1);
  }
}

WallLayout recorded_walls(const float* rows, double pos_scale) {
  WallLayout w;
  for (int k = 0; k < kWallSlots; ++k) {
    const float* row = rows + k * kWallDim;
    if (!(row[2] > 0)) continue;
    const bool whole = row[3] >= 1 && row[3] <= 4 && row[3] == std::floor(row[3]);  // before the cast
    const int code = whole ? static_cast<int>(row[3]) : 0;
    if (!whole || std::abs(row[2] * pos_scale - kWallBlock / 2) > 1e-3)
      throw Error(fmt::format("recorded walls row {}: expected a block of half side {} px and a shape code 1-4, found "
                              "half side {} px and code {}",
                              k, kWallBlock / 2, row[2] * pos_scale, row[3]));
    w.shape = static_cast<WallShape>(code - 1);
    const double x = row[0] * pos_scale, y = row[1] * pos_scale;
    const double fi = (x - wall_cell_x(0)) / kWallBlock, fj = (y - wall_cell_y(0)) / kWallBlock;
    const int i = static_cast<int>(std::lround(fi)), j = static_cast<int>(std::lround(fj));
    // grid blocks come first and lie on the grid (float32 rounding: within 1e-3 px)
    if (w.free_blocks.empty() && std::abs(fi - i) * kWallBlock < 1e-3 && std::abs(fj - j) * kWallBlock < 1e-3 &&
        i >= 0 && i < kWallColumns && j >= 0 && j < kWallRows)
      w.blocks.push_back({i, j});
    else
      w.free_blocks.push_back({x, y});
  }
  w.inside = enclosed(w.blocks);
  return w;
}

std::vector<std::array<double, 2>> WallLayout::room_outline() const {
  // The boundary edges of the enclosed cells, each cell walked (x0,y0) (x0,y1) (x1,y1) (x1,y0), so
  // that the cell lies right of each edge; edges between two enclosed cells are left out. Grid
  // corners are indexed (i, j) in [0, columns] x [0, rows].
  auto is_inside = [&](int i, int j) {
    return std::find(inside.begin(), inside.end(), WallCell{i, j}) != inside.end();
  };
  const int W = kWallColumns + 1;
  std::vector<int> next(W * (kWallRows + 1), -1);  // corner -> the corner its boundary edge leads to
  auto add = [&](int a, int b) {
    if (next[a] != -1) throw Error("walls: enclosed cells touch only at a corner; their outline is not one loop");
    next[a] = b;
  };
  for (const WallCell& c : inside) {
    const int c00 = c.j * W + c.i, c01 = (c.j + 1) * W + c.i, c11 = (c.j + 1) * W + c.i + 1, c10 = c.j * W + c.i + 1;
    if (!is_inside(c.i - 1, c.j)) add(c00, c01);
    if (!is_inside(c.i, c.j + 1)) add(c01, c11);
    if (!is_inside(c.i + 1, c.j)) add(c11, c10);
    if (!is_inside(c.i, c.j - 1)) add(c10, c00);
  }
  int start = -1, edges = 0;
  for (int k = 0; k < static_cast<int>(next.size()); ++k)
    if (next[k] != -1) start = start == -1 ? k : start, ++edges;
  std::vector<std::array<double, 2>> loop;
  if (start == -1) return loop;
  auto corner = [&](int k) {
    return std::array<double, 2>{wall_cell_x(k % W) - kWallBlock / 2, wall_cell_y(k / W) - kWallBlock / 2};
  };
  int k = start, walked = 0;
  do {
    loop.push_back(corner(k));
    k = next[k];
    ++walked;
  } while (k != start && walked <= edges);
  if (walked != edges || walked < 4) throw Error("walls: the enclosed cells' outline is not one loop");
  // corners only: the vertices where the outline turns
  std::vector<std::array<double, 2>> corners;
  const size_t n = loop.size();
  for (size_t v = 0; v < n; ++v) {
    const auto& a = loop[(v + n - 1) % n];
    const auto& b = loop[v];
    const auto& c = loop[(v + 1) % n];
    const double cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
    if (cross != 0) corners.push_back(b);
  }
  return corners;
}

std::vector<WallShape> parse_wall_shapes(const std::string& list) {
  std::vector<WallShape> shapes;
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    const std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty())
      throw FieldError("walls", fmt::format(": expected a list of wall shapes such as O,L, found an empty item in "
                                            "'{}'",
                                            list));
    const WallShape s = parse_wall_shape(item);
    if (std::find(shapes.begin(), shapes.end(), s) != shapes.end())
      throw FieldError("walls", fmt::format(": shape {} listed twice in '{}'", item, list));
    shapes.push_back(s);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return shapes;
}

std::string format_wall_shapes(const std::vector<WallShape>& shapes) {
  std::string s;
  for (WallShape w : shapes) s += (s.empty() ? "" : ",") + std::string(wall_shape_name(w));
  return s;
}

}  // namespace npe::datagen
