// npe/rollout/plot.h: PNG line plots through PLplot (pngcairo device).
#pragma once

#include <string>
#include <vector>

namespace npe::rollout {

struct Series {
  std::string label;
  std::vector<double> x, y;  // same length; non-finite points are skipped
  int color = 1;             // index into the plot palette (1..8)
  bool dashed = false;
};

struct Panel {
  std::string title, xlabel, ylabel;
  bool log_y = false;  // plot log10(y), labelled "log10 <ylabel>"; non-positive y skipped
  std::vector<Series> series;
};

// Draws the panels side by side into a PNG of width x height pixels, written atomically.
// A panel without plottable points is drawn as empty axes. Throws npe::Error naming `path` if it
// cannot be written. (PLplot itself ends the process on internal errors it cannot recover from.)
void write_plot_png(const std::string& path, const std::vector<Panel>& panels, int width = 1200, int height = 480);

}  // namespace npe::rollout
