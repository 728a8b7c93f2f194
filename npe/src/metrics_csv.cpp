#include "npe/model/metrics_csv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

#include "npe/core/error.h"

namespace npe::model {
namespace {
// A whole cell as a double (strtod: no exceptions, no locale surprises in the "C" locale npe uses).
bool parse_number(const std::string& cell, double* out) {
  if (cell.empty() || cell.size() > 64) return false;
  const char* begin = cell.c_str();
  char* end = nullptr;
  *out = std::strtod(begin, &end);
  return end == begin + cell.size();
}
}  // namespace

std::vector<MetricsRow> parse_metrics_csv(const std::string& text, const std::string& source) {
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line != kMetricsCsvHeader)
    throw Error(fmt::format("{}: expected the npe-train header '{}', found '{}'", source, kMetricsCsvHeader,
                            line.substr(0, 80)));
  std::vector<MetricsRow> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto cells = static_cast<size_t>(std::count(line.begin(), line.end(), ',')) + 1;
    if (cells != 6)
      throw Error(fmt::format("{}: line {}: expected 6 cells (step,samples_seen,train_loss,val_loss,lr,seconds), "
                              "found {}",
                              source, number, cells));
    double v[6] = {};
    for (size_t k = 0, at = 0; k < 6; ++k) {
      const size_t comma = std::min(line.find(',', at), line.size());
      const std::string cell = line.substr(at, comma - at);
      if (!parse_number(cell, &v[k]))
        throw Error(fmt::format("{}: line {}: expected a number, found '{}'", source, number, cell.substr(0, 40)));
      at = comma + 1;
    }
    for (int k : {0, 1})
      if (!(v[k] >= 0 && v[k] <= 9.0e15 && std::floor(v[k]) == v[k]))
        throw Error(fmt::format("{}: line {}: {} expected a non-negative integer, found '{}'", source, number,
                                k == 0 ? "step" : "samples_seen", v[k]));
    MetricsRow r;
    r.step = static_cast<int64_t>(v[0]);
    r.samples_seen = static_cast<int64_t>(v[1]);
    r.train_loss = v[2];
    r.val_loss = v[3];
    r.lr = v[4];
    r.seconds = v[5];
    r.line = line;
    if (!rows.empty() && r.step <= rows.back().step)
      throw Error(fmt::format("{}: line {}: step {} expected after step {} (steps increase)", source, number, r.step,
                              rows.back().step));
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace npe::model
