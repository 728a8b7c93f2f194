#include "npe/datagen/engine_world.h"
#include "npe/rollout/video.h"

#include <random>

#include <gtest/gtest.h>

#include "npe/core/io.h"
#include "test_util.h"

namespace npe::rollout {
namespace {

datagen::Trajectories random_traj(int64_t scenes, int64_t T, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.1f, 0.6f);
  datagen::Trajectories t;
  t.scenes = scenes;
  t.timesteps = T;
  t.num_balls = 3;
  t.data.resize(scenes * T * 3 * 5);
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = i % 5 == 4 ? (i % 3 ? 1.0f : 25.0f) : u(rng);
  return t;
}

TEST(Video, EncodedFileDecodesWithTheRightFramesAndSize) {
  test::TempDir dir;
  auto a = random_traj(2, 13, test::fresh_seed()), b = random_traj(2, 13, test::fresh_seed());
  VideoOptions o;
  const auto [w, h] = write_comparison_video(dir / "v.mp4", {{"ground truth", &a, 1}, {"classic", &b, 1}}, 13, o);
  EXPECT_EQ(w % 2, 0);
  EXPECT_EQ(h % 2, 0);
  const VideoInfo info = probe_video(dir / "v.mp4");
  EXPECT_EQ(info.frames, 13);
  EXPECT_EQ(info.width, w);
  EXPECT_EQ(info.height, h);
  EXPECT_EQ(info.codec, "h264");
  EXPECT_EQ(info.pix_fmt, "yuv420p");
}

TEST(Video, OddFrameSizeAndUnwritablePathAreErrors) {
  test::TempDir dir;
  EXPECT_THROW(VideoWriter(dir / "x.mp4", 101, 100, 10), Error);
  write_file_atomic(dir / "file", "x");
  EXPECT_THROW(VideoWriter(dir / "file/x.mp4", 100, 100, 10), Error);
}

TEST(Video, AbandonedWriterLeavesNoFile) {
  test::TempDir dir;
  {
    VideoWriter v(dir / "x.mp4", 64, 48, 10);
    std::vector<uint8_t> frame(64 * 48 * 4, 128);
    v.write_frame(frame.data(), 64 * 4);
  }  // destroyed without close(), e.g. after an error
  EXPECT_FALSE(std::filesystem::exists(dir.path / "x.mp4"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path));
}

}  // namespace
}  // namespace npe::rollout
