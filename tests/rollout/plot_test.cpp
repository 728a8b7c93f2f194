#include "npe/rollout/plot.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "npe/core/io.h"
#include "test_util.h"

namespace npe::rollout {
namespace {

TEST(Plot, WritesAPng) {
  test::TempDir dir;
  Panel a{"a", "x", "y", false, {{"line", {1, 2, 3}, {0.5, 0.7, 0.6}, 1, false}}};
  Panel b{"b", "x", "y", true, {{"log", {1, 2, 3}, {1e-3, 1e-2, 1e-1}, 2, true}}};
  write_plot_png(dir / "p.png", {a, b}, 800, 400);
  const std::string bytes = read_file(dir / "p.png");
  ASSERT_GT(bytes.size(), 1000u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  // only the final file is left
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path)) {
    (void)e;
    ++n;
  }
  EXPECT_EQ(n, 1);
}

TEST(Plot, UnwritablePathIsAnError) {
  test::TempDir dir;
  write_file_atomic(dir / "file", "x");
  Panel a{"a", "x", "y", false, {{"line", {1, 2}, {1, 2}, 1, false}}};
  EXPECT_THROW(write_plot_png(dir / "file/p.png", {a}), Error);
}

}  // namespace
}  // namespace npe::rollout
