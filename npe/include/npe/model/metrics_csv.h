// npe/model/metrics_csv.h: the training metrics CSV that npe-train writes (one row per validation)
// and npe-render plots and npe-train --resume reads back.
//
//   step,samples_seen,train_loss,val_loss,lr,seconds
//   200,10000,2.1e-03,2.4e-03,3e-04,12.345
//
// step and samples_seen are non-negative integers, steps strictly increasing; losses, learning
// rate and seconds are numbers (losses may be nan only where no batch was averaged).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace npe::model {

inline constexpr const char* kMetricsCsvHeader = "step,samples_seen,train_loss,val_loss,lr,seconds";

struct MetricsRow {
  int64_t step = 0, samples_seen = 0;
  double train_loss = 0, val_loss = 0, lr = 0, seconds = 0;
  std::string line;  // the row as written, kept byte for byte by --resume
};

// Parses a metrics CSV's text. Throws npe::Error naming `source` (e.g. "--metrics_csv 'x.csv'"),
// the line, what was expected and what was found: another header, a row of other than 6 cells,
// a cell that is not a number, a step that is negative, fractional or not increasing.
std::vector<MetricsRow> parse_metrics_csv(const std::string& text, const std::string& source);

}  // namespace npe::model
