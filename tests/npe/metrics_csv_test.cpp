#include "npe/model/metrics_csv.h"

#include <array>
#include <cmath>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "npe/core/error.h"
#include "test_util.h"

namespace npe::model {
namespace {

std::string message_of(const std::string& text) {
  try {
    parse_metrics_csv(text, "--metrics_csv 'm.csv'");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MetricsCsv, RowsRoundTripWithTheirText) {
  std::mt19937_64 rng(test::fresh_seed());
  std::uniform_real_distribution<double> u(1e-5, 1.0);
  std::string text = std::string(kMetricsCsvHeader) + "\n";
  std::vector<std::array<double, 4>> want;
  int64_t step = 0;
  for (int i = 0; i < 20; ++i) {
    step += 1 + static_cast<int64_t>(rng() % 100);
    want.push_back({u(rng), u(rng), u(rng), 100 * u(rng)});
    text += fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.3f}{}\n", step, step * 50, want.back()[0], want.back()[1],
                        want.back()[2], want.back()[3], i == 3 ? "\r" : "");
  }
  text += "\n";  // a trailing empty line is no row
  const auto rows = parse_metrics_csv(text, "m.csv");
  ASSERT_EQ(rows.size(), want.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].samples_seen, rows[i].step * 50);
    EXPECT_NEAR(rows[i].train_loss, want[i][0], 1e-8 * want[i][0]);
    EXPECT_NEAR(rows[i].val_loss, want[i][1], 1e-8 * want[i][1]);
    EXPECT_NEAR(rows[i].seconds, want[i][3], 1e-3);
    EXPECT_EQ(rows[i].line.find('\r'), std::string::npos);
    EXPECT_EQ(rows[i].line.rfind(std::to_string(rows[i].step) + ",", 0), 0u);
  }
  EXPECT_TRUE(parse_metrics_csv(std::string(kMetricsCsvHeader) + "\n", "m.csv").empty());
  // nan losses (no batch averaged) are numbers to the reader
  EXPECT_TRUE(
      std::isnan(parse_metrics_csv(std::string(kMetricsCsvHeader) + "\n1,5,nan,0.1,0.1,1\n", "m.csv")[0].train_loss));
}

TEST(MetricsCsv, BadTextNamesTheLineAndWhatWasFound) {
  const std::string h = std::string(kMetricsCsvHeader) + "\n";
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"epoch,loss\n1,2\n", {"m.csv", "expected the npe-train header", "epoch,loss"}},
      {"", {"expected the npe-train header"}},
      {h + "1,50,x,0.1,0.1,1\n", {"line 2", "expected a number", "'x'"}},
      {h + "1,50,0.1,0.1\n", {"line 2", "6 cells", "found 4"}},
      {h + "1,50,0.1,0.1,0.1,1,9\n", {"line 2", "found 7"}},
      {h + "1,50,0.1,0.1,0.1,1,\n", {"line 2", "found 7"}},
      {h + "1,50,0.1,0.1,0.1,\n", {"line 2", "expected a number, found ''"}},
      {h + "1.5,50,0.1,0.1,0.1,1\n", {"line 2", "step expected a non-negative integer"}},
      {h + "-3,50,0.1,0.1,0.1,1\n", {"line 2", "step expected a non-negative integer"}},
      {h + "1,1e300,0.1,0.1,0.1,1\n", {"line 2", "samples_seen"}},
      {h + "5,50,0.1,0.1,0.1,1\n\n4,40,0.1,0.1,0.1,1\n", {"line 4", "step 4 expected after step 5"}},
  };
  for (const auto& [text, needles] : cases) {
    const std::string w = message_of(text);
    ASSERT_FALSE(w.empty()) << "accepted: " << text;
    for (const auto& n : needles) EXPECT_NE(w.find(n), std::string::npos) << "'" << n << "' missing in: " << w;
  }
}

}  // namespace
}  // namespace npe::model
