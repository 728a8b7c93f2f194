#include "npe/rollout/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <plplot/plstream.h>
#include <unistd.h>

#include "npe/core/io.h"

namespace npe::rollout {
namespace fs = std::filesystem;

void write_plot_png(const std::string& path, const std::vector<Panel>& panels, int width, int height) {
  TempOutput out(path);  // refuses a device or FIFO target; removed unless committed
  const fs::path tmp = out.temp();
  {
    plstream pls;
    pls.sdev("pngcairo");
    pls.sfnam(tmp.c_str());
    pls.setopt("geometry", fmt::format("{}x{}", width, height).c_str());
    // palette: 0 background (white), 15 axes (black), 1..8 series
    pls.scol0(0, 255, 255, 255);
    const int palette[][3] = {{0, 0, 0},      {31, 119, 180},  {214, 39, 40},  {44, 160, 44}, {148, 103, 189},
                              {255, 127, 14}, {127, 127, 127}, {23, 190, 207}, {188, 189, 34}};
    for (int i = 1; i <= 8; ++i) pls.scol0(i, palette[i][0], palette[i][1], palette[i][2]);
    pls.scol0(15, 0, 0, 0);
    pls.ssub(static_cast<PLINT>(panels.size()), 1);
    pls.init();
    pls.fontld(1);
    for (const Panel& p : panels) {
      pls.adv(0);
      // room below the axes for the x label and the legend, which never covers a curve
      pls.vpor(0.17, 0.95, 0.4, 0.9);
      // data ranges over finite (and, for log axes, positive) points
      double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
      std::vector<std::pair<std::vector<PLFLT>, std::vector<PLFLT>>> pts;
      for (const Series& s : p.series) {
        std::vector<PLFLT> xs, ys;
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
          double y = s.y[i];
          if (!std::isfinite(s.x[i]) || !std::isfinite(y) || (p.log_y && y <= 0)) continue;
          if (p.log_y) y = std::log10(y);
          xs.push_back(s.x[i]);
          ys.push_back(y);
          x0 = std::min(x0, s.x[i]);
          x1 = std::max(x1, s.x[i]);
          y0 = std::min(y0, y);
          y1 = std::max(y1, y);
        }
        pts.emplace_back(std::move(xs), std::move(ys));
      }
      if (!(x0 <= x1)) {
        x0 = 0;
        x1 = 1;
        y0 = 0;
        y1 = 1;
      }
      if (x1 - x0 < 1e-12) x1 = x0 + 1;
      if (y1 - y0 < 1e-12) {
        y0 -= 0.5;
        y1 += 0.5;
      }
      const double pad = 0.05 * (y1 - y0);
      pls.col0(15);
      pls.wind(x0, x1, y0 - pad, y1 + pad);
      // Log axes are drawn as log10 values with plain tick labels: PLplot's own log labels
      // appear only at whole decades, and training curves often span less than one.
      pls.box("bcnstg", 0, 0, "bcnstvg", 0, 0);
      const std::string ylabel = p.log_y ? "log#d10#u " + p.ylabel : p.ylabel;
      pls.lab(p.xlabel.c_str(), ylabel.c_str(), p.title.c_str());
      std::vector<PLINT> opts, colors, styles;
      std::vector<PLFLT> widths;
      std::vector<const char*> labels;
      for (size_t i = 0; i < p.series.size(); ++i) {
        const Series& s = p.series[i];
        pls.col0(s.color);
        pls.lsty(s.dashed ? 2 : 1);
        pls.width(2.0);
        if (pts[i].first.size() >= 2)
          pls.line(static_cast<PLINT>(pts[i].first.size()), pts[i].first.data(), pts[i].second.data());
        opts.push_back(PL_LEGEND_LINE);
        colors.push_back(s.color);
        styles.push_back(s.dashed ? 2 : 1);
        widths.push_back(2.0);
        labels.push_back(s.label.c_str());
      }
      pls.lsty(1);
      pls.width(1.0);
      if (!labels.empty()) {
        PLFLT lw, lh;
        std::vector<PLINT> text_colors(labels.size(), 15);
        // outside the plot area, under the x label, in rows of at most two entries
        const auto n = static_cast<PLINT>(labels.size());
        const PLINT columns = std::min<PLINT>(n, 2), rows = (n + columns - 1) / columns;
        pls.legend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX | PL_LEGEND_ROW_MAJOR,
                   PL_POSITION_OUTSIDE | PL_POSITION_BOTTOM, 0.0, 0.3, 0.08, 0, 15, 1, rows, columns, n, opts.data(),
                   1.0, 0.8, 2.0, 0.0, text_colors.data(), labels.data(), nullptr, nullptr, nullptr, nullptr,
                   colors.data(), styles.data(), widths.data(), nullptr, nullptr, nullptr, nullptr);
      }
    }
  }  // plstream's destructor finishes the PNG
  std::error_code ec;
  if (!fs::exists(tmp) || fs::file_size(tmp, ec) == 0)
    throw Error(fmt::format("cannot write plot '{}': PLplot produced no file", path));
  out.commit();
}

}  // namespace npe::rollout
