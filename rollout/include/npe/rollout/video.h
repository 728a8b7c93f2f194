// npe/rollout/video.h: side-by-side rollout videos, drawn with cairo and encoded as H.264
// (yuv420p, MP4) with FFmpeg's libavcodec/libavformat.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "npe/datagen/dataset.h"

namespace npe::rollout {

// VideoWriter: an H.264 MP4 written to a temporary file and renamed into place by close().
// width and height must be even (yuv420p). Frames are BGRA (cairo ARGB32 on little-endian).
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int width, int height, int fps);
  ~VideoWriter();  // abandons (deletes) the temporary file if close() was not called
  void write_frame(const uint8_t* bgra, int stride);
  void close();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One panel of a comparison video: a title and a scene of a trajectory set.
struct VideoPanel {
  std::string title;
  const datagen::Trajectories* traj;
  int64_t scene;
  std::vector<std::array<double, 3>> rings = {};  // outlined circles (x, y, radius; world px), e.g. a goal
};

struct VideoOptions {
  double box_width = 800, box_height = 600, radius = 60;  // px, from the manifest
  double pos_scale = 800;                                 // normalised -> px
  double scale = 0.5;                                     // px of video per px of world
  int fps = 10;                                           // 10 = real time for dt 0.1 s
  double max_mass = 25;                                   // darkest shade
  std::vector<datagen::Obstacle> obstacles;               // static obstacles, px (drawn grey)
};

// Writes `frames` frames (all panels must have at least that many) side by side: panel titles,
// obstacles, balls shaded by mass, a step counter. Returns the frame size {width, height}.
std::pair<int, int> write_comparison_video(const std::string& path, const std::vector<VideoPanel>& panels, int frames,
                                           const VideoOptions& options);

// Decodes a video file back: frame count and size (used by tests and npe-render's summary).
struct VideoInfo {
  int frames = 0, width = 0, height = 0;
  std::string codec, pix_fmt;
};
VideoInfo probe_video(const std::string& path);

}  // namespace npe::rollout
