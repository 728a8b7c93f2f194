// npe-control compare: runs over algorithms and seeds, the table and the learning curves.
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "npe/control/train.h"
#include "npe/core/error.h"
#include "npe/core/io.h"
#include "npe/core/json.h"
#ifdef NPE_HAVE_MEDIA
#include "npe/rollout/plot.h"
#endif

namespace npe::control {
namespace {

namespace fs = std::filesystem;

struct Run {
  uint64_t seed = 0;
  std::vector<ControlMetrics> curve;  // frames, seconds and success of each evaluation
  TrainSummary summary;               // at the comparison's target, which may differ from the run's
};

Run read_run(const nlohmann::json& j, const std::string& source, uint64_t seed, double target) {
  Run r;
  r.seed = seed;
  if (!j.contains("curve") || !j["curve"].is_array()) throw Error(source + ": summary field 'curve' is missing");
  for (const auto& p : j["curve"]) {
    ControlMetrics m;
    m.frames = json_field<int64_t>(p, "frames", source, "curve");
    m.seconds = json_field<double>(p, "seconds", source, "curve");
    m.success = json_field<double>(p, "success", source, "curve");
    r.curve.push_back(m);
  }
  r.summary = summarise(r.curve, target);
  return r;
}

std::string fmt_interval(const Interval& i, double scale, int digits) {
  if (!std::isfinite(i.value)) return "not reached";
  auto num = [&](double v) {
    return std::isfinite(v) ? fmt::format("{:.{}f}", v / scale, digits) : std::string("inf");
  };
  return fmt::format("{} [{}, {}]", num(i.value), num(i.low), num(i.high));
}

}  // namespace

void compare(const CompareConfig& cc) {
  if (cc.algos.empty()) throw FieldError("algos", ": expected at least one algorithm");
  if (cc.seeds.empty()) throw FieldError("seeds", ": expected at least one seed");
  if (!(cc.base.target_success > 0 && cc.base.target_success <= 1))
    throw FieldError("target_success", fmt::format(": expected a rate in (0, 1], found {}", cc.base.target_success));
  const fs::path out(cc.out_dir);
  nlohmann::json all = nlohmann::json::object();
  std::string md = fmt::format(
      "| algorithm | seeds at {:.0f}% | frames to {:.0f}% (M, IQM [95% CI]) | seconds to {:.0f}% | final success "
      "(IQM [95% CI]) | best success |\n|---|---|---|---|---|---|\n",
      100 * cc.base.target_success, 100 * cc.base.target_success, 100 * cc.base.target_success);
#ifdef NPE_HAVE_MEDIA
  rollout::Panel panel{
      fmt::format("{}: success on {} held-out layouts", task_kind_name(cc.base.task.kind), cc.base.eval_layouts),
      "environment frames (millions)",
      "success rate",
      false,
      {}};
#endif
  int color = 1;
  for (const Algo algo : cc.algos) {
    std::vector<Run> runs;
    for (const uint64_t seed : cc.seeds) {
      TrainConfig c = cc.base;
      c.algo = algo;
      c.seed = seed;
      c.out_dir = (out / algo_name(algo) / fmt::format("seed{}", seed)).string();
      const fs::path summary = fs::path(c.out_dir) / "summary.json";
      if (!fs::exists(summary)) {
        c.resume = fs::exists(fs::path(c.out_dir) / "checkpoint.pt");
        fmt::print("npe-control compare: {} seed {}{}\n", algo_name(algo), seed, c.resume ? " (resumed)" : "");
        std::fflush(stdout);
        train(c, [](const ControlMetrics& m) {
          fmt::print("  frames {:>12}  {:>8.1f} s  success {:.3f}  return {:+.3f}\n", m.frames, m.seconds, m.success,
                     m.eval_return);
          std::fflush(stdout);
        });
      }
      // a finished run is reused only when it was made with these settings
      const auto j = parse_json(read_file(summary), summary.string(), "a run summary");
      const std::string key = differing_setting(j, c, false);
      if (!key.empty())
        throw FieldError("out_dir", fmt::format(" '{}': {} holds a run whose '{}' differs from this comparison's; "
                                                "choose another directory or remove it",
                                                cc.out_dir, summary.string(), key));
      if (!j.contains("max_frames") || j.at("max_frames") != c.max_frames)
        throw FieldError("out_dir",
                         fmt::format(" '{}': {} holds a run with another frame budget", cc.out_dir, summary.string()));
      runs.push_back(read_run(j, summary.string(), seed, cc.base.target_success));
    }
    // frames and seconds to the target: a seed that never reaches it counts as infinitely many
    std::vector<double> frames, secs, final, best;
    int reached = 0;
    for (const Run& r : runs) {
      const bool ok = r.summary.frames_to_target >= 0;
      reached += ok;
      frames.push_back(ok ? static_cast<double>(r.summary.frames_to_target) : INFINITY);
      secs.push_back(ok ? r.summary.seconds_to_target : INFINITY);
      final.push_back(r.summary.final_success);
      best.push_back(r.summary.best_success);
    }
    const Interval fi = iqm_with_ci(frames), si = iqm_with_ci(secs), su = iqm_with_ci(final), bi = iqm_with_ci(best);
    md += fmt::format("| {} | {}/{} | {} | {} | {} | {:.3f} |\n", algo_name(algo), reached, runs.size(),
                      fmt_interval(fi, 1e6, 1), fmt_interval(si, 1, 0), fmt_interval(su, 1, 3), bi.value);
    nlohmann::json a = {
        {"seeds", cc.seeds},
        {"reached", reached},
        {"frames_to_target_iqm", std::isfinite(fi.value) ? nlohmann::json(fi.value) : nlohmann::json()},
        {"seconds_to_target_iqm", std::isfinite(si.value) ? nlohmann::json(si.value) : nlohmann::json()},
        {"final_success_iqm", su.value},
        {"final_success_ci", {su.low, su.high}},
        {"best_success_iqm", bi.value}};
    // the learning curve: the mean over seeds at each evaluation, with a 95% bootstrap band
    size_t points = runs.front().curve.size();
    for (const Run& r : runs) points = std::min(points, r.curve.size());
    std::vector<double> x, mean, low, high;
    for (size_t p = 0; p < points; ++p) {
      std::vector<double> v;
      double fx = 0;
      for (const Run& r : runs) {
        v.push_back(r.curve[p].success);
        fx += static_cast<double>(r.curve[p].frames) / static_cast<double>(runs.size());
      }
      double m = 0;
      for (double y : v) m += y / static_cast<double>(v.size());
      // bootstrap of the mean: IQM of a resample is its mean when fewer than 4 values; use the
      // mean over resamples drawn as iqm_with_ci draws them
      std::vector<double> boots;
      std::mt19937_64 rng(p + 1);
      std::uniform_int_distribution<size_t> pick(0, v.size() - 1);
      for (int b = 0; b < 2000; ++b) {
        double s = 0;
        for (size_t k = 0; k < v.size(); ++k) s += v[pick(rng)];
        boots.push_back(s / static_cast<double>(v.size()));
      }
      std::sort(boots.begin(), boots.end());
      x.push_back(fx / 1e6);
      mean.push_back(m);
      low.push_back(boots[49]);
      high.push_back(boots[1949]);
    }
    a["curve"] = {{"frames_millions", x}, {"mean_success", mean}, {"low", low}, {"high", high}};
    all[algo_name(algo)] = a;
#ifdef NPE_HAVE_MEDIA
    panel.series.push_back({algo_name(algo), x, mean, color, false});
    panel.series.push_back({"", x, low, color, true});
    panel.series.push_back({"", x, high, color, true});
#endif
    ++color;
  }
  md += fmt::format(
      "\n{} seeds per algorithm, {} environments, budget {} frames; success of the deterministic policy on {} "
      "held-out layouts (seed {}). IQM: interquartile mean over seeds; 95% CI: percentile bootstrap over seeds (2000 "
      "resamples). A seed that never reaches the target counts as infinitely many frames.\n",
      cc.seeds.size(), cc.base.num_envs, cc.base.max_frames, cc.base.eval_layouts, cc.base.eval_seed);
  write_file_atomic(out / "compare.md", md);
  nlohmann::json j = {{"task", task_to_json(cc.base.task)},       {"num_envs", cc.base.num_envs},
                      {"max_frames", cc.base.max_frames},         {"device", cc.base.device.str()},
                      {"target_success", cc.base.target_success}, {"algorithms", all}};
  write_file_atomic(out / "compare.json", j.dump(2) + "\n");
#ifdef NPE_HAVE_MEDIA
  rollout::write_plot_png((out / "compare.png").string(), {panel}, 900, 560);
#endif
  fmt::print("{}", md);
}

}  // namespace npe::control
